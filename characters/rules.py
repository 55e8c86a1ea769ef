"""Pure character rules: movement, violations, actions, status and zone changes (PROTOCOL §5.2).

Plain functions over plain values, no Django. The clock is always passed in: movement times are
server seconds (float), cooldowns are server milliseconds (int).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

TELEPORT_DISTANCE = 50.0
SPEED_TOLERANCE = 0.1  # multiplicative: allowed speed = max_speed * (1 + SPEED_TOLERANCE)
# Relative slack for float rounding in the distance and the allowance; never an absolute
# per-move allowance, so many tiny moves cannot add up to more than the speed limit.
_FLOAT_SLACK = 1e-12

SUSPICIOUS_VIOLATIONS = 10
SUSPICIOUS_WINDOW_S = 60.0

STATUSES = ("idle", "busy", "afk", "lfg", "roleplaying")
STATUS_MESSAGE_MAX = 100
ITEM_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class Position:
    x: float
    y: float
    z: float = 0.0
    direction: float = 0.0


@dataclass(frozen=True, slots=True)
class Bounds:
    min_x: float
    max_x: float
    min_y: float
    max_y: float

    def contains(self, x: float, y: float) -> bool:
        """True when (x, y) lies inside the rectangle, edges included; False for NaN."""
        return self.min_x <= x <= self.max_x and self.min_y <= y <= self.max_y


class MoveVerdict(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"  # non-finite numbers, or outside the zone bounds
    TOO_FAST = "too_fast"  # speed over the limit since the last accepted move
    TELEPORT = "teleport"  # jump over TELEPORT_DISTANCE: always rejected

    @property
    def error_code(self) -> str:
        """The wire error code of a rejection (see ``error_code``)."""
        return error_code(self)


_MOVE_ERROR_CODES = {
    MoveVerdict.INVALID: "INVALID_MOVEMENT",
    MoveVerdict.TOO_FAST: "INVALID_MOVEMENT_SPEED",
    MoveVerdict.TELEPORT: "INVALID_MOVEMENT_SPEED",
}


def error_code(verdict: MoveVerdict) -> str:
    """The PROTOCOL error code for a rejected move; raises ValueError for ACCEPTED."""
    try:
        return _MOVE_ERROR_CODES[verdict]
    except KeyError:
        raise ValueError(f"{verdict!r} is not a rejection") from None


def distance(a: Position, b: Position) -> float:
    """3D euclidean distance between a and b; direction is ignored."""
    return math.hypot(b.x - a.x, b.y - a.y, b.z - a.z)


def judge_move(
    *,
    current: Position,
    since: float,
    target: Position,
    now: float,
    bounds: Bounds,
    max_speed: float,
) -> MoveVerdict:
    """Decide a move from ``current`` (accepted at server time ``since``) to ``target`` at ``now``.

    Checks in order: all of target's numbers finite and (x, y) inside ``bounds`` (else INVALID);
    at most TELEPORT_DISTANCE away (else TELEPORT); no faster than
    ``max_speed * (1 + SPEED_TOLERANCE)`` over ``max(0, now - since)`` (else TOO_FAST).
    A move that does not change x, y or z is never too fast. If callers update (current, since)
    only on ACCEPTED, any two accepted positions are within the speed limit of each other.
    """
    coords = (target.x, target.y, target.z, target.direction)
    if not all(math.isfinite(c) for c in coords) or not bounds.contains(target.x, target.y):
        return MoveVerdict.INVALID
    moved = distance(current, target)
    if moved > TELEPORT_DISTANCE:
        return MoveVerdict.TELEPORT
    if moved == 0.0:
        return MoveVerdict.ACCEPTED
    elapsed = max(0.0, now - since)
    allowed = max_speed * (1.0 + SPEED_TOLERANCE) * elapsed
    # Written so that NaN anywhere (speed, clock) rejects rather than accepts.
    if moved <= allowed * (1.0 + _FLOAT_SLACK):
        return MoveVerdict.ACCEPTED
    return MoveVerdict.TOO_FAST


def record_violation(
    history: tuple[float, ...],
    now: float,
    *,
    limit: int = SUSPICIOUS_VIOLATIONS,
    window_s: float = SUSPICIOUS_WINDOW_S,
) -> tuple[tuple[float, ...], bool]:
    """Add a violation at ``now`` to ``history`` (violation times, oldest first).

    Returns the new history, holding ``now`` and only earlier times less than ``window_s`` ago
    (at most ``limit`` of them, the newest), and whether it holds ``limit`` violations, i.e.
    this is at least the ``limit``-th violation within the window. Raises ValueError for
    ``limit < 1`` or a non-positive window.
    """
    if limit < 1 or not window_s > 0:
        raise ValueError("limit must be >= 1 and window_s > 0")
    kept = tuple(t for t in history if now - t < window_s)
    new_history = (*kept, now)[-limit:]
    return new_history, len(new_history) >= limit


@dataclass(frozen=True, slots=True)
class ActionRule:
    name: str
    cooldown_ms: int
    needs_target: bool  # targetId required
    range: float | None  # max distance to the target, None = anywhere in the zone
    mana_cost: int = 0
    self_target: bool = True  # may targetId be the actor itself


ACTIONS: dict[str, ActionRule] = {
    rule.name: rule
    for rule in (
        ActionRule("attack", 1000, needs_target=True, range=5.0, self_target=False),
        ActionRule("cast_spell", 2000, needs_target=False, range=30.0, mana_cost=10),
        ActionRule("use_item", 500, needs_target=False, range=None),
        ActionRule("interact", 1000, needs_target=True, range=5.0, self_target=False),
        ActionRule("gather", 1000, needs_target=False, range=None),
    )
}


def action_rule(name: str) -> ActionRule | None:
    """The rule of action ``name``, or None for an unknown action."""
    return ACTIONS.get(name)


class ActionProblem(StrEnum):
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    TARGET_REQUIRED = "TARGET_REQUIRED"
    TARGET_IS_SELF = "TARGET_IS_SELF"
    TARGET_NOT_IN_ZONE = "TARGET_NOT_IN_ZONE"
    TARGET_OUT_OF_RANGE = "TARGET_OUT_OF_RANGE"
    NOT_ENOUGH_MANA = "NOT_ENOUGH_MANA"
    BAD_PARAMETERS = "BAD_PARAMETERS"


ACTION_PROBLEM_MESSAGES: dict[ActionProblem, str] = {
    ActionProblem.UNKNOWN_ACTION: "Unknown action.",
    ActionProblem.TARGET_REQUIRED: "This action needs a target.",
    ActionProblem.TARGET_IS_SELF: "You cannot target yourself with this action.",
    ActionProblem.TARGET_NOT_IN_ZONE: "The target is not in your zone.",
    ActionProblem.TARGET_OUT_OF_RANGE: "The target is out of range.",
    ActionProblem.NOT_ENOUGH_MANA: "Not enough mana.",
    ActionProblem.BAD_PARAMETERS: f"use_item needs an itemId of 1-{ITEM_ID_MAX} characters.",
}


def check_action(
    *,
    rule: ActionRule,
    actor_id: int,
    actor: Position,
    mana: int,
    target_id: int | None,
    target: Position | None,
    target_in_zone: bool,
    parameters: dict[str, object],
) -> ActionProblem | None:
    """The first reason the actor may not perform ``rule`` now, or None if it may.

    Order: target required, self-target, target in zone, range, mana, parameters. A target that
    is given is always checked, even for actions that do not need one.
    """
    if target_id is None:
        if rule.needs_target:
            return ActionProblem.TARGET_REQUIRED
    else:
        if target_id == actor_id and not rule.self_target:
            return ActionProblem.TARGET_IS_SELF
        if target is None or not target_in_zone:
            return ActionProblem.TARGET_NOT_IN_ZONE
        if rule.range is not None and not distance(actor, target) <= rule.range:
            return ActionProblem.TARGET_OUT_OF_RANGE
    if mana < rule.mana_cost:
        return ActionProblem.NOT_ENOUGH_MANA
    if rule.name == "use_item":
        item_id = parameters.get("itemId")
        if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > ITEM_ID_MAX:
            return ActionProblem.BAD_PARAMETERS
    return None


def cooldown_remaining_ms(ready_at_ms: int, now_ms: int) -> int:
    """Milliseconds until ``ready_at_ms``; 0 when already ready, never negative."""
    return max(0, ready_at_ms - now_ms)


def clean_status_message(message: str | None) -> str:
    """``message`` without control/format characters (Cc, Cf) and surrounding whitespace.

    None gives "". Ordinary spaces inside the message are kept.
    """
    if message is None:
        return ""
    kept = "".join(ch for ch in message if unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()


def check_status(status: str, message: str) -> str | None:
    """None if ``status`` is known and the cleaned ``message`` fits, else what is wrong."""
    if status not in STATUSES:
        return f"Unknown status {status[:32]!r}; expected one of: {', '.join(STATUSES)}."
    if len(clean_status_message(message)) > STATUS_MESSAGE_MAX:
        return f"Status message is longer than {STATUS_MESSAGE_MAX} characters."
    return None


def zone_change_allowed(
    *, current: str, target: str, neighbours: frozenset[str], staff: bool
) -> bool:
    """True if ``target`` is another zone that neighbours ``current``, or any other zone for staff.

    Moving to the zone one is already in is never allowed.
    """
    if target == current:
        return False
    return staff or target in neighbours
