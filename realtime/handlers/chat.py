"""``chat:*`` events (PROTOCOL.md §5.3).

Every channel message and whisper is stored (batched, see ``realtime.handlers.chat_writer``)
before it is broadcast. Blocks are enforced where events are delivered: each connection knows
the users its account blocks and drops their room events (``Session.room_frame``), which
covers messages, whispers, emotes and typing alike, on every process.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from chat import policy, rules, services
from chat.services import HistoryQuery, NewMessage, StoredMessage
from realtime.connection.session import Session
from realtime.core.clock import now_ms
from realtime.core.constants import ROOM_GLOBAL_CHAT
from realtime.core.db import db
from realtime.core.errors import ErrorCode, Reject, ServiceUnavailable
from realtime.core.health import REDIS
from realtime.fanout import rooms as room_names
from realtime.handlers.chat_writer import MessageWriter, ProfanityCache
from realtime.handlers.common import playing_of
from realtime.handlers.reply import Reply
from realtime.handlers.typing import TypingTracker
from realtime.protocol.chat_payloads import (
    ChatEmotePayload,
    ChatHistoryPayload,
    ChatMessagePayload,
    ChatTypingPayload,
    ChatUserPayload,
    ChatWhisperPayload,
)
from realtime.protocol.world_payloads import EmptyPayload
from realtime.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    """Chat's per-process parts: the group-commit writer (flushed at shutdown), typing state
    and the profanity filter (rebuilt when the word list changes on any process)."""
    writer = MessageWriter()
    profanity = ProfanityCache()
    runtime.provide(MessageWriter, writer)
    runtime.provide(TypingTracker, TypingTracker(runtime.broadcast))
    runtime.provide(ProfanityCache, profanity)
    runtime.on_shutdown(writer.flushed)
    runtime.on_process_message("profanity.reload", profanity.reload)


def _channel_room(session: Session, channel: str) -> str:
    """The room of a zone / global / guild channel for this connection (or a refusal)."""
    if channel == "global":
        return ROOM_GLOBAL_CHAT
    playing = playing_of(session)
    if channel == "zone":
        return room_names.zone_room(playing.zone)
    return room_names.guild_room(policy.check_guild_channel(playing.guild_id))


async def _clean(session: Session, message: str) -> tuple[str, bool, str]:
    """Hygiene and the profanity filter: the text players receive, whether it was masked, and
    what the sender typed after hygiene (kept for moderators)."""
    typed = policy.checked_message(message)
    profanity = await session.runtime.get(ProfanityCache).get()
    text, masked = policy.filtered(typed, profanity, settings.AETURNIS_PROFANITY_MODE)
    return text, masked, typed


def wire_message(m: StoredMessage) -> dict[str, Any]:
    """A stored message as ``chat:message`` data (whispers add ``toUserId``)."""
    body: dict[str, Any] = {
        "id": str(m.id),
        "userId": str(m.sender_id),
        "characterId": None if m.character_id is None else str(m.character_id),
        "characterName": m.sender_name,
        "channel": m.channel,
        "message": m.text,
        "serverTimestamp": m.sent_ms,
    }
    if m.recipient_id is not None:
        body["toUserId"] = str(m.recipient_id)
    return body


async def message(session: Session, payload: ChatMessagePayload) -> Reply:
    room = _channel_room(session, payload.channel)
    playing = playing_of(session)
    policy.check_not_muted(muted_until_ms=session.muted_until_ms, now_ms=now_ms())
    text, masked, typed = await _clean(session, payload.message)
    new = NewMessage(
        channel=payload.channel,
        sender_id=session.user_id,
        character_id=playing.character_id,
        sender_name=playing.name,
        text=text,
        filtered=masked,
        original=typed,
        sent_ms=now_ms(),
        zone_id=playing.zone_id if payload.channel == "zone" else None,
        guild_id=playing.guild_id if payload.channel == "guild" else None,
    )
    stored = new.stored(await _store(session, new))
    await _deliver_or_withdraw(
        session,
        stored.id,
        room,
        "chat:message",
        wire_message(stored),
        exclude=session.socket_id,
    )
    return Reply(
        "chat:message_sent",
        {"id": str(stored.id), "channel": payload.channel, "serverTimestamp": stored.sent_ms},
        activity={"channel": payload.channel, "id": str(stored.id)},
    )


async def _store(session: Session, new: NewMessage) -> int:
    """Store a message to be delivered; refused at once (not stored) while Redis, which must
    carry it, is known to be down."""
    REDIS.check()
    return await session.runtime.get(MessageWriter).store(new)


async def _deliver_or_withdraw(
    session: Session, message_id: int, room: str, event: str, data: dict[str, Any], exclude: str
) -> None:
    """Publish a stored message; if that fails, take it back out of the database before the
    client is told, so that a refused message never turns up later (PROTOCOL.md §8a)."""
    try:
        await session.runtime.broadcast.to_room(
            room, event, data, exclude=exclude, sender=session.user_id
        )
    except ServiceUnavailable:
        await db(services.chat_message_withdraw, message_id)
        raise


async def _whisper_target(payload: ChatWhisperPayload) -> int:
    if payload.targetUserId is not None:
        if not await db(services.user_exists, payload.targetUserId):
            raise Reject(ErrorCode.USER_NOT_FOUND, f"User {payload.targetUserId} does not exist")
        return payload.targetUserId
    name = (payload.targetName or "")[:64]
    found = await db(services.user_id_for_character_name, name)
    if found is None:
        raise Reject(ErrorCode.USER_NOT_FOUND, f"No character is called '{name}'")
    return found


async def whisper(session: Session, payload: ChatWhisperPayload) -> Reply:
    policy.check_not_muted(muted_until_ms=session.muted_until_ms, now_ms=now_ms())
    text, masked, typed = await _clean(session, payload.message)
    target = await _whisper_target(payload)
    if target == session.user_id:
        raise Reject(ErrorCode.INVALID_REQUEST, "You cannot whisper to yourself")
    if await db(services.is_blocked_by, owner_id=target, user_id=session.user_id):
        raise Reject(ErrorCode.USER_BLOCKED, "That user does not accept your whispers")
    online = await session.runtime.presence.store.entries_for_users([target], now_ms=now_ms())
    if not online.get(target):
        raise Reject(ErrorCode.USER_OFFLINE, "That user is not online")
    playing = session.playing
    name = playing.name if playing else (session.account.username if session.account else "")
    sent = now_ms()
    new = NewMessage(
        channel="whisper",
        sender_id=session.user_id,
        character_id=playing.character_id if playing else None,
        sender_name=name,
        text=text,
        filtered=masked,
        original=typed,
        sent_ms=sent,
        recipient_id=target,
    )
    message_id = await _store(session, new)
    await _deliver_or_withdraw(
        session,
        message_id,
        room_names.user_room(target),
        "chat:whisper_received",
        {
            "id": str(message_id),
            "fromUserId": str(session.user_id),
            "fromCharacterId": str(playing.character_id) if playing else None,
            "fromName": name,
            "toUserId": str(target),
            "message": text,
            "serverTimestamp": sent,
        },
        exclude="",
    )
    return Reply(
        "chat:whisper_sent",
        {
            "id": str(message_id),
            "targetUserId": str(target),
            "message": text,
            "serverTimestamp": sent,
        },
        activity={"to": str(target), "id": str(message_id)},
    )


async def emote(session: Session, payload: ChatEmotePayload) -> None:
    playing = playing_of(session)
    if payload.emote not in rules.EMOTES:
        raise Reject(ErrorCode.INVALID_EMOTE, f"Unknown emote '{payload.emote[:32]}'")
    target = rules.clean_text(payload.target)[:64] if payload.target else None
    await session.runtime.broadcast.to_room(
        room_names.zone_room(playing.zone),
        "chat:emote",
        {
            "characterId": str(playing.character_id),
            "userId": str(session.user_id),
            "characterName": playing.name,
            "emote": payload.emote,
            "target": target or None,
            "serverTimestamp": now_ms(),
        },
        sender=session.user_id,
    )


async def history(session: Session, payload: ChatHistoryPayload) -> Reply:
    limit = rules.clamp_limit(payload.limit)
    if limit is None:
        raise Reject(
            ErrorCode.INVALID_REQUEST, f"limit must be between 1 and {rules.HISTORY_MAX_LIMIT}"
        )
    before = rules.decode_cursor(payload.before) if payload.before is not None else None
    if payload.before is not None and before is None:
        raise Reject(ErrorCode.INVALID_REQUEST, "before is not a cursor this server gave out")
    zone_id = guild_id = None
    if payload.channel in ("zone", "guild"):
        _channel_room(session, payload.channel)  # refuses without a character or guild
        playing = playing_of(session)
        zone_id, guild_id = playing.zone_id, playing.guild_id
    query = HistoryQuery(
        user_id=session.user_id,
        channel=payload.channel,
        zone_id=zone_id,
        guild_id=guild_id,
        with_user_id=payload.withUserId if payload.channel == "whisper" else None,
        before=before,
        limit=limit,
        blocked=session.blocked_user_ids,
    )
    page, next_cursor = await db(services.chat_history, query)
    return Reply(
        "chat:history",
        {
            "channel": payload.channel,
            "messages": [wire_message(m) for m in page],
            "nextCursor": rules.encode_cursor(*next_cursor) if next_cursor else None,
        },
    )


async def typing(session: Session, payload: ChatTypingPayload) -> None:
    room = _channel_room(session, payload.channel)
    await session.runtime.get(TypingTracker).update(session, payload.channel, room, payload.typing)


async def _set_blocks(session: Session, ids: list[int]) -> None:
    session.blocked_user_ids = frozenset(ids)
    # Every other connection of this account, on every process, adopts the same list (while
    # Redis is down they keep theirs: the block is stored, and loaded at their next connect).
    with contextlib.suppress(ServiceUnavailable):
        await session.runtime.broadcast.control(
            room_names.user_room(session.user_id), "blocks", userIds=ids
        )


async def block(session: Session, payload: ChatUserPayload) -> Reply:
    ids = await db(services.block_add, owner_id=session.user_id, blocked_id=payload.userId)
    await _set_blocks(session, ids)
    return Reply("chat:blocked", {"userId": str(payload.userId)})


async def unblock(session: Session, payload: ChatUserPayload) -> Reply:
    ids = await db(services.block_remove, owner_id=session.user_id, blocked_id=payload.userId)
    await _set_blocks(session, ids)
    return Reply("chat:unblocked", {"userId": str(payload.userId)})


async def blocklist(session: Session, payload: EmptyPayload) -> Reply:
    ids = await db(services.blocked_ids, session.user_id)
    return Reply("chat:blocklist", {"userIds": [str(i) for i in ids]})


# --- connection life ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountChatState:
    """What chat needs of an account at connect (PROTOCOL.md §5.3)."""

    blocked_user_ids: frozenset[int]
    muted_until: datetime | None


def account_chat_state(user_id: int) -> AccountChatState:
    """On the ORM thread: the account's block list and running mute."""
    return AccountChatState(frozenset(services.blocked_ids(user_id)), services.mute_until(user_id))


def apply_state(session: Session, state: AccountChatState) -> None:
    session.blocked_user_ids = state.blocked_user_ids
    until = state.muted_until
    session.muted_until_ms = int(until.timestamp() * 1000) if until else 0


async def load_state(session: Session) -> None:
    """At connect: the account's block list and running mute, in one database call."""
    apply_state(session, await db(account_chat_state, session.user_id))


async def end_typing(session: Session) -> None:
    """The connection ended: its typing indicators stop (``typing: false``)."""
    await session.runtime.get(TypingTracker).session_ended(session)
