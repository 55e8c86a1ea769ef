"""Game-state changes made outside the socket (Django admin, shell, services) reach live sessions.

A character that joins or leaves a guild while it is being played joins or leaves the guild
room on every process (PROTOCOL.md §4), after the change commits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from characters.models import GuildMembership
from chat.models import ChatMessage, Mute, ProfanityWord, whisper_pair
from chat.services import mute_until
from realtime.core.constants import ROOM_GLOBAL_CHAT
from realtime.core.errors import ServiceUnavailable
from realtime.fanout import broadcast, rooms


def _after_commit(tell: Callable[[], None]) -> None:
    """Tell live sockets after the change commits. While Redis is down they cannot be told
    (the outage is logged once); they get the state from the database when they reconnect."""

    def guarded() -> None:
        with contextlib.suppress(ServiceUnavailable):
            tell()

    transaction.on_commit(guarded)


def _guild_changed(character_id: int, guild_id: int | None) -> None:
    _after_commit(
        lambda: broadcast.control_sync_room(
            rooms.character_room(character_id), "guild", characterId=character_id, guildId=guild_id
        )
    )


def _membership_saved(sender: Any, instance: GuildMembership, **kwargs: Any) -> None:
    _guild_changed(instance.character_id, instance.guild_id)


def _membership_deleted(sender: Any, instance: GuildMembership, **kwargs: Any) -> None:
    _guild_changed(instance.character_id, None)


def _mute_changed(sender: Any, instance: Mute, **kwargs: Any) -> None:
    """A mute given or lifted (admin or API) reaches the user's live connections at once."""
    user_id = instance.user_id

    def tell() -> None:
        until = mute_until(user_id)
        until_ms = int(until.timestamp() * 1000) if until else 0
        broadcast.control_sync_room(rooms.user_room(user_id), "mute", until=until_ms)

    _after_commit(tell)


def _words_changed(sender: Any, **kwargs: Any) -> None:
    _after_commit(lambda: broadcast.to_processes_sync("profanity.reload"))


def _message_saved(sender: Any, instance: ChatMessage, **kwargs: Any) -> None:
    """A moderator deleted a message: everyone who could have it is told."""
    update_fields = kwargs.get("update_fields") or ()
    if instance.deleted_at is None or "deleted_at" not in update_fields:
        return
    data = {"id": str(instance.pk), "channel": instance.channel}
    targets = _message_rooms(instance)

    def tell() -> None:
        for room in targets:
            broadcast.to_room_sync(room, "chat:message_deleted", data)

    _after_commit(tell)


def _message_rooms(message: ChatMessage) -> list[str]:
    if message.channel == "whisper":
        low, high = whisper_pair(message.sender_id, message.recipient_id or 0).split(":")
        return [rooms.user_room(low), rooms.user_room(high)]
    if message.channel == "zone" and message.zone is not None:
        return [rooms.zone_room(message.zone.key)]
    if message.channel == "guild" and message.guild_id is not None:
        return [rooms.guild_room(message.guild_id)]
    if message.channel == "global":
        return [ROOM_GLOBAL_CHAT]
    return []


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deactivated account's live sockets end as a ban's do (session:kicked, 4003
    USER_BANNED) on every process; new ones are already refused (inactive = banned)."""
    if instance.is_active or kwargs.get("created"):
        return
    user_id = instance.pk

    def tell() -> None:
        broadcast.control_sync_room(
            rooms.user_room(user_id), "ban", reason="Account is deactivated"
        )

    _after_commit(tell)


def connect() -> None:
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="realtime.user-saved")
    post_save.connect(_message_saved, sender=ChatMessage, dispatch_uid="realtime.chat-deleted")
    post_save.connect(_mute_changed, sender=Mute, dispatch_uid="realtime.mute+")
    post_delete.connect(_mute_changed, sender=Mute, dispatch_uid="realtime.mute-")
    post_save.connect(_words_changed, sender=ProfanityWord, dispatch_uid="realtime.words+")
    post_delete.connect(_words_changed, sender=ProfanityWord, dispatch_uid="realtime.words-")
    post_save.connect(_membership_saved, sender=GuildMembership, dispatch_uid="realtime.guild+")
    post_delete.connect(_membership_deleted, sender=GuildMembership, dispatch_uid="realtime.guild-")
