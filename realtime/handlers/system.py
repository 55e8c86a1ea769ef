"""Connection-level events: ping, token refresh, resume (PROTOCOL.md §2, §5.1, §8)."""

from __future__ import annotations

from typing import Any

from realtime.auth.tokens import AuthError, verify_access_token
from realtime.connection.session import Session
from realtime.core.clock import now_ms
from realtime.core.errors import HANDSHAKE_MESSAGES, ErrorCode, Reject
from realtime.fanout.history import HistoryEntry, StreamPosition
from realtime.handlers.reply import Reply
from realtime.protocol.payloads import AuthPayload, AuthRefreshPayload, SyncResumePayload


async def ping(session: Session, data: Any) -> Reply:
    """Echo the payload back with the server's clock (objects are merged, other values nested)."""
    if isinstance(data, dict):
        body = {**data, "serverTime": now_ms()}
    elif data is None:
        body = {"serverTime": now_ms()}
    else:
        body = {"data": data, "serverTime": now_ms()}
    return Reply("pong", body)


async def auth_again(session: Session, payload: AuthPayload) -> Reply:
    raise Reject(
        ErrorCode.INVALID_REQUEST, "Already authenticated; send auth:refresh to replace the token"
    )


async def auth_refresh(session: Session, payload: AuthRefreshPayload) -> Reply:
    """Replace the connection's token by a newer one of the same user, extending its life."""
    try:
        info = await verify_access_token(payload.token)
    except AuthError as exc:
        raise Reject(exc.code, HANDSHAKE_MESSAGES[exc.code]) from None
    if info.user_id != session.user_id:
        raise Reject(ErrorCode.TOKEN_INVALID, "The token belongs to another user")
    if session.token is not None and info.exp < session.token.exp:
        raise Reject(ErrorCode.TOKEN_INVALID, "The token expires before the current one")
    session.schedule_expiry(info)
    return Reply("auth:refreshed", {"expiresAt": int(info.exp * 1000)})


async def sync_resume(session: Session, payload: SyncResumePayload) -> Reply:
    """Replay what each room missed since the client's last offset, then report per room.

    Only rooms this connection is in are replayed; live events (of every room, so that they
    stay in bus order) are held back meanwhile so nothing is sent twice or out of order. An
    offset of another epoch than the room's is not recovered (its history was lost). Replayed
    frames carry no Socket.IO recovery offset (they are older than live ones already sent), and
    a later Socket.IO recovery starts from what the resume covered.
    """
    wanted = {room: after for room, after in payload.rooms.items() if room in session.rooms}
    epochs = payload.epochs or {}
    result: dict[str, dict[str, Any]] = {
        room: {"recovered": False, "offset": 0, "epoch": None}
        for room in payload.rooms
        if room not in wanted
    }
    session.hold_rooms()
    replayed_up_to: dict[str, StreamPosition] = {}
    try:
        for room, after in sorted(wanted.items()):
            replay = await session.runtime.broadcast.replay(room, after, epochs.get(room))
            for entry in replay.entries:
                if _skipped(session, entry, payload.socketId):
                    continue
                session.send_text(
                    session.codec.resumed_event_frame(
                        entry.event, entry.data_json, room, entry.offset, replay.epoch
                    )
                )
            replayed_up_to[room] = StreamPosition(replay.offset, replay.epoch)
            result[room] = {
                "recovered": replay.recovered,
                "offset": replay.offset,
                "epoch": replay.epoch,
            }
    finally:
        session.release_rooms(replayed_up_to)
    session.covered(replayed_up_to)
    return Reply("sync:resumed", {"rooms": result})


def _skipped(session: Session, entry: HistoryEntry, resumed_socket: str | None) -> bool:
    """An entry the resuming connection would not have received: from a user it blocks, or
    not sent to the connection it resumes."""
    if entry.sender and entry.sender in session.blocked_user_ids:
        return True
    return bool(resumed_socket and entry.exclude == resumed_socket)
