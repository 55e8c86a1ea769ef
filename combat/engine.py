"""Pure turn-based combat engine (PROTOCOL.md §5.4). No Django, no I/O, stdlib only.

A ``Fight`` is plain data: ``to_json``/``from_json`` store it between actions, on any process.
Every random draw comes from a generator derived from the seed and a label (the turn number for
actions), so a fight replays identically from its seed and its action log.

Rules (a = attacker, t = target; "agility edge" = a.agility - t.agility):

- Initiative: 2 x agility + level + d20; order by initiative, then agility (both descending),
  then participant id. The order is fixed; dead and fled fighters are skipped.
- Hit chance: 90 % + 2 % per point of agility edge, clamped to 50-98 %.
- Critical: 10 % + 1 % per positive point of agility edge, at most 35 %; doubles damage.
- Damage: power = multiplier x (a.stat + a.level), defence = (t.stat + t.level) // 2, with the
  stat strength for attack/power_strike and intelligence for fireball; damage =
  max(1, round(max(1, power - defence) x U(0.85, 1.15))), x2 on a critical, then halved
  (floor, min 1) when the target is defending. ``Outcome.damage`` is this rolled damage; the
  target loses at most its remaining HP. Every strike draws hit, critical and variance, in that
  order, so two states that differ only in, say, ``defending`` roll the same numbers.
- Defend lasts until the defender's next turn. A timed-out turn is played as defend; the
  MISSED_TURNS_FORFEIT-th timed-out turn in a row makes the actor leave (status fled) instead.
- Heal restores 10 + intelligence + level HP; potions restore fixed amounts. Both never exceed
  the maximum, cannot target enemies or the fallen, and do not use the generator.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

FLEE_CHANCE = 0.75
MISSED_TURNS_FORFEIT = 3
BASE_HIT, HIT_PER_AGILITY, MIN_HIT, MAX_HIT = 0.90, 0.02, 0.50, 0.98
BASE_CRIT, CRIT_PER_AGILITY, MAX_CRIT = 0.10, 0.01, 0.35
CRIT_MULTIPLIER = 2
VARIANCE = 0.15
PVP_XP_PER_LEVEL = 10
AI_LOW_HP = 0.30  # monsters heal themselves below this fraction of max_hp, if they have the mp
AI_SKILL_CHANCE = 0.3  # chance that a monster with the mp uses power_strike instead of attack


class Side(StrEnum):
    PLAYERS = "players"
    MONSTERS = "monsters"
    CHALLENGER = "challenger"
    DEFENDER = "defender"


OPPONENT: dict[str, str] = {
    Side.PLAYERS: Side.MONSTERS,
    Side.MONSTERS: Side.PLAYERS,
    Side.CHALLENGER: Side.DEFENDER,
    Side.DEFENDER: Side.CHALLENGER,
}
_PVP_SIDES = frozenset({Side.CHALLENGER.value, Side.DEFENDER.value})


class Status(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    FLED = "fled"


class ActionType(StrEnum):
    ATTACK = "attack"
    DEFEND = "defend"
    SKILL = "skill"
    ITEM = "item"
    FLEE = "flee"


_ACTION_TYPES = frozenset(t.value for t in ActionType)


class EndReason(StrEnum):
    VICTORY = "victory"
    DEFEAT = "defeat"
    FLEE = "flee"
    TIMEOUT = "timeout"
    DISCONNECT = "disconnect"


class Problem(StrEnum):
    FINISHED = "FINISHED"
    NOT_YOUR_TURN = "NOT_YOUR_TURN"
    INVALID_TARGET = "INVALID_TARGET"
    INVALID_ACTION = "INVALID_ACTION"
    NOT_A_PARTICIPANT = "NOT_A_PARTICIPANT"


ACTIVE, FINISHED = "active", "finished"


@dataclass(frozen=True)
class Skill:
    key: str
    mp_cost: int
    offensive: bool  # offensive: targets a living enemy; otherwise self or a living ally
    stat: str  # "strength" or "intelligence"
    multiplier: float
    base: int = 0

    def rating(self, fighter: Fighter) -> int:
        """The fighter's stat for this skill plus its level (attack and defence both use it)."""
        stats = {"strength": fighter.strength, "intelligence": fighter.intelligence}
        return stats[self.stat] + fighter.level

    def power(self, fighter: Fighter) -> float:
        """base + multiplier x rating."""
        return self.base + self.multiplier * self.rating(fighter)


