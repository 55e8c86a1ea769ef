"""``character:*`` events (PROTOCOL.md §5.2): select, move, change zone, actions, status.

Movement never touches the database: it is judged by ``characters.rules`` against the live
position (``realtime.state.live``) by the server's clock and written behind by ``PositionWriter``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.conf import settings

from characters import rules, selectors, services
from characters.selectors import CharacterView
from combat.services import active_session_for_character
from realtime.connection.session import Session
from realtime.core.clock import now_ms, now_s
from realtime.core.constants import CloseReason
from realtime.core.db import db
from realtime.core.eager import settle, started
from realtime.core.errors import ErrorCode, Reject
from realtime.core.reads import read
from realtime.fanout import rooms as room_names
from realtime.fanout.history import StreamPosition
from realtime.handlers.common import playing_of
from realtime.handlers.reply import Reply
from realtime.protocol.world_payloads import (
    CharacterActionPayload,
    CharacterChangeZonePayload,
    CharacterMovePayload,
    CharacterSelectPayload,
    CharacterStatusPayload,
)
from realtime.state.live import LiveState
from realtime.state.playing import Playing

logger = logging.getLogger(__name__)


def wire_position(p: rules.Position) -> dict[str, float]:
    return {"x": p.x, "y": p.y, "z": p.z, "direction": p.direction}


def wire_character(view: CharacterView, position: rules.Position) -> dict[str, Any]:
    """The contract's ``Character`` object."""
    return {
        "id": str(view.id),
        "name": view.name,
        "class": view.character_class,
        "level": view.level,
        "zone": view.zone.key,
        "position": wire_position(position),
        "health": view.health,
        "maxHealth": view.max_health,
        "mana": view.mana,
        "maxMana": view.max_mana,
        "stats": {
            "strength": view.strength,
            "agility": view.agility,
            "intelligence": view.intelligence,
        },
        "status": view.status,
        "guildId": None if view.guild_id is None else str(view.guild_id),
    }


async def _leave_playing(session: Session, playing: Playing) -> None:
    await session.leave(room_names.character_room(playing.character_id))
    await session.leave(room_names.zone_room(playing.zone))
    if playing.guild_id is not None:
        await session.leave(room_names.guild_room(playing.guild_id))


async def playable_character(user_id: int, character_id: int) -> CharacterView:
    """The character ``user_id`` may play, as stored (``characters.selectors`` decides; the
    read runs on the event loop on PostgreSQL, ``realtime.core.reads``)."""
    return await read(
        selectors.character_statement,
        [character_id],
        functools.partial(
            selectors.character_from_rows, user_id=user_id, character_id=character_id
        ),
    )


async def live_state(session: Session, playing: Playing) -> LiveState:
    """The character's live state; rebuilt from the database if it was dropped."""
    state = await session.runtime.live.get(playing.character_id)
    if state is not None and state.zone_id == playing.zone_id:
        return state
    view = await playable_character(session.user_id, playing.character_id)
    state = LiveState(view.id, view.zone.id, view.zone.key, view.position, now_s())
    await session.runtime.live.put(state, dirty=False)
    return state


async def enter_world(
    session: Session, view: CharacterView, at: float | None = None
) -> tuple[rules.Position, dict[str, StreamPosition]]:
    """Make ``view`` this connection's character: rooms, live state, presence, ``online``.

    Leaves the rooms of a character played before. ``at`` is when the request arrived (the
    movement budget starts empty then). Returns the live position and the stream positions of
    the rooms joined (so the client can resume them, PROTOCOL.md §8).
    """
    runtime = session.runtime
    previous = session.playing
    if previous is not None:
        await _leave_playing(session, previous)
        if previous.character_id != view.id:
            await runtime.positions.flush_character(previous.character_id)
    # The movement budget starts (empty) at the selection (PROTOCOL.md §5.2); a live position
    # in the same zone is carried over.
    since = now_s() if at is None else at
    # The live state, the rooms and presence do not need each other's answers: started back to
    # back, their three scripts leave together and Redis runs them in this order (eager.py).
    entering = started(
        runtime.live.enter(LiveState(view.id, view.zone.id, view.zone.key, view.position, since))
    )
    playing = session.playing = Playing.of(view)
    joining = started(
        session.join_many(
            [
                room_names.character_room(view.id),
                room_names.zone_room(view.zone.key),
                *([] if view.guild_id is None else [room_names.guild_room(view.guild_id)]),
            ]
        )
    )
    announcing = started(runtime.presence.playing_changed(session))
    live, joined, _ = await settle(entering, joining, announcing)
    position = live.position
    await session.runtime.broadcast.to_room(
        room_names.zone_room(playing.zone),
        "character:online",
        {
            "characterId": str(view.id),
            "userId": str(session.user_id),
            "name": view.name,
            "position": wire_position(position),
            "timestamp": now_ms(),
        },
        exclude=session.socket_id,
        sender=session.user_id,
    )
    return position, joined


