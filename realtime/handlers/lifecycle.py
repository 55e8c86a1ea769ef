"""A connection's start and end, as the transports drive them.

After the handshake the transport calls ``open_session``: the session joins the account's rooms
(``Session.open``), chat loads the account's blocks and mute, a character in a live fight is
selected and its fight rejoined (PROTOCOL.md §4), and ``sync:initial`` goes out. A Socket.IO
connection may instead be recovered (``realtime.handlers.recovery``). When the socket is gone
the transport calls ``close_session``.
"""

from __future__ import annotations

import logging

from realtime.connection.session import Session
from realtime.fanout.history import StreamPosition
from realtime.handlers import chat, combat

logger = logging.getLogger(__name__)


async def open_session(session: Session) -> None:
    """Everything a freshly authenticated connection gets, ending with ``sync:initial``."""
    offsets = await session.open()
    await chat.load_state(session)
    await finish_open(session, offsets)


async def finish_open(session: Session, offsets: dict[str, StreamPosition]) -> None:
    """A live fight rejoined, then ``sync:initial`` (``offsets``: of the rooms joined so far)."""
    state, joined = await combat.rejoin(session)
    session.send_initial({**offsets, **joined}, state)


async def close_session(session: Session) -> None:
    """The socket is gone: stop its typing indicators, then end the session (idempotent)."""
    if session.registered:
        try:
            await chat.end_typing(session)
        except Exception:
            logger.exception("ending typing of %s failed", session.socket_id)
    await session.finish()
