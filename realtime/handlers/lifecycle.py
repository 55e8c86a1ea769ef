"""A connection's start and end, as the transports drive them.

After the handshake the transport calls ``open_session``: the session joins the account's rooms
(``Session.open``), chat loads the account's blocks and mute, a character in a live fight is
selected and its fight rejoined (PROTOCOL.md §4), and ``sync:initial`` goes out. A Socket.IO
connection may instead be recovered (``realtime.handlers.recovery``). When the socket is gone
the transport calls ``close_session``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from characters.models import Character
from chat.models import Block, Mute
from combat.models import CombatParticipant
from realtime.connection.session import Session
from realtime.core.reads import Rows, read
from realtime.core.sql import column, datetime_value, pk, table
from realtime.fanout.history import StreamPosition
from realtime.handlers import chat, combat

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountState:
    chat: chat.AccountChatState
    active_fight: tuple[int, int] | None


@functools.cache
def _account_state_statement(vendor: str) -> str:
    """The account's running mute (the latest end after now, as ``chat.services.mute_until``),
    its live fight (the first active participation of one of its characters, as
    ``combat.services.active_fight_for_user``) and whom it blocks: one row per block, or one
    with a NULL block. Written by hand (``realtime.core.sql``): the ORM's three querysets cost
    ~1 ms of CPU per connect, running this one ~0.1 ms."""
    fight = (
        f" FROM {table(CombatParticipant)} p INNER JOIN {table(Character)} c"
        f" ON {pk(Character, 'c')} = {column(CombatParticipant, 'character', 'p')}"
        f" WHERE {column(CombatParticipant, 'active', 'p')} = %s"
        f" AND {column(Character, 'owner', 'c')} = %s"
        f" ORDER BY {pk(CombatParticipant, 'p')} LIMIT 1"
    )
    until = column(Mute, "until", "m")
    return (
        f"SELECT (SELECT MAX({until}) FROM {table(Mute)} m"  # noqa: S608 (names from the models; values are parameters)
        f" WHERE {column(Mute, 'user', 'm')} = %s AND {until} > %s),"
        f" (SELECT {column(CombatParticipant, 'character', 'p')}{fight}),"
        f" (SELECT {column(CombatParticipant, 'session', 'p')}{fight}),"
        f" {column(Block, 'blocked', 'b')}"
        f" FROM (SELECT 1 AS one) o LEFT JOIN {table(Block)} b"
        f" ON {column(Block, 'owner', 'b')} = %s"
    )


async def account_state(user_id: int) -> AccountState:
    """In one statement: what a new connection needs of its account besides the handshake's
    check."""
    now = timezone.now()
    return await read(
        _account_state_statement, [user_id, now, True, user_id, True, user_id, user_id], _state
    )


def _state(rows: Rows) -> AccountState:
    muted_until, character_id, combat_id, _ = rows[0]
    blocked = frozenset(row[3] for row in rows if row[3] is not None)
    fight = (character_id, combat_id) if character_id is not None else None
    return AccountState(chat.AccountChatState(blocked, datetime_value(muted_until)), fight)


async def open_session(session: Session, joined: Callable[[], None] | None = None) -> None:
    """Everything a freshly authenticated connection gets, ending with ``sync:initial``.

    The account's blocks, mute and live fight are read once the session is in its rooms (a
    change made meanwhile reaches it as a control message; read before the join, one made in
    between would be missed). ``joined`` is called once the session is in its account's rooms
    (Socket.IO's CONNECT answer: an event sent to ``user:<id>`` after the client saw it must
    reach it). Live room frames wait until ``sync:initial`` went out: it is the first event
    (PROTOCOL.md §5.1).
    """
    session.hold_rooms()
    try:
        offsets = await session.open()
        if joined is not None:
            joined()
        state = await account_state(session.user_id)
        chat.apply_state(session, state.chat)
        await finish_open(session, offsets, state.active_fight)
    finally:
        session.release_rooms({})


async def finish_open(
    session: Session,
    offsets: dict[str, StreamPosition],
    active_fight: tuple[int, int] | None = combat.UNKNOWN,
) -> None:
    """A live fight rejoined, then ``sync:initial`` (``offsets``: of the rooms joined so far;
    ``active_fight``: as read already, if it was)."""
    state, joined = await combat.rejoin(session, active_fight)
    positions = {**offsets, **joined}
    session.send_initial(positions, state)
    # Held frames of events up to the positions sync:initial gave are before the connection.
    session.release_rooms(positions)


async def close_session(session: Session) -> None:
    """The socket is gone: stop its typing indicators, then end the session (idempotent)."""
    if session.registered:
        try:
            await chat.end_typing(session)
        except Exception:
            logger.exception("ending typing of %s failed", session.socket_id)
    await session.finish()