def wire_positions(positions: dict[str, StreamPosition]) -> dict[str, dict[str, int | str]]:
    return {room: position.wire() for room, position in positions.items()}


async def select(session: Session, payload: CharacterSelectPayload, *, received_at: float) -> Reply:
    view = await playable_character(session.user_id, payload.characterId)
    position, joined = await enter_world(session, view, received_at)
    return Reply(
        "character:selected",
        {
            "character": wire_character(view, position),
            "timestamp": now_ms(),
            "offsets": wire_positions(joined),
        },
        activity={"characterId": str(view.id), "zone": view.zone.key},
    )


def speed_limit() -> rules.SpeedLimit:
    return rules.SpeedLimit(
        max_speed=float(settings.AETURNIS_MAX_SPEED), burst_s=float(settings.AETURNIS_MOVE_BURST_S)
    )


async def move(session: Session, payload: CharacterMovePayload, *, received_at: float) -> None:
    """Judge a move on its arrival time against the character's distance budget (§5.2)."""
    playing = playing_of(session)
    state = await live_state(session, playing)
    current = state.position
    target = rules.Position(
        float(payload.x),
        float(payload.y),
        current.z if payload.z is None else float(payload.z),
        current.direction if payload.direction is None else float(payload.direction),
    )
    judged = rules.judge_budgeted_move(
        current=current,
        budget=rules.Budget(state.budget, state.since),
        target=target,
        now=received_at,
        bounds=playing.bounds,
        limit=speed_limit(),
        last_seq=playing.last_seq,
        seq=payload.seq,
    )
    echo = {} if payload.seq is None else {"seq": payload.seq}
    if not judged.accepted:
        verdict = judged.verdict
        if verdict.is_violation:
            _violation(session, playing, verdict, received_at)
        reason = {"reason": verdict.reason} if verdict.reason else {}
        raise Reject(
            verdict.error_code,
            _MOVE_MESSAGES[verdict],
            position=wire_position(current),
            **reason,
            **echo,
        )
    playing.last_seq = judged.last_seq
    budget = judged.budget
    await session.runtime.live.put(
        LiveState(
            playing.character_id, playing.zone_id, playing.zone, target, budget.at, budget.left
        ),
        dirty=True,
    )
    await session.runtime.broadcast.to_room(
        room_names.zone_room(playing.zone),
        "character:moved",
        {
            "characterId": str(playing.character_id),
            "position": wire_position(target),
            "timestamp": int(received_at * 1000),
            **echo,
        },
        exclude=session.socket_id,
        sender=session.user_id,
    )


_MOVE_MESSAGES = {
    rules.MoveVerdict.STALE: "This move is older than one already accepted",
    rules.MoveVerdict.INVALID: "Position must be finite numbers inside the zone",
    rules.MoveVerdict.TOO_FAST: "Moving faster than allowed",
    rules.MoveVerdict.TELEPORT: "Teleporting is not allowed",
}


def _violation(session: Session, playing: Playing, verdict: rules.MoveVerdict, now: float) -> None:
    """Count a rejected move; the limit-th within a minute ends the connection (4003)."""
    playing.violations, suspicious = rules.record_violation(
        playing.violations, now, limit=settings.AETURNIS_MOVE_VIOLATIONS
    )
    if suspicious:
        logger.warning(
            "suspicious movement: user %s character %s (%s); closing %s",
            session.user_id,
            playing.character_id,
            verdict.value,
            session.socket_id,
        )
        session.kick("Suspicious movement", CloseReason.SUSPICIOUS_MOVEMENT)


