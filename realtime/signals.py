"""Game-state changes made outside the socket (Django admin, shell, services) reach live sessions.

A character that joins or leaves a guild while it is being played joins or leaves the guild
room on every process (PROTOCOL.md §4), after the change commits.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from characters.models import GuildMembership
from realtime import broadcast, rooms


def _guild_changed(character_id: int, guild_id: int | None) -> None:
    transaction.on_commit(
        lambda: broadcast.control_sync_room(
            rooms.character_room(character_id), "guild", characterId=character_id, guildId=guild_id
        )
    )


def _membership_saved(sender: Any, instance: GuildMembership, **kwargs: Any) -> None:
    _guild_changed(instance.character_id, instance.guild_id)


def _membership_deleted(sender: Any, instance: GuildMembership, **kwargs: Any) -> None:
    _guild_changed(instance.character_id, None)


def connect() -> None:
    post_save.connect(_membership_saved, sender=GuildMembership, dispatch_uid="realtime.guild+")
    post_delete.connect(_membership_deleted, sender=GuildMembership, dispatch_uid="realtime.guild-")
