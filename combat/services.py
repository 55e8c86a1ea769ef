"""Write-side of combat. Every change to a session happens under its row lock, in one transaction.

Two participants on two server processes therefore see one sequence of turns: an action is
checked against the state as stored, applied by the pure engine, and stored with the next
sequence number before the lock is released; a duplicate or out-of-turn action is refused.
Monster turns that follow a player's action are played in the same transaction. Expired turns
are played as ``defend`` by whichever process notices first — the deadline is re-checked under
the lock, so exactly once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from characters.models import Character
from combat import engine
from combat.models import (
    CombatAction,
    CombatParticipant,
    CombatSession,
    MonsterTemplate,
    SessionKind,
    SessionStatus,
)
from domain.errors import DomainError

MAX_AI_TURNS = 50  # safety bound on consecutive monster turns in one call


class CombatError(DomainError):
    code = "INVALID_ACTION"


class AlreadyInCombat(CombatError):
    code = "ALREADY_IN_COMBAT"


class MonsterNotFound(CombatError):
    code = "MONSTER_NOT_FOUND"


class NotInCombat(CombatError):
    code = "NOT_IN_COMBAT"


class SessionNotFound(CombatError):
    code = "SESSION_NOT_FOUND"


class ChallengeNotFound(CombatError):
    code = "CHALLENGE_NOT_FOUND"


class TargetNotFound(CombatError):
    code = "TARGET_NOT_FOUND"


PROBLEM_ERRORS: dict[str, type[CombatError]] = {
    engine.Problem.FINISHED: NotInCombat,
    engine.Problem.NOT_A_PARTICIPANT: NotInCombat,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One applied action and the state right after it."""

    action: engine.Action
    outcome: engine.Outcome
    state: dict[str, object]


@dataclass(frozen=True, slots=True)
class CombatView:
    """What the realtime layer publishes after a service call."""

    session_id: int
    state: dict[str, object]  # the contract's CombatState
    character_ids: list[int]  # characters taking part (whose connections share the room)
    steps: list[Step] = field(default_factory=list)
    finished: bool = False
    winner: str | None = None
    reason: str | None = None
    rewards: dict[int, dict[str, int]] = field(default_factory=dict)  # character id → reward


# --- helpers ------------------------------------------------------------------------------