@dataclass(frozen=True)
class Item:
    key: str
    hp: int = 0
    mp: int = 0


_ATTACK = Skill("attack", 0, offensive=True, stat="strength", multiplier=1.0)
SKILLS: dict[str, Skill] = {
    s.key: s
    for s in (
        Skill("power_strike", 5, offensive=True, stat="strength", multiplier=1.5),
        Skill("fireball", 10, offensive=True, stat="intelligence", multiplier=1.5),
        Skill("heal", 8, offensive=False, stat="intelligence", multiplier=1.0, base=10),
    )
}
ITEMS: dict[str, Item] = {
    i.key: i for i in (Item("health_potion", hp=30), Item("mana_potion", mp=20))
}


@dataclass
class Fighter:
    id: str  # participant id, unique within the fight
    name: str
    side: str  # a Side value
    level: int
    hp: int
    max_hp: int
    mp: int
    max_mp: int
    strength: int
    agility: int
    intelligence: int
    character_id: int | None = None
    monster: str | None = None  # monster template key
    ai: bool = False  # acts by server rule (monster_action)
    status: str = Status.ALIVE.value
    defending: bool = False
    missed_turns: int = 0  # consecutive turns played by timeout
    xp_reward: int = 0  # what defeating this fighter gives (PvE)
    gold_reward: int = 0


@dataclass
class Fight:
    seed: int
    fighters: list[Fighter]
    turn_order: list[str]  # participant ids, by initiative
    round: int = 1
    turn_number: int = 1  # increments on every applied action
    current: str | None = None  # whose turn it is; None once finished
    status: str = ACTIVE
    winner: str | None = None  # a Side value
    reason: str | None = None  # an EndReason value
    rewards: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready deep copy (dicts, lists, str, int, bool, None)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fight:
        """The inverse of ``to_json``; shares no mutable state with ``data``."""
        fields = dict(data)
        fields["fighters"] = [Fighter(**f) for f in data["fighters"]]
        fields["turn_order"] = list(data["turn_order"])
        fields["rewards"] = {pid: dict(r) for pid, r in data["rewards"].items()}
        return cls(**fields)

    def fighter(self, participant_id: str) -> Fighter:
        """The fighter with this participant id; raises KeyError if there is none."""
        for f in self.fighters:
            if f.id == participant_id:
                return f
        raise KeyError(participant_id)

    def living(self) -> list[Fighter]:
        """Fighters whose status is alive, in roster order."""
        return [f for f in self.fighters if f.status == Status.ALIVE]


@dataclass(frozen=True)
class Action:
    actor: str
    type: str  # an ActionType value
    target: str | None = None
    skill: str | None = None
    item: str | None = None
    timed_out: bool = False  # set by the server when the turn expired (type must be defend)


@dataclass(frozen=True)
class Outcome:
    actor: str
    action: str
    target: str | None
    damage: int = 0
    healing: int = 0
    critical: bool = False
    missed: bool = False
    fled: bool | None = None
    chance: float | None = None
    effects: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rng(seed: int, label: object) -> random.Random:
    # Seeding with a str hashes it with SHA-512: stable across processes and PYTHONHASHSEED.
    return random.Random(f"{seed}:{label}")  # noqa: S311 - game dice, not secrets


def roll_initiative(fighters: list[Fighter], seed: int) -> dict[str, int]:
    """Participant id -> 2 x agility + level + d20, rolled in roster order from the seed."""
    rng = _rng(seed, "initiative")
    return {f.id: 2 * f.agility + f.level + rng.randint(1, 20) for f in fighters}


