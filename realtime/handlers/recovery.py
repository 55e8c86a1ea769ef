"""Socket.IO connection state recovery (PROTOCOL.md §1.2; docs/ARCHITECTURE.md, Socket.IO).

Every Socket.IO connection gets a ``pid`` in its CONNECT answer, and every room event it
receives carries the event's bus ``seq`` as its last argument (the recovery offset);
socket.io-client keeps the last one it got and sends ``{pid, offset}`` back in its next CONNECT.
Because a process receives the events of all rooms in seq order and sends a connection's room
events in that order, that one offset says, for every room of the connection, which events it
had (seq at or below it) and which it missed. The connection's record (``state/recovery.py``)
says which rooms it was in and from where (their floors).

Recovering means: the new connection (a new socket id, the same user) joins the record's rooms,
holding their live frames; it reads every room's stream at one instant; when each still holds
whatever the connection missed (same epoch, history long enough: ``missed_since``), it sends the
missed events merged in seq order (without the connection's own, or those of users the account
blocks), answers CONNECT with the same pid (``socket.recovered`` is true), sends
``sync:initial``, then the held live frames that the replay did not cover. The character it
played is selected again (its live position kept) and a live fight's state is in
``sync:initial``. Anything that does not fit (no record, another user, the window passed, a
room's history lost, the character moved elsewhere meanwhile) is a normal connect with a new
pid.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from characters.selectors import CharacterView
from combat import services as combat_services
from domain.errors import DomainError
from realtime.connection.session import Session
from realtime.core.db import db
from realtime.core.errors import ServiceUnavailable
from realtime.fanout import rooms as room_names
from realtime.fanout.history import HistoryEntry, StreamPosition, missed_since
from realtime.handlers import chat
from realtime.handlers.characters import enter_world, playable_character, wire_character
from realtime.handlers.lifecycle import finish_open, open_session
from realtime.state.recovery import RecoveryRecord, enabled, new_pid

logger = logging.getLogger(__name__)

# What a CONNECT answer is sent with: the pid (None when recovery is off).
Answer = Callable[[str | None], None]

_MAX_PID = 64
_MAX_OFFSET_DIGITS = 19


@dataclass(frozen=True, slots=True)
class RecoveryRequest:
    pid: str
    after_seq: int  # the last recovery offset the client received; 0: none yet


def recovery_request(auth: dict[str, Any]) -> RecoveryRequest | None:
    """The ``{pid, offset}`` socket.io-client adds to its CONNECT payload, or None.

    A client that never got a room event sends no offset: it missed everything after its
    rooms' floors (seq 0). An offset that is not one of ours (not a string of digits) cannot
    be placed: no recovery.
    """
    pid, offset = auth.get("pid"), auth.get("offset")
    if not isinstance(pid, str) or not 0 < len(pid) <= _MAX_PID:
        return None
    if offset is None:
        return RecoveryRequest(pid, 0)
    if (
        not isinstance(offset, str)
        or not offset.isascii()
        or not offset.isdigit()
        or len(offset) > _MAX_OFFSET_DIGITS
    ):
        return None
    return RecoveryRequest(pid, int(offset))


async def open_socketio(session: Session, auth: dict[str, Any], answer: Answer) -> bool:
    """An authenticated Socket.IO CONNECT: recover the connection its ``{pid, offset}`` names,
    else open a new one. ``answer(pid)`` sends the CONNECT answer. Whether it was recovered."""
    if not enabled():
        await open_session(session, lambda: answer(None))
        return False
    request = recovery_request(auth)
    if request is not None and await _recover(session, request, answer):
        return session.recovery_pid == request.pid
    pid = new_pid()
    session.recovery_pid = pid  # the record is written once the rooms are joined
    await open_session(session, lambda: answer(pid))
    return False


class _NotRecoverable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _World:
    """The character the recovered connection played and its live fight, as stored now."""

    character: CharacterView | None = None
    fight: dict[str, Any] | None = None


async def _world(session: Session, record: RecoveryRecord) -> _World:
    """The record's character and fight, if they still are where the record's rooms say;
    ``_NotRecoverable`` otherwise (e.g. the character changed zone on another connection)."""
    fight_of = await db(combat_services.active_fight_for_user, session.user_id)
    rooms = set(record.rooms)
    played = {r for r in rooms if r.partition(":")[0] in ("character", "zone", "guild")}
    if record.character_id is None:
        if played or fight_of is not None:
            raise _NotRecoverable
        return _World()
    try:
        view = await playable_character(session.user_id, record.character_id)
    except DomainError:
        raise _NotRecoverable from None
    expected = {room_names.character_room(view.id), room_names.zone_room(view.zone.key)}
    if view.guild_id is not None:
        expected.add(room_names.guild_room(view.guild_id))
    if played != expected:
        raise _NotRecoverable
    if fight_of is None:
        return _World(view)
    character_id, combat_id = fight_of
    if character_id != view.id or room_names.combat_room(combat_id) not in rooms:
        raise _NotRecoverable
    try:
        fight = await db(
            combat_services.combat_state, session_id=combat_id, character_id=character_id
        )
    except DomainError:
        raise _NotRecoverable from None
    return _World(view, fight.state)


async def _recover(session: Session, request: RecoveryRequest, answer: Answer) -> bool:
    """Recover ``request.pid``'s connection into ``session``. False when nothing was done (the
    caller opens a new connection); True when the session was opened, recovered or — when a
    room's stream turned out not to hold what was missed — as a new connection."""
    runtime = session.runtime
    try:
        record = await runtime.recoveries.load(request.pid)
        if record is None or record.user_id != session.user_id:
            return False
        if any(floor is None for floor in record.rooms.values()):
            return False
        world = await _world(session, record)
    except (_NotRecoverable, ServiceUnavailable):
        return False
    # Blocks first: held live frames are filtered by them as they arrive, like the replay.
    await chat.load_state(session)
    # Live frames of every room wait until the missed events went out.
    session.hold_rooms()
    try:
        offsets = await session.open(record.rooms)
    except BaseException:
        session.release_rooms({})
        raise
    try:
        streams = await runtime.broadcast.streams(sorted(record.rooms))
        missed = missed_since(request.after_seq, record.rooms, streams)
        if missed is None:
            raise _NotRecoverable
        # The record goes on with the recovered connection's floors: the replay went out in
        # seq order, so the offset the client reports next is measured from them too.
        joined = session.recovery_record()
        claimed = dataclasses.replace(
            joined,
            rooms={room: record.rooms.get(room) or floor for room, floor in joined.rooms.items()},
            character_id=record.character_id,
        )
        await runtime.recoveries.save(request.pid, claimed, claim=True)
        session.recovered_from(record.rooms)
    except (_NotRecoverable, ServiceUnavailable):
        await _open_instead(session, offsets, answer)
        return True
    except BaseException:
        session.release_rooms({})
        raise
    state: dict[str, Any] = {}
    if world.character is not None:
        try:
            position, _ = await enter_world(session, world.character)
        except BaseException:
            session.release_rooms({})
            raise
        state = {"character": wire_character(world.character, position), "combat": world.fight}
    codec = session.codec
    for room, entry in missed:
        if not _skipped(session, entry, record.socket_id):
            epoch = streams[room].position.epoch
            session.send_text(
                codec.room_event_frame(
                    entry.event, entry.data_json, room, entry.offset, epoch, entry.seq
                )
            )
    replayed_up_to = {room: stream.position for room, stream in streams.items()}
    session.keep_recoverable(request.pid)
    answer(request.pid)
    session.send_initial({**offsets, **replayed_up_to}, state)
    session.release_rooms(replayed_up_to)
    logger.info(
        "recovered socket.io connection %s as %s (%d missed events)",
        record.socket_id,
        session.socket_id,
        len(missed),
    )
    return True


async def _open_instead(
    session: Session, offsets: dict[str, StreamPosition], answer: Answer
) -> None:
    """Recovery failed after the session joined the record's rooms: leave those a new
    connection is not in, and carry on as a new connection (a new pid)."""
    own = {room_names.user_room(session.user_id), *room_names.GLOBAL_ROOMS}
    for room in sorted(session.rooms - own):
        await session.leave(room)
    pid = new_pid()
    answer(pid)
    session.keep_recoverable(pid)
    try:
        await finish_open(session, {room: offsets[room] for room in own if room in offsets})
    finally:
        session.release_rooms({})  # finish_open released them, unless it failed


def _skipped(session: Session, entry: HistoryEntry, old_socket: str) -> bool:
    """Events the connection would not have received: its own (sent excluding its socket, the
    old one or this one), and those of users the account blocks."""
    if entry.sender and entry.sender in session.blocked_user_ids:
        return True
    return bool(entry.exclude) and entry.exclude in (old_socket, session.socket_id)