def _seed(session_id: int) -> int:
    configured = settings.AETURNIS_COMBAT_SEED
    if configured is None:
        return secrets.randbits(62)
    digest = hashlib.sha256(f"{configured}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def _deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=float(settings.AETURNIS_TURN_SECONDS))


def state_of(session: CombatSession, fight: engine.Fight) -> dict[str, object]:
    view = engine.state_view(fight)
    deadline = session.turn_deadline
    return {
        "sessionId": str(session.pk),
        **view,
        "turnDeadline": int(deadline.timestamp() * 1000) if deadline else None,
    }


def _fighter_from_character(pid: str, side: str, character: Character) -> engine.Fighter:
    return engine.Fighter(
        id=pid,
        name=character.name,
        side=side,
        level=character.level,
        hp=max(1, character.health),
        max_hp=character.max_health,
        mp=character.mana,
        max_mp=character.max_mana,
        strength=character.strength,
        agility=character.agility,
        intelligence=character.intelligence,
        character_id=character.pk,
    )


def _fighter_from_monster(pid: str, monster: MonsterTemplate) -> engine.Fighter:
    return engine.Fighter(
        id=pid,
        name=monster.name,
        side=engine.Side.MONSTERS,
        level=monster.level,
        hp=monster.max_hp,
        max_hp=monster.max_hp,
        mp=monster.max_mp,
        max_mp=monster.max_mp,
        strength=monster.strength,
        agility=monster.agility,
        intelligence=monster.intelligence,
        monster=monster.key,
        ai=True,
        xp_reward=monster.xp_reward,
        gold_reward=monster.gold_reward,
    )


def characters_busy(character_ids: list[int]) -> bool:
    return CombatParticipant.objects.filter(character_id__in=character_ids, active=True).exists()


def lock_characters(character_ids: list[int]) -> dict[int, Character]:
    """Lock the characters in id order (no deadlocks) so two starts cannot both pass."""
    rows = Character.objects.select_for_update().filter(pk__in=character_ids).order_by("pk")
    return {c.pk: c for c in rows}


def _play(
    session: CombatSession, fight: engine.Fight, action: engine.Action, steps: list[Step]
) -> engine.Fight:
    """Apply one action, log it, and remember the state right after it."""
    fight, outcome = engine.apply(fight, action)
    CombatAction.objects.create(
        session=session,
        seq=fight.turn_number - 1,
        action={
            "actor": action.actor,
            "type": action.type,
            "target": action.target,
            "skill": action.skill,
            "item": action.item,
            "timed_out": action.timed_out,
        },
        outcome=outcome.to_json(),
    )
    steps.append(Step(action, outcome, engine.state_view(fight)))
    return fight


def _play_monsters(session: CombatSession, fight: engine.Fight, steps: list[Step]) -> engine.Fight:
    for _ in range(MAX_AI_TURNS):
        if fight.status != "active" or fight.current is None:
            break
        if not fight.fighter(fight.current).ai:
            break
        fight = _play(session, fight, engine.monster_action(fight), steps)
    return fight


def _save(
    session: CombatSession, fight: engine.Fight, steps: list[Step], now: datetime
) -> CombatView:
    """Store the fight; on its end write rewards, health and mana back to the characters."""
    session.state = fight.to_json()
    finished = fight.status == "finished"
    session.turn_deadline = None if finished else _deadline(now)
    rewards: dict[int, dict[str, int]] = {}
    if finished:
        session.status = SessionStatus.FINISHED
        session.winner = fight.winner or ""
        session.reason = fight.reason or ""
        CombatParticipant.objects.filter(session=session).update(active=False)
        rewards = _write_back(fight)
    session.save()
    deadline = state_of(session, fight)["turnDeadline"]
    shown = [
        Step(step.action, step.outcome, {"sessionId": str(session.pk), **step.state,
                                          "turnDeadline": deadline})
        for step in steps
    ]  # fmt: skip
    return CombatView(
        session_id=session.pk,
        state=state_of(session, fight),
        character_ids=[f.character_id for f in fight.fighters if f.character_id],
        steps=shown,
        finished=finished,
        winner=fight.winner,
        reason=fight.reason,
        rewards=rewards,
    )


def _write_back(fight: engine.Fight) -> dict[int, dict[str, int]]:
    rewards: dict[int, dict[str, int]] = {}
    for fighter in fight.fighters:
        if fighter.character_id is None:
            continue
        reward = fight.rewards.get(fighter.id, {"experience": 0, "gold": 0})
        rewards[fighter.character_id] = reward
        Character.objects.filter(pk=fighter.character_id).update(
            health=max(1, fighter.hp),
            mana=fighter.mp,
            experience=F("experience") + reward.get("experience", 0),
            gold=F("gold") + reward.get("gold", 0),
        )
    return rewards


def new_session(
    kind: str, fighters_of: list[tuple[str, str, Character | MonsterTemplate]], now: datetime
) -> CombatView:
    session = CombatSession.objects.create(kind=kind)
    session.seed = _seed(session.pk)
    fighters: list[engine.Fighter] = []
    for pid, side, who in fighters_of:
        if isinstance(who, Character):
            fighters.append(_fighter_from_character(pid, side, who))
            CombatParticipant.objects.create(
                session=session, participant_id=pid, character=who, side=side
            )
        else:
            fighters.append(_fighter_from_monster(pid, who))
            CombatParticipant.objects.create(
                session=session, participant_id=pid, monster=who, side=side
            )
    fight = engine.start(fighters, session.seed)
    steps: list[Step] = []
    fight = _play_monsters(session, fight, steps)
    return _save(session, fight, steps, now)


# --- public services ----------------------------------------------------------------------


@transaction.atomic
def combat_start_pve(*, character_id: int, monster_key: str, now: datetime) -> CombatView:
    """A new fight of the character against one monster; monsters that win the initiative act
    at once. Raises ``AlreadyInCombat`` or ``MonsterNotFound``."""
    characters = lock_characters([character_id])
    if characters_busy([character_id]):
        raise AlreadyInCombat("Your character is already in a fight")
    monster = MonsterTemplate.objects.filter(key=monster_key).first()
    if monster is None:
        raise MonsterNotFound(f"No monster called '{monster_key[:64]}'")
    return new_session(
        SessionKind.PVE,
        [
            ("p1", engine.Side.PLAYERS, characters[character_id]),
            ("m1", engine.Side.MONSTERS, monster),
        ],
        now,
    )


def _locked_session(session_id: int) -> CombatSession:
    session = CombatSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise SessionNotFound(f"Combat session {session_id} does not exist")
    return session


def _participant(session: CombatSession, character_id: int) -> str:
    row = (
        CombatParticipant.objects.filter(session=session, character_id=character_id)
        .values_list("participant_id", flat=True)
        .first()
    )
    if row is None:
        raise NotInCombat("Your character is not in this fight")
    return row


@transaction.atomic
def combat_act(
    *,
    session_id: int,
    character_id: int,
    action_type: str,
    target: str | None = None,
    skill: str | None = None,
    item: str | None = None,
    now: datetime,
) -> CombatView:
    """Apply the character's action under the session lock, then any monster turns.

    Raises ``SessionNotFound``, ``NotInCombat`` (not a participant, or the fight is over) or
    ``CombatError`` with the engine's code (``NOT_YOUR_TURN`` with ``currentTurn``,
    ``INVALID_TARGET``, ``INVALID_ACTION``).
    """
    session = _locked_session(session_id)
    actor = _participant(session, character_id)
    if session.status != SessionStatus.ACTIVE:
        raise NotInCombat("This fight is over")
    fight = engine.Fight.from_json(session.state)
    action = engine.Action(actor=actor, type=action_type, target=target, skill=skill, item=item)
    problem = engine.check(fight, action)
    if problem is not None:
        error = PROBLEM_ERRORS.get(problem)
        if error is not None:
            raise error("Your character is not in this fight")
        exc = CombatError(_PROBLEM_MESSAGES.get(problem, problem.value))
        exc.code = problem.value
        if problem == engine.Problem.NOT_YOUR_TURN:
            exc.extra["currentTurn"] = fight.current
        raise exc
    steps: list[Step] = []
    fight = _play(session, fight, action, steps)
    fight = _play_monsters(session, fight, steps)
    return _save(session, fight, steps, now)


_PROBLEM_MESSAGES = {
    engine.Problem.NOT_YOUR_TURN: "It is not your turn",
    engine.Problem.INVALID_TARGET: "That is not a valid target",
    engine.Problem.INVALID_ACTION: "That action is not possible now",
}


def combat_timeouts(*, now: datetime, limit: int = 50) -> list[CombatView]:
    """Play every expired turn as ``defend`` (exactly once across processes); the results."""
    due = list(
        CombatSession.objects.filter(status=SessionStatus.ACTIVE, turn_deadline__lte=now)
        .order_by("turn_deadline")
        .values_list("pk", flat=True)[:limit]
    )
    views = []
    for session_id in due:
        view = _timeout_one(session_id, now)
        if view is not None:
            views.append(view)
    return views


@transaction.atomic
def _timeout_one(session_id: int, now: datetime) -> CombatView | None:
    session = (
        CombatSession.objects.select_for_update(skip_locked=True)
        .filter(pk=session_id, status=SessionStatus.ACTIVE, turn_deadline__lte=now)
        .first()
    )
    if session is None:  # another process took it, or it moved on
        return None
    fight = engine.Fight.from_json(session.state)
    if fight.current is None:
        return None
    steps: list[Step] = []
    fight = _play(
        session,
        fight,
        engine.Action(actor=fight.current, type=engine.ActionType.DEFEND, timed_out=True),
        steps,
    )
    fight = _play_monsters(session, fight, steps)
    return _save(session, fight, steps, now)


def combat_state(*, session_id: int, character_id: int) -> CombatView:
    """The stored state of a session the character takes part in."""
    session = CombatSession.objects.filter(pk=session_id).first()
    if session is None:
        raise SessionNotFound(f"Combat session {session_id} does not exist")
    _participant(session, character_id)
    fight = engine.Fight.from_json(session.state)
    return CombatView(
        session_id=session.pk,
        state=state_of(session, fight),
        character_ids=[f.character_id for f in fight.fighters if f.character_id],
        finished=session.status == SessionStatus.FINISHED,
        winner=session.winner or None,
        reason=session.reason or None,
    )


def active_session_for_character(character_id: int) -> int | None:
    return (
        CombatParticipant.objects.filter(character_id=character_id, active=True)
        .values_list("session_id", flat=True)
        .first()
    )


def active_fight_for_user(user_id: int) -> tuple[int, int] | None:
    """(character id, session id) of the user's character in a live fight, if any."""
    row = (
        CombatParticipant.objects.filter(character__owner_id=user_id, active=True)
        .values_list("character_id", "session_id")
        .first()
    )
    return (row[0], row[1]) if row and row[0] is not None else None


def now() -> datetime:
    return timezone.now()