def start(fighters: list[Fighter], seed: int) -> Fight:
    """A new fight over copies of ``fighters``; the first in initiative order is current.

    Raises ValueError for duplicate ids, unknown sides or statuses, HP/MP outside
    [0, max], or anything but two opposing sides with at least one living fighter each.
    """
    roster = [
        Fighter(**{**asdict(f), "side": Side(f.side).value, "status": Status(f.status).value})
        for f in fighters
    ]
    sides = {f.side for f in roster}
    if len({f.id for f in roster}) != len(roster):
        raise ValueError("participant ids must be unique")
    if len(sides) != 2 or OPPONENT[min(sides)] != max(sides):
        raise ValueError(f"a fight needs two opposing sides, got {sorted(sides)}")
    if any(not (0 <= f.hp <= f.max_hp and 0 <= f.mp <= f.max_mp) for f in roster):
        raise ValueError("hp and mp must lie within [0, max]")
    if any(not _alive_on(roster, side) for side in sides):
        raise ValueError("each side needs a living fighter")
    rolls = roll_initiative(roster, seed)
    order = sorted(roster, key=lambda f: (-rolls[f.id], -f.agility, f.id))
    current = next(f.id for f in order if f.status == Status.ALIVE)
    return Fight(seed=seed, fighters=roster, turn_order=[f.id for f in order], current=current)


def _alive_on(fighters: list[Fighter], side: str) -> list[Fighter]:
    return [f for f in fighters if f.side == side and f.status == Status.ALIVE]


def _is_offensive(action: Action) -> bool:
    if action.type == ActionType.SKILL:
        return SKILLS[action.skill or ""].offensive
    return action.type == ActionType.ATTACK


def _target(fight: Fight, actor: Fighter, action: Action) -> Fighter | None:
    """The resolved target of an attack/skill/item, or None when it is not a valid one."""
    offensive = _is_offensive(action)
    side = OPPONENT[actor.side] if offensive else actor.side
    candidates = _alive_on(fight.fighters, side)
    if action.target is None:
        if not offensive:
            return actor
        return candidates[0] if len(candidates) == 1 else None
    return next((f for f in candidates if f.id == action.target), None)


def _action_problem(actor: Fighter, action: Action) -> Problem | None:
    if action.type not in _ACTION_TYPES:
        return Problem.INVALID_ACTION
    if action.timed_out:
        return None if action.type == ActionType.DEFEND else Problem.INVALID_ACTION
    if action.type == ActionType.SKILL:
        skill = SKILLS.get(action.skill) if action.skill is not None else None
        if skill is None or actor.mp < skill.mp_cost:
            return Problem.INVALID_ACTION
    if action.type == ActionType.ITEM and (action.item is None or action.item not in ITEMS):
        return Problem.INVALID_ACTION
    return None


def check(fight: Fight, action: Action) -> Problem | None:
    """Why ``action`` cannot be played now, or None when it can.

    In order: FINISHED; NOT_A_PARTICIPANT (unknown actor, or not alive); NOT_YOUR_TURN;
    INVALID_ACTION (unknown type, skill or item, too little mp, timed_out but not defend);
    INVALID_TARGET (strikes need a living enemy, defaulting to the only one; heal and items
    need self or a living ally, defaulting to self). Defend and flee ignore the target.
    """
    if fight.status != ACTIVE:
        return Problem.FINISHED
    actor = next((f for f in fight.fighters if f.id == action.actor), None)
    if actor is None or actor.status != Status.ALIVE:
        return Problem.NOT_A_PARTICIPANT
    if action.actor != fight.current:
        return Problem.NOT_YOUR_TURN
    problem = _action_problem(actor, action)
    if problem is not None or action.type in (ActionType.DEFEND, ActionType.FLEE):
        return problem
    return None if _target(fight, actor, action) is not None else Problem.INVALID_TARGET


def hit_chance(attacker: Fighter, target: Fighter) -> float:
    edge = attacker.agility - target.agility
    return min(MAX_HIT, max(MIN_HIT, BASE_HIT + HIT_PER_AGILITY * edge))


def crit_chance(attacker: Fighter, target: Fighter) -> float:
    edge = max(0, attacker.agility - target.agility)
    return min(MAX_CRIT, BASE_CRIT + CRIT_PER_AGILITY * edge)


