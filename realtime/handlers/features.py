"""The one place where the handlers' per-process parts are added to a runtime.

Called once per runtime, before it starts (``realtime.transport.app``): chat's group-commit
writer, typing state and profanity filter; combat's turn-deadline ticker; what to check after
a Redis outage.
"""

from __future__ import annotations

from functools import partial

from realtime.auth.tokens import revoked_among
from realtime.connection.session import Session
from realtime.core.db import db
from realtime.core.errors import ErrorCode
from realtime.handlers import chat, combat
from realtime.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    chat.install(runtime)
    combat.install(runtime)
    runtime.on_reconnect = partial(end_revoked_sessions, runtime)


async def end_revoked_sessions(runtime: Runtime) -> None:
    """Close the sockets of tokens revoked while Redis could not carry the ``revoke`` control
    (the database is the record, PROTOCOL.md §8a)."""
    sessions = [m for m in runtime.hub.members.values() if isinstance(m, Session)]
    by_jti = {s.token.jti: s for s in sessions if s.token is not None and not s.closed}
    for jti in await db(revoked_among, list(by_jti)):
        by_jti[jti].end_auth(ErrorCode.TOKEN_REVOKED)
