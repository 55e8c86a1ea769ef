"""The one routing table: event name → payload model, handler and rate-limit bucket.

No handler sees unvalidated input: the payload is validated here against the route's
``TypeAdapter``; a request over its rate limit is not handled at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter, ValidationError

from domain.errors import DomainError
from realtime.connection.session import Session
from realtime.core import metrics
from realtime.core.clock import now_s
from realtime.core.errors import ErrorCode, Reject, ServiceUnavailable
from realtime.core.health import DATABASE, REDIS, RETRY_AFTER_S, Dependency
from realtime.handlers import characters, chat, combat, presence, system
from realtime.handlers.reply import Reply
from realtime.protocol import chat_payloads as chat_p
from realtime.protocol import combat_payloads as combat_p
from realtime.protocol import payloads
from realtime.protocol import world_payloads as world
from realtime.protocol.base import Inbound

logger = logging.getLogger(__name__)


Handler = Callable[..., Awaitable[Reply | None]]


class Lane(StrEnum):
    """How a request is scheduled among the others of its connection (``connection.lanes``)."""

    FAST = "fast"  # handled as it arrives: needs no database
    SLOW = "slow"  # waits on the database: handled in order in the connection's slow lane
    BARRIER = "barrier"  # slow, and changes the connection: later requests wait behind it


@dataclass(frozen=True, slots=True)
class Route:
    payload: TypeAdapter[Any]
    handler: Handler
    # Rate-limit bucket (PROTOCOL.md §6); None for events without a limit.
    bucket: str | None
    lane: Lane = Lane.FAST
    # Whether the payload may hold binary values (Socket.IO attachments). No event takes any
    # today: binary data is refused as INVALID_PAYLOAD naming its fields.
    binary: bool = False
    # Whether the handler takes the time the request's frame arrived (``received_at``).
    timed: bool = False
    # The dependencies the request cannot be served without: while one is known to be down it
    # is refused SERVICE_UNAVAILABLE at once, before its rate limit counts it (§8a).
    needs: tuple[Dependency, ...] = ()


DB, BUS, BOTH = (DATABASE,), (REDIS,), (DATABASE, REDIS)

ROUTES: dict[str, Route] = {
    "ping": Route(payloads.PING, system.ping, "ping"),
    "auth": Route(payloads.AUTH, system.auth_again, None),
    "auth:refresh": Route(payloads.AUTH_REFRESH, system.auth_refresh, None, Lane.SLOW, needs=DB),
    "sync:resume": Route(payloads.SYNC_RESUME, system.sync_resume, None, needs=BUS),
    "character:select": Route(
        world.CHARACTER_SELECT,
        characters.select,
        "character:select",
        Lane.BARRIER,
        timed=True,
        needs=BOTH,
    ),
    "character:move": Route(
        world.CHARACTER_MOVE, characters.move, "character:move", timed=True, needs=BUS
    ),
    "character:change_zone": Route(
        world.CHARACTER_CHANGE_ZONE,
        characters.change_zone,
        None,
        Lane.BARRIER,
        timed=True,
        needs=BOTH,
    ),
    "character:action": Route(
        world.CHARACTER_ACTION, characters.action, "character:action", Lane.SLOW, needs=BUS
    ),
    "character:status_update": Route(
        world.CHARACTER_STATUS, characters.status_update, None, Lane.SLOW, needs=BOTH
    ),
    "presence:get": Route(world.PRESENCE_GET, presence.get, None, needs=BUS),
    "presence:zone": Route(world.EMPTY, presence.zone, None, needs=BUS),
    "chat:message": Route(chat_p.CHAT_MESSAGE, chat.message, "chat:message", Lane.SLOW, needs=BOTH),
    "chat:whisper": Route(chat_p.CHAT_WHISPER, chat.whisper, "chat:whisper", Lane.SLOW, needs=BOTH),
    "chat:emote": Route(chat_p.CHAT_EMOTE, chat.emote, "chat:emote", needs=BUS),
    "chat:history": Route(chat_p.CHAT_HISTORY, chat.history, None, Lane.SLOW, needs=DB),
    "chat:typing": Route(chat_p.CHAT_TYPING, chat.typing, "chat:typing", needs=BUS),
    "chat:block": Route(chat_p.CHAT_USER, chat.block, None, Lane.SLOW, needs=DB),
    "chat:unblock": Route(chat_p.CHAT_USER, chat.unblock, None, Lane.SLOW, needs=DB),
    "chat:blocklist": Route(world.EMPTY, chat.blocklist, None, Lane.SLOW, needs=DB),
    "combat:start": Route(
        combat_p.COMBAT_START, combat.start, "combat:start", Lane.SLOW, needs=BOTH
    ),
    "combat:challenge": Route(
        combat_p.COMBAT_CHALLENGE, combat.challenge, "combat:challenge", Lane.SLOW, needs=BOTH
    ),
    "combat:challenge_response": Route(
        combat_p.COMBAT_CHALLENGE_RESPONSE, combat.challenge_response, None, Lane.SLOW, needs=BOTH
    ),
    "combat:join": Route(combat_p.COMBAT_SESSION, combat.join, None, Lane.SLOW, needs=BOTH),
    "combat:action": Route(
        combat_p.COMBAT_ACTION, combat.action, "combat:action", Lane.SLOW, needs=BOTH
    ),
    "combat:flee": Route(
        combat_p.COMBAT_SESSION, combat.flee, "combat:flee", Lane.SLOW, needs=BOTH
    ),
    "combat:get_state": Route(combat_p.COMBAT_SESSION, combat.get_state, None, Lane.SLOW, needs=DB),
}


# Label children bound once; event labels are limited to the names above.
MESSAGES_IN_BY_EVENT = metrics.event_counter(metrics.MESSAGES_IN, ROUTES)
RATE_LIMITED_BY_EVENT = metrics.event_counter(metrics.RATE_LIMITED, ROUTES)

BINARY_REFUSED = "Binary data is not accepted here"

# Events too frequent to be worth a place in a user's last 100 activities.
NOT_RECORDED = frozenset({"ping", "character:move", "chat:typing"})


def error_event_for(event: str) -> str:
    """``chat:message`` → ``chat:error``; events without a domain → ``error``."""
    domain, sep, _ = event.partition(":")
    return f"{domain}:error" if sep else "error"


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = ".".join(str(part) for part in err["loc"]) or "data"
        fields.setdefault(name, err["msg"])
    return fields


async def dispatch(session: Session, inbound: Inbound) -> None:
    """Route one request; every outcome is answered, nothing raises to the transport."""
    MESSAGES_IN_BY_EVENT.inc(inbound.event)
    route = ROUTES.get(inbound.event)
    if route is None:
        session.reply_error(
            inbound,
            "error",
            {
                "code": ErrorCode.UNKNOWN_EVENT,
                "message": f"Unknown event '{inbound.event[:100]}'",
                "event": inbound.event[:100],
            },
        )
        return
    fields: dict[str, str] = {}
    try:
        payload = route.payload.validate_python(inbound.data)
    except ValidationError as exc:
        fields = validation_fields(exc)
    if inbound.binary and not route.binary:
        # Checked apart from the models: pydantic would turn bytes into a str field's text.
        fields.update(dict.fromkeys(inbound.binary, BINARY_REFUSED))
    if fields:
        session.reply_error(
            inbound,
            "error",
            {
                "code": ErrorCode.INVALID_PAYLOAD,
                "message": f"Invalid payload for '{inbound.event}'",
                "event": inbound.event,
                "fields": fields,
            },
        )
        return
    for dependency in route.needs:
        if not dependency.up:
            unavailable = ServiceUnavailable(dependency.name, RETRY_AFTER_S)
            session.reply_error(inbound, error_event_for(inbound.event), _refusal(unavailable))
            return
    if route.bucket is not None:
        verdict = await session.runtime.limiter.hit(route.bucket, str(session.user_id))
        if not verdict.allowed:
            RATE_LIMITED_BY_EVENT.inc(inbound.event)
            session.reply_error(
                inbound,
                "error",
                {
                    "type": "RATE_LIMIT_EXCEEDED",
                    "code": ErrorCode.RATE_LIMITED,
                    "event": inbound.event,
                    "message": f"Rate limit exceeded for {inbound.event}",
                    "retryAfter": verdict.retry_after,
                },
            )
            return
    if route.lane is Lane.FAST and not session.lane.blocking:
        await _handle(session, route, inbound, payload)
        return
    # Waits while the connection's lane is full: the next frame is read once there is room.
    await session.lane.submit(
        lambda: _handle(session, route, inbound, payload), barrier=route.lane is Lane.BARRIER
    )


def _refusal(rejection: Reject | DomainError | ServiceUnavailable) -> dict[str, Any]:
    return {"code": rejection.code, "message": rejection.message, **rejection.extra}


async def _handle(session: Session, route: Route, inbound: Inbound, payload: Any) -> None:
    """Run the handler and answer: its reply, its refusal, or an internal error."""
    activity: dict[str, Any] | None
    try:
        if route.timed:
            received_at = inbound.received_at or now_s()
            reply = await route.handler(session, payload, received_at=received_at)
        else:
            reply = await route.handler(session, payload)
    except (Reject, DomainError) as rejection:
        session.reply_error(inbound, error_event_for(inbound.event), _refusal(rejection))
        activity = {"ok": False, "code": rejection.code}
    except ServiceUnavailable as unavailable:  # logged once per outage, not per request
        session.reply_error(inbound, error_event_for(inbound.event), _refusal(unavailable))
        activity = None
    except Exception:
        logger.exception("handler for %s failed", inbound.event)
        session.reply_error(
            inbound,
            error_event_for(inbound.event),
            {"code": ErrorCode.INTERNAL_ERROR, "message": "Internal server error"},
        )
        activity = {"ok": False, "code": ErrorCode.INTERNAL_ERROR.value}
    else:
        if reply is None:
            session.reply(inbound, None, None)
        else:
            session.reply(inbound, reply.event, reply.data)
        activity = {"ok": True, **((reply.activity if reply else None) or {})}
    if activity is not None and inbound.event not in NOT_RECORDED:
        session.runtime.presence.record(session, inbound.event, activity)