async def change_zone(
    session: Session, payload: CharacterChangeZonePayload, *, received_at: float
) -> Reply:
    playing = playing_of(session)
    staff = bool(session.account and session.account.is_staff)
    if await db(active_session_for_character, playing.character_id) is not None:
        raise Reject(ErrorCode.IN_COMBAT, "You cannot leave the zone during a fight")
    change = await db(
        services.character_zone_change,
        character_id=playing.character_id,
        zone_key=payload.zone,
        staff=staff,
    )
    runtime = session.runtime
    new = change.zone
    await runtime.live.put(
        LiveState(playing.character_id, new.id, new.key, change.position, received_at),
        dirty=False,
    )
    old = playing.zone
    await session.leave(room_names.zone_room(old))
    playing.enter(new)
    joined = await session.join_many([room_names.zone_room(new.key)])
    await runtime.presence.playing_changed(session)
    # Other connections playing the same character follow it.
    await session.runtime.broadcast.control(
        room_names.character_room(playing.character_id),
        "enter_zone",
        characterId=playing.character_id,
        zone=playing.zone_message(),
    )
    common = {
        "characterId": str(playing.character_id),
        "userId": str(session.user_id),
        "name": playing.name,
        "timestamp": now_ms(),
    }
    await session.runtime.broadcast.to_room(
        room_names.zone_room(old),
        "zone:character_left",
        {**common, "zone": old, "toZone": new.key},
        exclude=session.socket_id,
        sender=session.user_id,
    )
    await session.runtime.broadcast.to_room(
        room_names.zone_room(new.key),
        "zone:character_entered",
        {**common, "zone": new.key, "fromZone": old},
        exclude=session.socket_id,
        sender=session.user_id,
    )
    return Reply(
        "character:zone_changed",
        {
            "zone": new.key,
            "position": wire_position(change.position),
            "offsets": wire_positions(joined),
        },
        activity={"from": old, "to": new.key},
    )


async def action(session: Session, payload: CharacterActionPayload) -> Reply:
    playing = playing_of(session)
    rule = rules.action_rule(payload.action)
    if rule is None:
        raise Reject(ErrorCode.INVALID_ACTION, f"Unknown action '{payload.action[:64]}'")
    runtime = session.runtime
    state = await live_state(session, playing)
    target = await runtime.live.get(payload.targetId) if payload.targetId else None
    problem = rules.check_action(
        rule=rule,
        actor_id=playing.character_id,
        actor=state.position,
        mana=playing.mana,
        target_id=payload.targetId,
        target=target.position if target else None,
        target_in_zone=target is not None and target.zone_id == playing.zone_id,
        parameters=payload.parameters or {},
    )
    if problem is not None:
        message = rules.ACTION_PROBLEM_MESSAGES[problem]
        raise Reject(ErrorCode.INVALID_ACTION, message, reason=problem.value)
    left_ms = await runtime.live.claim_cooldown(playing.character_id, rule.name, rule.cooldown_ms)
    if left_ms:
        raise Reject(
            ErrorCode.ACTION_ON_COOLDOWN, f"'{rule.name}' is on cooldown", retryAfterMs=left_ms
        )
    if rule.mana_cost:
        mana = await db(
            services.character_mana_spend,
            character_id=playing.character_id,
            amount=rule.mana_cost,
        )
        if mana is None:
            problem = rules.ActionProblem.NOT_ENOUGH_MANA
            message = rules.ACTION_PROBLEM_MESSAGES[problem]
            raise Reject(ErrorCode.INVALID_ACTION, message, reason=problem.value)
        playing.mana = mana
    result = _action_result(rule, state, target, payload)
    result["mana"] = playing.mana
    timestamp = now_ms()
    target_id = None if payload.targetId is None else str(payload.targetId)
    await session.runtime.broadcast.to_room(
        room_names.zone_room(playing.zone),
        "character:action_broadcast",
        {
            "characterId": str(playing.character_id),
            "action": rule.name,
            "targetId": target_id,
            "result": result,
            "timestamp": timestamp,
        },
        exclude=session.socket_id,
        sender=session.user_id,
    )
    return Reply(
        "character:action_result", {"action": rule.name, "result": result, "timestamp": timestamp}
    )


def _action_result(
    rule: rules.ActionRule,
    state: LiveState,
    target: LiveState | None,
    payload: CharacterActionPayload,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "success": True,
        "targetId": None if payload.targetId is None else str(payload.targetId),
        "distance": None,
        "manaCost": rule.mana_cost,
        "cooldownMs": rule.cooldown_ms,
    }
    if target is not None:
        result["distance"] = round(rules.distance(state.position, target.position), 3)
    if payload.parameters and "itemId" in payload.parameters:
        result["itemId"] = payload.parameters["itemId"]
    return result


async def status_update(session: Session, payload: CharacterStatusPayload) -> None:
    playing = playing_of(session)
    message = rules.clean_status_message(payload.message)
    problem = rules.check_status(payload.status, message)
    if problem is not None:
        raise Reject(ErrorCode.INVALID_STATUS, problem)
    await db(
        services.character_status_set, character_id=playing.character_id, status=payload.status
    )
    await session.runtime.broadcast.to_room(
        room_names.zone_room(playing.zone),
        "character:status_changed",
        {
            "characterId": str(playing.character_id),
            "status": payload.status,
            "message": message,
            "timestamp": now_ms(),
        },
        exclude=session.socket_id,
        sender=session.user_id,
    )