def _strike(fight: Fight, actor: Fighter, action: Action, rng: random.Random) -> Outcome:
    skill = SKILLS[action.skill or ""] if action.type == ActionType.SKILL else _ATTACK
    target = _target(fight, actor, action)
    assert target is not None  # check() has run
    actor.mp = max(0, actor.mp - skill.mp_cost)
    hit_roll, crit_roll = rng.random(), rng.random()
    variance = rng.uniform(1 - VARIANCE, 1 + VARIANCE)
    if hit_roll >= hit_chance(actor, target):
        return Outcome(actor.id, action.type, target.id, missed=True)
    critical = crit_roll < crit_chance(actor, target)
    base = max(1.0, skill.power(actor) - skill.rating(target) // 2)
    damage = max(1, round(base * variance))
    if critical:
        damage *= CRIT_MULTIPLIER
    if target.defending:
        damage = max(1, damage // 2)
    target.hp = max(0, min(target.max_hp, target.hp - damage))
    effects = []
    if target.hp == 0:
        target.status, target.defending = Status.DEAD.value, False
        effects.append(f"defeated:{target.id}")
    return Outcome(actor.id, action.type, target.id, damage, critical=critical, effects=effects)


def _support(fight: Fight, actor: Fighter, action: Action) -> Outcome:
    target = _target(fight, actor, action)
    assert target is not None  # check() has run
    if action.type == ActionType.SKILL:
        skill = SKILLS[action.skill or ""]
        actor.mp = max(0, actor.mp - skill.mp_cost)
        hp_gain, mp_gain = max(1, round(skill.power(actor))), 0
    else:
        item = ITEMS[action.item or ""]
        hp_gain, mp_gain = item.hp, item.mp
    healed = max(0, min(hp_gain, target.max_hp - target.hp))
    restored = max(0, min(mp_gain, target.max_mp - target.mp))
    target.hp += healed
    target.mp += restored
    effects = [f"mp_restored:{restored}"] if mp_gain else []
    return Outcome(actor.id, action.type, target.id, healing=healed, effects=effects)


def _play(fight: Fight, actor: Fighter, action: Action, rng: random.Random) -> Outcome:
    if action.timed_out:
        actor.missed_turns += 1
        if actor.missed_turns >= MISSED_TURNS_FORFEIT:
            actor.status = Status.FLED.value
            effects = [f"forfeited:{actor.id}", f"fled:{actor.id}"]
            return Outcome(actor.id, ActionType.DEFEND.value, None, effects=effects)
        actor.defending = True
        effects = ["defending", f"missed_turn:{actor.id}"]
        return Outcome(actor.id, ActionType.DEFEND.value, None, effects=effects)
    actor.missed_turns = 0
    if action.type == ActionType.DEFEND:
        actor.defending = True
        return Outcome(actor.id, action.type, None, effects=["defending"])
    if action.type == ActionType.FLEE:
        fled = rng.random() < FLEE_CHANCE
        if fled:
            actor.status = Status.FLED.value
        effects = [f"fled:{actor.id}"] if fled else []
        return Outcome(actor.id, action.type, None, fled=fled, chance=FLEE_CHANCE, effects=effects)
    if _is_offensive(action):
        return _strike(fight, actor, action, rng)
    return _support(fight, actor, action)


def apply(fight: Fight, action: Action) -> tuple[Fight, Outcome]:
    """Play ``action``; returns a new Fight (``fight`` is untouched) and what happened.

    Raises ValueError (message starting with the Problem code) when ``check`` refuses it.
    The generator is derived from (seed, turn_number), so a turn depends only on the state.
    """
    problem = check(fight, action)
    if problem is not None:
        raise ValueError(f"{problem.value}: {action!r}")
    new = Fight.from_json(fight.to_json())
    actor = new.fighter(action.actor)
    actor.defending = False  # a defence lasts until the defender's next turn
    outcome = _play(new, actor, action, _rng(new.seed, new.turn_number))
    new.turn_number += 1
    loser = next((s for s in sorted(OPPONENT) if _lost(new, s)), None)
    if loser is None:
        new.current = _next_living(new, actor.id)
    else:
        _finish(new, loser, outcome)
    return new, outcome


def _lost(fight: Fight, side: str) -> bool:
    return any(f.side == side for f in fight.fighters) and not _alive_on(fight.fighters, side)


def _next_living(fight: Fight, after: str) -> str:
    order = fight.turn_order
    start_at = order.index(after)
    for step in range(1, len(order) + 1):
        index = start_at + step
        if fight.fighter(order[index % len(order)]).status == Status.ALIVE:
            if index >= len(order):
                fight.round += 1
            return order[index % len(order)]
    raise AssertionError("an active fight always has a living fighter")


def _finish(fight: Fight, loser: str, outcome: Outcome) -> None:
    """End the fight: reason from how the loser's last fighter left; rewards to the winners."""
    if any(e.startswith("forfeited:") for e in outcome.effects):
        reason = EndReason.TIMEOUT
    elif outcome.fled:
        reason = EndReason.FLEE
    else:
        reason = EndReason.DEFEAT if loser == Side.PLAYERS else EndReason.VICTORY
    winner = OPPONENT[loser]
    fight.status, fight.winner, fight.reason, fight.current = FINISHED, winner, reason.value, None
    winners = [fight.fighter(pid) for pid in fight.turn_order]
    winners = [f for f in winners if f.side == winner and f.status == Status.ALIVE]
    fallen = [f for f in fight.fighters if f.side == loser and f.status == Status.DEAD]
    bounties = [_bounty(f) for f in fallen]
    xp, gold = sum(b[0] for b in bounties), sum(b[1] for b in bounties)
    fight.rewards = {
        f.id: {"experience": _share(xp, i, len(winners)), "gold": _share(gold, i, len(winners))}
        for i, f in enumerate(winners)
    }


def _bounty(fallen: Fighter) -> tuple[int, int]:
    if fallen.side in _PVP_SIDES:
        return PVP_XP_PER_LEVEL * fallen.level, 0
    return fallen.xp_reward, fallen.gold_reward


def _share(total: int, index: int, count: int) -> int:
    """Even split; the remainder goes one each to the earliest in turn order."""
    return total // count + (1 if index < total % count else 0)


def monster_action(fight: Fight) -> Action:
    """The server's move for the current fighter (meant for ai fighters); always legal.

    Below AI_LOW_HP of max_hp with the mp for it: heal itself. Otherwise pick the living enemy
    with the lowest hp (ties: lowest id) and, with the mp for it, power_strike with probability
    AI_SKILL_CHANCE (drawn from the generator of this turn), else attack. Raises ValueError
    when the fight is finished.
    """
    if fight.status != ACTIVE or fight.current is None:
        raise ValueError(Problem.FINISHED.value)
    me = fight.fighter(fight.current)
    heal, strike = SKILLS["heal"], SKILLS["power_strike"]
    if me.hp < AI_LOW_HP * me.max_hp and me.mp >= heal.mp_cost:
        return Action(me.id, ActionType.SKILL.value, me.id, skill=heal.key)
    enemies = sorted(_alive_on(fight.fighters, OPPONENT[me.side]), key=lambda f: (f.hp, f.id))
    target = enemies[0].id
    roll = _rng(fight.seed, f"{fight.turn_number}:ai").random()
    if me.mp >= strike.mp_cost and roll < AI_SKILL_CHANCE:
        return Action(me.id, ActionType.SKILL.value, target, skill=strike.key)
    return Action(me.id, ActionType.ATTACK.value, target)


def replay(fighters: list[Fighter], seed: int, actions: list[Action]) -> Fight:
    """``start`` then ``apply`` each action in order; raises ValueError on an illegal one."""
    fight = start(fighters, seed)
    for action in actions:
        fight, _ = apply(fight, action)
    return fight


def state_view(fight: Fight) -> dict[str, Any]:
    """The wire CombatState (PROTOCOL §5.4) without sessionId and turnDeadline."""
    return {
        "status": fight.status,
        "round": fight.round,
        "turnNumber": fight.turn_number,
        "currentTurn": fight.current,
        "turnOrder": list(fight.turn_order),
        "participants": [
            {
                "id": f.id,
                "characterId": None if f.character_id is None else str(f.character_id),
                "monster": f.monster,
                "name": f.name,
                "side": f.side,
                "hp": f.hp,
                "maxHp": f.max_hp,
                "mp": f.mp,
                "maxMp": f.max_mp,
                "status": f.status,
            }
            for f in fight.fighters
        ],
    }
