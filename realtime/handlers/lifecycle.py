"""A connection's start and end, as the transports drive them.

After the handshake the transport calls ``open_session``: the session joins the account's rooms
(``Session.open``), chat loads the account's blocks and mute, a character in a live fight is
selected and its fight rejoined (PROTOCOL.md §4), and ``sync:initial`` goes out. A Socket.IO
connection may instead be recovered (``realtime.handlers.recovery``). When the socket is gone
the transport calls ``close_session``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from combat import services as combat_services
from realtime.connection.session import Session
from realtime.core.db import db
from realtime.fanout.history import StreamPosition
from realtime.handlers import chat, combat

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountState:
    chat: chat.AccountChatState
    active_fight: tuple[int, int] | None


def account_state(user_id: int) -> AccountState:
    """On the ORM thread, in one hop: what a new connection needs of its account besides the
    handshake's check (each hop to the ORM thread costs more CPU than these small queries)."""
    return AccountState(
        chat.account_chat_state(user_id), combat_services.active_fight_for_user(user_id)
    )


async def open_session(session: Session, joined: Callable[[], None] | None = None) -> None:
    """Everything a freshly authenticated connection gets, ending with ``sync:initial``.

    ``joined`` is called once the session is in its account's rooms (Socket.IO's CONNECT
    answer: an event sent to ``user:<id>`` after the client saw it must reach it). Live room
    frames wait until ``sync:initial`` went out: it is the first event (PROTOCOL.md §5.1).
    """
    session.hold_rooms()
    try:
        offsets = await session.open()
        if joined is not None:
            joined()
        state = await db(account_state, session.user_id)
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
