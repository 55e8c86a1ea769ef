"""``presence:*`` events (PROTOCOL.md §5.5)."""

from __future__ import annotations

from realtime.connection.session import Session
from realtime.core.errors import ErrorCode, Reject
from realtime.handlers.reply import Reply
from realtime.protocol.world_payloads import EmptyPayload, PresenceGetPayload

MAX_PRESENCE_IDS = 100


async def get(session: Session, payload: PresenceGetPayload) -> Reply:
    """Every id asked for is answered; unknown or disconnected users are ``offline``."""
    if len(payload.userIds) > MAX_PRESENCE_IDS:
        raise Reject(
            ErrorCode.INVALID_REQUEST, f"Ask for at most {MAX_PRESENCE_IDS} users at a time"
        )
    user_ids = list(dict.fromkeys(payload.userIds))
    users = await session.runtime.presence.state_of(user_ids)
    return Reply("presence:state", {"users": users})


async def zone(session: Session, payload: EmptyPayload) -> Reply:
    if session.playing is None:
        raise Reject(ErrorCode.NO_CHARACTER, "Select a character first")
    zone_key = session.playing.zone
    characters = await session.runtime.presence.zone_listing(zone_key)
    return Reply(
        "presence:zone", {"zone": zone_key, "count": len(characters), "characters": characters}
    )
