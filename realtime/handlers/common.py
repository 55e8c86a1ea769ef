"""What several handlers share."""

from __future__ import annotations

from realtime.connection.session import Session
from realtime.core.errors import ErrorCode, Reject
from realtime.state.playing import Playing


def playing_of(session: Session) -> Playing:
    """The connection's selected character; ``NO_CHARACTER`` without one."""
    if session.playing is None:
        raise Reject(ErrorCode.NO_CHARACTER, "Select a character first")
    return session.playing
