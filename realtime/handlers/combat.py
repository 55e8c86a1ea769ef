"""``combat:*`` events (PROTOCOL.md §5.4) and the per-process turn-deadline ticker.

The services own every rule and lock; this module checks access, makes one hop into a service
and publishes what it returns. A fight's events go to ``combat:{id}``; ``combat:start`` goes to
each participant's character room (their connections may be on other processes and join the
combat room through a control message at the same time).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from combat import challenges, services
from combat.services import CombatView
from realtime.connection.session import Session
from realtime.core.clock import now_ms
from realtime.core.db import db
from realtime.core.errors import ErrorCode, Reject
from realtime.core.loops import repeat
from realtime.fanout import rooms as room_names
from realtime.fanout.broadcast import Broadcast
from realtime.fanout.history import StreamPosition
from realtime.handlers.characters import enter_world, playable_character, wire_character
from realtime.handlers.common import playing_of
from realtime.handlers.reply import Reply
from realtime.protocol.combat_payloads import (
    CombatActionPayload,
    CombatChallengePayload,
    CombatChallengeResponsePayload,
    CombatSessionPayload,
    CombatStartPayload,
)
from realtime.runtime.runtime import Runtime

logger = logging.getLogger(__name__)


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


def install(runtime: Runtime) -> None:
    """Every process plays expired turns (``deadline_ticker``)."""
    runtime.add_task(deadline_ticker)


async def _join_fight(broadcast: Broadcast, view: CombatView) -> None:
    """Every connection of every participant joins the fight's room, on every process."""
    room = room_names.combat_room(view.session_id)
    for character_id in view.character_ids:
        await broadcast.control(room_names.character_room(character_id), "join", to=room)


async def publish(broadcast: Broadcast, view: CombatView) -> None:
    """The applied steps, then whose turn it is or how the fight ended, to the fight's room."""
    await _publish_to(broadcast, room_names.combat_room(view.session_id), view)


async def _publish_to(broadcast: Broadcast, room: str, view: CombatView) -> None:
    session_id = str(view.session_id)
    for step in view.steps:
        outcome = step.outcome
        await broadcast.to_room(
            room,
            "combat:action_result",
            {
                "sessionId": session_id,
                "actorId": outcome.actor,
                "action": outcome.action,
                "targetId": outcome.target,
                "result": {
                    "damage": outcome.damage,
                    "healing": outcome.healing,
                    "critical": outcome.critical,
                    "missed": outcome.missed,
                    "effects": list(outcome.effects),
                },
                "state": step.state,
                "timestamp": now_ms(),
            },
        )
        if outcome.action == "flee" and outcome.fled:
            await broadcast.to_room(
                room,
                "combat:player_fled",
                {"sessionId": session_id, "characterId": _character_of(step.state, outcome.actor)},
            )
    if view.finished:
        await broadcast.to_room(room, "combat:end", _end_data(view))
    else:
        state = view.state
        await broadcast.to_room(
            room,
            "combat:turn",
            {
                "sessionId": session_id,
                "currentTurn": state["currentTurn"],
                "round": state["round"],
                "turnDeadline": state["turnDeadline"],
            },
        )


def _end_data(view: CombatView) -> dict[str, Any]:
    winners = [r for r in view.rewards.values() if r.get("experience") or r.get("gold")]
    return {
        "sessionId": str(view.session_id),
        "winner": view.winner,
        "reason": view.reason,
        "rewards": winners[0] if winners else {"experience": 0, "gold": 0},
        "rewardsByCharacter": {str(cid): r for cid, r in view.rewards.items()},
    }


def _character_of(state: dict[str, Any], participant_id: str) -> str | None:
    for participant in state.get("participants", []):
        if participant.get("id") == participant_id:
            return participant.get("characterId")  # type: ignore[no-any-return]
    return None


async def _started(session: Session, view: CombatView) -> None:
    """A new fight: its first events go to each participant's character room, because their
    connections (on any process) are joining the fight's room at this very moment."""
    broadcast = session.runtime.broadcast
    await session.join(room_names.combat_room(view.session_id))
    await _join_fight(broadcast, view)
    for character_id in view.character_ids:
        room = room_names.character_room(character_id)
        await broadcast.to_room(room, "combat:start", view.state)
        await _publish_to(broadcast, room, view)


async def start(session: Session, payload: CombatStartPayload) -> Reply:
    playing = playing_of(session)
    view = await db(
        services.combat_start_pve,
        character_id=playing.character_id,
        monster_key=payload.monster,
        now=timezone.now(),
    )
    await _started(session, view)
    return Reply(None, {"sessionId": str(view.session_id)}, activity={"monster": payload.monster})


