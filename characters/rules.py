"""Pure character rules: movement, violations, actions, status and zone changes (PROTOCOL §5.2).

Plain functions over plain values, no Django. The clock is always passed in: movement times are
server seconds (float, the time a move's frame arrived at the process), cooldowns are server
milliseconds (int).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from domain.text import (
    BLANK_SYMBOLS,
    DEFAULT_IGNORABLE,
    clean_line,
    has_visible,
    is_invisible,
    trim_blank,
)

TELEPORT_DISTANCE = 50.0
SPEED_TOLERANCE = 0.1  # multiplicative: allowed speed = max_speed * (1 + SPEED_TOLERANCE)
MOVE_BURST_S = 0.5  # default of AETURNIS_MOVE_BURST_S: the budget holds this much movement
MAX_SEQ = 2**53  # largest character:move seq: the largest integer a JSON double holds exactly
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
    TOO_FAST = "too_fast"  # more distance than the speed budget holds
    TELEPORT = "teleport"  # jump over TELEPORT_DISTANCE: always rejected
    STALE = "stale"  # seq not above the last accepted one: a replayed or reordered move

    @property
    def error_code(self) -> str:
        """The wire error code of a rejection (see ``error_code``)."""
        return error_code(self)

    @property
    def is_violation(self) -> bool:
        """True for the rejections that count towards the suspicious-movement limit.

        A STALE move is an old move arriving late or twice (a network or client retry), not an
        attempt to move too far, so it is refused without counting.
        """
        return self in _VIOLATIONS

    @property
    def reason(self) -> str | None:
        """The ``reason`` a rejection carries on the wire, if any (only STALE has one)."""
        return "STALE" if self is MoveVerdict.STALE else None


_VIOLATIONS = frozenset({MoveVerdict.INVALID, MoveVerdict.TOO_FAST, MoveVerdict.TELEPORT})
_MOVE_ERROR_CODES = {
    MoveVerdict.INVALID: "INVALID_MOVEMENT",
    MoveVerdict.TOO_FAST: "INVALID_MOVEMENT_SPEED",
    MoveVerdict.TELEPORT: "INVALID_MOVEMENT_SPEED",
    MoveVerdict.STALE: "INVALID_MOVEMENT",
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


# --- the distance budget (issue #16) ----------------------------------------------------------
#
# Speed is a budget of distance rather than a speed between two moves, so that arrival jitter
# (a move that reaches the server late, then the next one on time) is absorbed, while no run of
# moves beats the limit for longer than the burst:
#
# - The budget refills at ``rate`` = max_speed * (1 + tolerance) units per second.
# - A move costs its 3-D distance (z counts, as for the teleport rule: otherwise vertical
#   movement would be free) and is accepted when the cost fits in what the budget holds at
#   ``now``: what was left after the last accepted move plus the refill since then.
# - What is left after an accepted move is capped at ``capacity`` = rate * burst_s. The cap is
#   applied after the move, not before it: the refill of the time since the last accepted move
#   always pays for the move itself, so a client that moves rarely (the default rate limit
#   allows a move every 2 s) can cover 2 s of movement in one move, as before; only the
#   left-over, carried to later moves, is capped. Hence, for any two accepted moves i < j, the
#   distance of the moves after i up to j is at most capacity + rate * (t_j - t_i) (and the
#   first move after a pause can use the pause, up to TELEPORT_DISTANCE, as the speed rule
#   always allowed).
# - The budget starts empty at character:select and at a zone change (``Budget.empty``): the
#   first move may cover what the time since the selection allows, exactly as before. A
#   selection never hands out a burst, so re-selecting cannot be used to move faster.
# - Honest movement at <= max_speed whose moves arrive up to burst_s late (in order) is never
#   refused: a move that arrives d late and the next one on time leave d * rate of refill
#   unused, and the capacity holds exactly that.


@dataclass(frozen=True, slots=True)
class SpeedLimit:
    """The movement limit: ``max_speed`` units/s, plus ``tolerance``, with a ``burst_s`` burst.

    Raises ValueError unless max_speed > 0 and burst_s, tolerance >= 0, all finite.
    """

    max_speed: float
    burst_s: float = MOVE_BURST_S
    tolerance: float = SPEED_TOLERANCE

    def __post_init__(self) -> None:
        values = (self.max_speed, self.burst_s, self.tolerance)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"speed limit values must be finite: {values}")
        if not (self.max_speed > 0 and self.burst_s >= 0 and self.tolerance >= 0):
            raise ValueError(f"max_speed must be > 0, burst_s and tolerance >= 0: {values}")

    @property
    def rate(self) -> float:
        """Units per second the budget refills with: the speed limit, tolerance included."""
        return self.max_speed * (1.0 + self.tolerance)

    @property
    def capacity(self) -> float:
        """The most distance the budget carries from one accepted move to the next."""
        return self.rate * self.burst_s


@dataclass(frozen=True, slots=True)
class Budget:
    """What a character may still move: ``left`` units at server time ``at`` (seconds).

    ``at`` is the time of the last accepted move, or of the selection or zone change that
    emptied the budget; it never goes backwards.
    """

    left: float
    at: float

    @classmethod
    def empty(cls, at: float) -> Budget:
        """The budget at character:select and after a zone change."""
        return cls(0.0, at)

    def available(self, now: float, limit: SpeedLimit) -> float:
        """Units a move arriving at ``now`` may cover: ``left`` (at most the capacity) plus
        ``limit.rate`` per second since ``at``. A clock that went backwards, and NaN anywhere
        in the stored budget, count as nothing left and no time passed."""
        elapsed = now - self.at
        if not elapsed > 0:
            elapsed = 0.0
        left = min(self.left, limit.capacity) if self.left > 0 else 0.0
        return left + limit.rate * elapsed


@dataclass(frozen=True, slots=True)
class MoveJudgement:
    """A verdict and the state to keep: on ACCEPTED the new budget and last seq, else the old."""

    verdict: MoveVerdict
    budget: Budget
    last_seq: int | None

    @property
    def accepted(self) -> bool:
        return self.verdict is MoveVerdict.ACCEPTED


def seq_is_stale(last_seq: int | None, seq: int | None) -> bool:
    """True when a move's ``seq`` is not greater than the last accepted one.

    A move without a seq is never stale (clients that send none keep the old behaviour, and a
    client that mixes them gets its unsequenced moves judged on distance and time alone); before
    the first sequenced move was accepted (``last_seq`` None) every seq is fresh.
    """
    return seq is not None and last_seq is not None and seq <= last_seq


def judge_budgeted_move(
    *,
    current: Position,
    budget: Budget,
    target: Position,
    now: float,
    bounds: Bounds,
    limit: SpeedLimit,
    last_seq: int | None = None,
    seq: int | None = None,
) -> MoveJudgement:
    """Decide a move from ``current`` to ``target`` that arrived at server time ``now``.

    Checks in order: ``seq`` not above ``last_seq`` (STALE, not a violation); all of target's
    numbers finite and (x, y) inside ``bounds`` (else INVALID); at most TELEPORT_DISTANCE away
    (else TELEPORT); distance within ``budget.available(now, limit)`` (else TOO_FAST). A move
    that does not change x, y or z is never too fast. On ACCEPTED the judgement carries the new
    budget (left-over capped at the capacity, ``at`` = ``now`` unless that is earlier than the
    old ``at``) and ``seq`` as the new last seq when the move had one; on a rejection it
    carries ``budget`` and ``last_seq`` unchanged. Callers store both only on ACCEPTED (or
    always: a rejection returns what it was given).
    """

    def refused(verdict: MoveVerdict) -> MoveJudgement:
        return MoveJudgement(verdict, budget, last_seq)

    if seq_is_stale(last_seq, seq):
        return refused(MoveVerdict.STALE)
    coords = (target.x, target.y, target.z, target.direction)
    if not all(math.isfinite(c) for c in coords) or not bounds.contains(target.x, target.y):
        return refused(MoveVerdict.INVALID)
    cost = distance(current, target)
    if cost > TELEPORT_DISTANCE:
        return refused(MoveVerdict.TELEPORT)
    available = budget.available(now, limit)
    # Written so that NaN (a broken clock) rejects rather than accepts.
    if cost > 0.0 and not cost <= available * (1.0 + _FLOAT_SLACK):
        return refused(MoveVerdict.TOO_FAST)
    left = available - cost
    left = min(left, limit.capacity) if left > 0 else 0.0
    at = budget.at if budget.at >= now else now  # never backwards; a NaN ``at`` is repaired
    return MoveJudgement(MoveVerdict.ACCEPTED, Budget(left, at), last_seq if seq is None else seq)


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
    """``message`` without invisible characters, trimmed of blank ones at both ends.

    Control, format and surrogate characters (newlines and tabs included) and the Hangul
    fillers are removed; whitespace, U+2800 BRAILLE PATTERN BLANK and stray combining marks are
    trimmed from both ends (``domain.text``). A message with nothing visible gives "", i.e. no
    status message, as a whitespace-only one always did (issue #19). None gives "". Spaces
    inside the message are kept as they are.
    """
    if message is None:
        return ""
    return trim_blank("".join(ch for ch in message if not is_invisible(ch)))


def check_status(status: str, message: str) -> str | None:
    """None if ``status`` is known and the cleaned ``message`` fits, else what is wrong."""
    if status not in STATUSES:
        return f"Unknown status {status[:32]!r}; expected one of: {', '.join(STATUSES)}."
    if len(clean_status_message(message)) > STATUS_MESSAGE_MAX:
        return f"Status message is longer than {STATUS_MESSAGE_MAX} characters."
    return None


def name_problem(name: str) -> str | None:
    """None if ``name`` may be shown as a character's or guild's name, else why not.

    A name needs a visible character, and must be written exactly as it shows: no control,
    format or other invisible characters (zero-width, Hangul fillers, variation selectors, ...),
    no blank symbols (U+2800), no line breaks, no whitespace other than single spaces between
    words, none at either end, composed (NFC). So a name can neither show as nothing nor look
    identical to another while comparing different (issue #19). Length is the model's.
    """
    if not has_visible(name):
        return "A name needs at least one visible character."
    if unicodedata.normalize("NFC", name) != name:
        return "A name must be written with composed characters (Unicode NFC)."
    if clean_line(name) != name or any(
        ch in DEFAULT_IGNORABLE or ch in BLANK_SYMBOLS for ch in name
    ):
        return (
            "A name may not contain invisible or blank characters, line breaks, or spaces "
            "at either end or twice in a row."
        )
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
