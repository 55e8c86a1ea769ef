"""``chat:*`` events (PROTOCOL.md §5.3).

Every channel message and whisper is stored (batched, see ``realtime.chat_support``) before it
is broadcast. Blocks are enforced where events are delivered: each connection knows the users
its account blocks and drops their room events (``Session.room_frame``), which covers
messages, whispers, emotes and typing alike, on every process.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chat import rules, services
from chat.services import HistoryQuery, NewMessage, StoredMessage
from realtime import broadcast
from realtime import rooms as room_names
from realtime.chat_support import MessageWriter, profanity_filter
from realtime.constants import ROOM_GLOBAL_CHAT
from realtime.controls import CONTROL_ACTIONS
from realtime.db import db
from realtime.errors import ErrorCode, Reject
from realtime.handlers.reply import Reply
from realtime.protocol.chat_payloads import (
    ChatEmotePayload,
    ChatHistoryPayload,
    ChatMessagePayload,
    ChatTypingPayload,
    ChatUserPayload,
    ChatWhisperPayload,
)
from realtime.protocol.world_payloads import EmptyPayload
from realtime.runtime import Runtime, current_runtime
from realtime.session import (
    Session,
    end_hooks,
    initial_state_hooks,
    now_ms,
)
from realtime.shutdown import shutdown_hooks
from realtime.typing_status import TypingTracker
from realtime.world import Playing


def writer(runtime: Runtime) -> MessageWriter:
    found = runtime.ext.get("chat.writer")
    if not isinstance(found, MessageWriter):
        found = runtime.ext["chat.writer"] = MessageWriter()
    return found


def typing_tracker(runtime: Runtime) -> TypingTracker:
    found = runtime.ext.get("chat.typing")
    if not isinstance(found, TypingTracker):
        found = runtime.ext["chat.typing"] = TypingTracker()
    return found


def _playing(session: Session) -> Playing:
    if session.playing is None:
        raise Reject(ErrorCode.NO_CHARACTER, "Select a character first")
    return session.playing


def _channel_room(session: Session, channel: str) -> str:
    """The room of a zone / global / guild channel for this connection (or a refusal)."""
    if channel == "global":
        return ROOM_GLOBAL_CHAT
    playing = _playing(session)
    if channel == "zone":
        return room_names.zone_room(playing.zone)
    if playing.guild_id is None:
        raise Reject(ErrorCode.NOT_IN_GUILD, "Your character is not in a guild")
    return room_names.guild_room(playing.guild_id)


def _check_muted(session: Session) -> None:
    until = int(session.extra.get("muted_until_ms", 0))
    if until > now_ms():
        raise Reject(ErrorCode.MUTED, "You are muted", until=until)


async def _clean(message: str) -> tuple[str, bool]:
    """Hygiene and the profanity filter; returns the text to store and whether it was masked."""
    text = rules.clean_text(message)
    problem = rules.message_problem(text)
    if problem is not None:
        raise Reject(ErrorCode.INVALID_MESSAGE, problem)
    profanity = await profanity_filter()
    if not profanity.contains(text):
        return text, False
    if settings.AETURNIS_PROFANITY_MODE == rules.FilterMode.REJECT:
        raise Reject(ErrorCode.CONTENT_BLOCKED, "The message contains blocked words")
    return profanity.mask(text), True


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
    playing = _playing(session)
    _check_muted(session)
    text, filtered = await _clean(payload.message)
    sent = now_ms()
    new = NewMessage(
        channel=payload.channel,
        sender_id=session.user_id,
        character_id=playing.character_id,
        sender_name=playing.name,
        text=text,
        filtered=filtered,
        sent_ms=sent,
        zone_id=playing.zone_id if payload.channel == "zone" else None,
        guild_id=playing.guild_id if payload.channel == "guild" else None,
    )
    message_id = await writer(session.runtime).store(new)
    await broadcast.to_room(
        room,
        "chat:message",
        {
            "id": str(message_id),
            "userId": str(session.user_id),
            "characterId": str(playing.character_id),
            "characterName": playing.name,
            "channel": payload.channel,
            "message": text,
            "serverTimestamp": sent,
        },
        exclude=session.socket_id,
        sender=session.user_id,
    )
    return Reply(
        "chat:message_sent",
        {"id": str(message_id), "channel": payload.channel, "serverTimestamp": sent},
        activity={"channel": payload.channel, "id": str(message_id)},
    )


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
    _check_muted(session)
    text, filtered = await _clean(payload.message)
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
        filtered=filtered,
        sent_ms=sent,
        recipient_id=target,
    )
    message_id = await writer(session.runtime).store(new)
    await broadcast.to_room(
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
        sender=session.user_id,
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
    playing = _playing(session)
    if payload.emote not in rules.EMOTES:
        raise Reject(ErrorCode.INVALID_EMOTE, f"Unknown emote '{payload.emote[:32]}'")
    target = rules.clean_text(payload.target)[:64] if payload.target else None
    await broadcast.to_room(
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
        playing = _playing(session)
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
    await typing_tracker(session.runtime).update(session, payload.channel, room, payload.typing)


async def _set_blocks(session: Session, ids: list[int]) -> None:
    session.blocked_user_ids = frozenset(ids)
    # Every other connection of this account, on every process, adopts the same list.
    await broadcast.control(room_names.user_room(session.user_id), "blocks", userIds=ids)


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


async def _load_chat_state(session: Session) -> dict[str, Any]:
    """At connect: the account's block list and running mute (nothing goes into sync:initial)."""
    session.blocked_user_ids = frozenset(await db(services.blocked_ids, session.user_id))
    until = await db(services.mute_until, session.user_id)
    session.extra["muted_until_ms"] = int(until.timestamp() * 1000) if until else 0
    return {}


async def _end_typing(session: Session) -> None:
    await typing_tracker(session.runtime).session_ended(session)


def _control_blocks(session: Session, message: dict[str, Any]) -> None:
    ids = message.get("userIds")
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        session.blocked_user_ids = frozenset(ids)


def _control_mute(session: Session, message: dict[str, Any]) -> None:
    until = message.get("until")
    if isinstance(until, int):
        session.extra["muted_until_ms"] = until


async def _flush_writer() -> None:
    runtime = current_runtime()
    if runtime is not None and "chat.writer" in runtime.ext:
        await writer(runtime).flushed()


initial_state_hooks.append(_load_chat_state)
shutdown_hooks.append(_flush_writer)
end_hooks.append(_end_typing)
CONTROL_ACTIONS["blocks"] = _control_blocks
CONTROL_ACTIONS["mute"] = _control_mute