async def challenge(session: Session, payload: CombatChallengePayload) -> Reply:
    playing = playing_of(session)
    target = await session.runtime.live.get(payload.characterId)
    if payload.characterId == playing.character_id:
        raise Reject(ErrorCode.TARGET_NOT_FOUND, "You cannot challenge yourself")
    if target is None:
        raise Reject(ErrorCode.TARGET_NOT_FOUND, "No such character is playing")
    if target.zone_id != playing.zone_id:
        raise Reject(ErrorCode.TARGET_NOT_IN_ZONE, "That character is not in your zone")
    made = await db(
        challenges.combat_challenge,
        character_id=playing.character_id,
        target_character_id=payload.characterId,
        now=timezone.now(),
    )
    await session.runtime.broadcast.to_user(
        made.target_owner_id,
        "combat:challenge_received",
        {
            "challengeId": str(made.id),
            "fromCharacterId": str(made.challenger_id),
            "fromName": made.challenger_name,
            "toCharacterId": str(made.target_id),
            "expiresAt": _ms(made.expires_at),
        },
    )
    return Reply(None, {"challengeId": str(made.id), "expiresAt": _ms(made.expires_at)})


async def challenge_response(session: Session, payload: CombatChallengeResponsePayload) -> Reply:
    playing = playing_of(session)
    answer = await db(
        challenges.combat_challenge_respond,
        challenge_id=payload.challengeId,
        character_id=playing.character_id,
        accept=payload.accept,
        now=timezone.now(),
    )
    if answer.view is not None:
        await _started(session, answer.view)
        return Reply(None, {"sessionId": str(answer.view.session_id)})
    await session.runtime.broadcast.to_user(
        answer.challenger_owner_id,
        "combat:challenge_declined",
        {"challengeId": str(answer.challenge_id), "byCharacterId": str(playing.character_id)},
    )
    return Reply(None, {})


async def join(session: Session, payload: CombatSessionPayload) -> Reply:
    playing = playing_of(session)
    view = await _state(session, playing.character_id, payload.sessionId)
    await session.join(room_names.combat_room(view.session_id))
    return Reply("combat:state", view.state)


async def get_state(session: Session, payload: CombatSessionPayload) -> Reply:
    playing = playing_of(session)
    view = await _state(session, playing.character_id, payload.sessionId)
    return Reply("combat:state", view.state)


async def _state(session: Session, character_id: int, session_id: int) -> CombatView:
    return await db(services.combat_state, session_id=session_id, character_id=character_id)


async def action(session: Session, payload: CombatActionPayload) -> Reply:
    if payload.actionType == "flee":
        raise Reject(ErrorCode.INVALID_ACTION, "Use combat:flee to flee")
    view = await _act(session, payload.sessionId, payload.actionType, payload)
    await publish(session.runtime.broadcast, view)
    return Reply(None, {"turnNumber": view.state["turnNumber"]})


async def flee(session: Session, payload: CombatSessionPayload) -> Reply:
    view = await _act(session, payload.sessionId, "flee", None)
    first = view.steps[0].outcome if view.steps else None
    success = bool(first and first.fled)
    chance = first.chance if first and first.chance is not None else 0.0
    await publish(session.runtime.broadcast, view)
    return Reply("combat:flee_result", {"success": success, "chance": chance})


async def _act(
    session: Session, session_id: int, action_type: str, payload: CombatActionPayload | None
) -> CombatView:
    playing = playing_of(session)
    return await db(
        services.combat_act,
        session_id=session_id,
        character_id=playing.character_id,
        action_type=action_type,
        target=payload.targetId if payload else None,
        skill=payload.skillId if payload else None,
        item=payload.itemId if payload else None,
        now=timezone.now(),
    )


# --- reconnects and deadlines ---------------------------------------------------------------


# ``rejoin``'s "not read yet": it reads the active fight itself.
UNKNOWN: Any = object()


async def rejoin(
    session: Session, found: tuple[int, int] | None = UNKNOWN
) -> tuple[dict[str, Any], dict[str, StreamPosition]]:
    """At connect: a user whose character is in a live fight gets it selected and rejoined.

    ``found`` is ``services.active_fight_for_user`` when the caller already read it (in the
    connect's one database call). Returns the ``character`` and ``combat`` of ``sync:initial``
    and the positions of the rooms joined for them.
    """
    if found is UNKNOWN:
        found = await db(services.active_fight_for_user, session.user_id)
    if found is None:
        return {}, {}
    character_id, session_id = found
    view = await playable_character(session.user_id, character_id)
    position, joined = await enter_world(session, view)
    fight = await db(services.combat_state, session_id=session_id, character_id=character_id)
    joined.update(await session.join_many([room_names.combat_room(session_id)]))
    return {"character": wire_character(view, position), "combat": fight.state}, joined


def tick_seconds() -> float:
    return max(0.1, min(1.0, float(settings.AETURNIS_TURN_SECONDS) / 10))


async def deadline_ticker(runtime: Runtime) -> None:
    """Every process plays expired turns; the row lock makes each happen exactly once."""

    async def play_expired() -> None:
        for view in await db(services.combat_timeouts, now=timezone.now()):
            await publish(runtime.broadcast, view)

    await repeat(tick_seconds, play_expired, "playing expired combat turns")
