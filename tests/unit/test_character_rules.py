"""Pure character rules: movement, violations, actions, status, zones (PROTOCOL.md §5.2)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from characters.rules import (
    ACTION_PROBLEM_MESSAGES,
    ACTIONS,
    MOVE_BURST_S,
    SPEED_TOLERANCE,
    STATUS_MESSAGE_MAX,
    STATUSES,
    TELEPORT_DISTANCE,
    ActionProblem,
    ActionRule,
    Bounds,
    Budget,
    MoveJudgement,
    MoveVerdict,
    Position,
    SpeedLimit,
    action_rule,
    check_action,
    check_status,
    clean_status_message,
    cooldown_remaining_ms,
    distance,
    error_code,
    judge_budgeted_move,
    name_problem,
    record_violation,
    seq_is_stale,
    zone_change_allowed,
)

MAX_SPEED = 10.0
LIMIT = MAX_SPEED * (1 + SPEED_TOLERANCE)  # 11 units/s
BOUNDS = Bounds(min_x=-100.0, max_x=100.0, min_y=-100.0, max_y=100.0)
ORIGIN = Position(0.0, 0.0, 0.0, 0.0)
NAN, INF = math.nan, math.inf


def judge(target: Position, elapsed: float, current: Position = ORIGIN) -> MoveVerdict:
    """A move ``elapsed`` seconds after the selection (the budget starts empty then)."""
    return judge_budgeted_move(
        current=current,
        budget=Budget.empty(1000.0),
        target=target,
        now=1000.0 + elapsed,
        bounds=BOUNDS,
        limit=SpeedLimit(max_speed=MAX_SPEED),
    ).verdict


# --- movement ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "elapsed", "current", "expected"),
    [
        # non-finite numbers, in every coordinate
        (Position(NAN, 0.0), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(0.0, NAN), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(1.0, 0.0, NAN), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(1.0, 0.0, 0.0, NAN), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(INF, 0.0), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(0.0, -INF), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(0.0, 0.0, INF), 10.0, ORIGIN, MoveVerdict.INVALID),
        (Position(0.0, 0.0, 0.0, -INF), 10.0, ORIGIN, MoveVerdict.INVALID),
        # out of bounds on each side, even by a hair and even when the move is short
        (Position(100.001, 0.0), 10.0, Position(99.0, 0.0), MoveVerdict.INVALID),
        (Position(-100.001, 0.0), 10.0, Position(-99.0, 0.0), MoveVerdict.INVALID),
        (Position(0.0, 100.001), 10.0, Position(0.0, 99.0), MoveVerdict.INVALID),
        (Position(0.0, -100.001), 10.0, Position(0.0, -99.0), MoveVerdict.INVALID),
        (Position(1e300, 0.0), 10.0, ORIGIN, MoveVerdict.INVALID),
        # the edges themselves are inside
        (Position(100.0, 100.0), 10.0, Position(99.0, 99.0), MoveVerdict.ACCEPTED),
        (Position(-100.0, -100.0), 10.0, Position(-99.0, -99.0), MoveVerdict.ACCEPTED),
        # teleport: over 50 units is rejected however long ago the last move was
        (Position(50.01, 0.0), 1000.0, ORIGIN, MoveVerdict.TELEPORT),
        (Position(0.0, 0.0, 50.01), 1000.0, ORIGIN, MoveVerdict.TELEPORT),
        (Position(30.0, 40.01), 1000.0, ORIGIN, MoveVerdict.TELEPORT),
        (Position(50.0, 0.0), 1000.0, ORIGIN, MoveVerdict.ACCEPTED),
        (Position(30.0, 40.0), 1000.0, ORIGIN, MoveVerdict.ACCEPTED),
        # speed: exactly at max_speed * (1 + tolerance) is fine, just above is not
        (Position(11.0, 0.0), 1.0, ORIGIN, MoveVerdict.ACCEPTED),
        (Position(6.6, 0.0, 8.8), 1.0, ORIGIN, MoveVerdict.ACCEPTED),
        (Position(22.0, 0.0), 2.0, ORIGIN, MoveVerdict.ACCEPTED),
        (Position(11.001, 0.0), 1.0, ORIGIN, MoveVerdict.TOO_FAST),
        (Position(22.0, 0.0), 1.99, ORIGIN, MoveVerdict.TOO_FAST),
        (Position(10.0, 0.0), 1.0, ORIGIN, MoveVerdict.ACCEPTED),
        # no time passed: any change of position is too fast, however small
        (Position(0.001, 0.0), 0.0, ORIGIN, MoveVerdict.TOO_FAST),
        (Position(1e-9, 0.0), 0.0, ORIGIN, MoveVerdict.TOO_FAST),
        (Position(0.0, 0.0, 0.5), 0.0, ORIGIN, MoveVerdict.TOO_FAST),
        # the clock going backwards counts as no time
        (Position(1.0, 0.0), -5.0, ORIGIN, MoveVerdict.TOO_FAST),
        # turning on the spot, or not moving at all, is always accepted
        (Position(0.0, 0.0, 0.0, 3.14), 0.0, ORIGIN, MoveVerdict.ACCEPTED),
        (Position(5.0, 5.0, 1.0, -1.0), 0.0, Position(5.0, 5.0, 1.0, 2.0), MoveVerdict.ACCEPTED),
        (ORIGIN, -5.0, ORIGIN, MoveVerdict.ACCEPTED),
    ],
)
def test_judge_move_table(
    target: Position, elapsed: float, current: Position, expected: MoveVerdict
) -> None:
    assert judge(target, elapsed, current) is expected


def test_nan_budget_time_rejects_rather_than_accepts() -> None:
    judgement = judge_budgeted_move(
        current=ORIGIN,
        budget=Budget(0.0, NAN),
        target=Position(1.0, 0.0),
        now=10.0,
        bounds=BOUNDS,
        limit=SpeedLimit(max_speed=MAX_SPEED),
    )
    assert judgement.verdict is MoveVerdict.TOO_FAST


def test_move_verdicts_are_distinct_and_map_to_protocol_error_codes() -> None:
    assert len(set(MoveVerdict)) == 5
    assert MoveVerdict.TELEPORT is not MoveVerdict.TOO_FAST
    assert error_code(MoveVerdict.INVALID) == "INVALID_MOVEMENT"
    assert error_code(MoveVerdict.TOO_FAST) == "INVALID_MOVEMENT_SPEED"
    assert error_code(MoveVerdict.TELEPORT) == "INVALID_MOVEMENT_SPEED"
    assert error_code(MoveVerdict.STALE) == "INVALID_MOVEMENT"
    assert MoveVerdict.TELEPORT.error_code == "INVALID_MOVEMENT_SPEED"
    with pytest.raises(ValueError, match="not a rejection"):
        error_code(MoveVerdict.ACCEPTED)


def test_stale_is_the_only_rejection_that_is_not_a_violation_and_the_only_one_with_a_reason() -> (
    None
):
    assert {v for v in MoveVerdict if v.is_violation} == {
        MoveVerdict.INVALID,
        MoveVerdict.TOO_FAST,
        MoveVerdict.TELEPORT,
    }
    assert MoveVerdict.STALE.reason == "STALE"
    assert all(v.reason is None for v in MoveVerdict if v is not MoveVerdict.STALE)


def test_distance_is_3d_and_ignores_direction() -> None:
    assert distance(Position(1.0, 2.0, 3.0, 0.5), Position(4.0, 6.0, 15.0, 2.0)) == 13.0


def test_bounds_contains_is_inclusive_and_false_for_nan() -> None:
    assert BOUNDS.contains(100.0, -100.0)
    assert not BOUNDS.contains(100.0000001, 0.0)
    assert not BOUNDS.contains(NAN, 0.0)


# A step is (dt, how the target is chosen): an absolute target (wild numbers included), an
# offset from the current position, or a random heading at about 1 x the speed limit (the
# boundary, where float noise and tolerances matter). Directions include NaN and infinities.
wild = st.floats(allow_nan=True, allow_infinity=True)
non_finite = st.sampled_from([NAN, INF, -INF])
ARENA = Bounds(min_x=-30.0, max_x=30.0, min_y=-30.0, max_y=30.0)  # small: edges get hit often
coord = st.one_of(st.floats(-40.0, 40.0), wild, non_finite)
step = st.one_of(st.floats(-40.0, 40.0), st.floats(-0.01, 0.01))
absolute = st.tuples(st.just("abs"), coord, coord, coord, coord)
offset = st.tuples(
    st.just("off"),
    step,
    step,
    st.one_of(st.floats(-5.0, 5.0), st.floats(-0.01, 0.01), non_finite),
    st.one_of(st.floats(-4.0, 4.0), non_finite),
)
at_limit = st.tuples(
    st.just("lim"),
    st.floats(0.0, 2 * math.pi),
    st.one_of(st.just(1.0), st.floats(0.999, 1.001), st.floats(1.0, 1.000001)),
    st.one_of(st.floats(-1.0, 1.0), non_finite),
    st.just(0.0),
)
time_step = st.one_of(st.just(0.0), st.floats(0.0, 6.0), st.floats(0.0, 1e-6), st.floats(0.0, 1e4))
steps = st.lists(st.tuples(time_step, st.one_of(absolute, offset, at_limit)), max_size=40)
inside = st.floats(-30.0, 30.0)


def _target(cur: Position, dt: float, spec: tuple[str, float, float, float, float]) -> Position:
    kind, a, b, c, d = spec
    if kind == "abs":
        return Position(a, b, c, d)
    if kind == "off":
        return Position(cur.x + a, cur.y + b, cur.z + c, d)
    reach = LIMIT * dt * b
    return Position(cur.x + reach * math.cos(a), cur.y + reach * math.sin(a), cur.z, c)


# --- the distance budget (issue #16) ----------------------------------------------------------

LIMIT_10 = SpeedLimit(max_speed=MAX_SPEED)  # rate 11 units/s, burst 0.5 s: capacity 5.5 units
RATE = LIMIT_10.rate
CAPACITY = LIMIT_10.capacity
FAR = Bounds(min_x=-1e7, max_x=1e7, min_y=-1e7, max_y=1e7)


def budgeted(
    target: Position,
    now: float,
    budget: Budget,
    current: Position = ORIGIN,
    *,
    last_seq: int | None = None,
    seq: int | None = None,
) -> MoveJudgement:
    return judge_budgeted_move(
        current=current,
        budget=budget,
        target=target,
        now=now,
        bounds=BOUNDS,
        limit=LIMIT_10,
        last_seq=last_seq,
        seq=seq,
    )


def test_speed_limit_rate_and_capacity() -> None:
    assert MOVE_BURST_S == 0.5
    assert LIMIT_10.tolerance == SPEED_TOLERANCE == 0.1
    assert math.isclose(RATE, 11.0)
    assert math.isclose(CAPACITY, 5.5)
    assert SpeedLimit(max_speed=4.0, burst_s=2.0, tolerance=0.25).capacity == 10.0
    assert SpeedLimit(max_speed=4.0, burst_s=0.0).capacity == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_speed": 0.0},
        {"max_speed": -1.0},
        {"max_speed": NAN},
        {"max_speed": INF},
        {"max_speed": 10.0, "burst_s": -0.1},
        {"max_speed": 10.0, "burst_s": NAN},
        {"max_speed": 10.0, "tolerance": -0.1},
        {"max_speed": 10.0, "tolerance": INF},
    ],
)
def test_speed_limit_refuses_meaningless_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"speed limit|max_speed"):
        SpeedLimit(**kwargs)


@pytest.mark.parametrize(
    ("budget", "now", "expected"),
    [
        (Budget.empty(1000.0), 1000.0, 0.0),
        (Budget.empty(1000.0), 1001.0, 11.0),
        (Budget(3.0, 1000.0), 1000.5, 8.5),
        (Budget(100.0, 1000.0), 1000.0, 5.5),  # what is carried is capped at the capacity
        (Budget(100.0, 1000.0), 1002.0, 27.5),  # ... but the refill since then is not
        (Budget(3.0, 1000.0), 990.0, 3.0),  # a clock that went backwards adds nothing
        (Budget(NAN, 1000.0), 1001.0, 11.0),
        (Budget(-4.0, 1000.0), 1001.0, 11.0),
        (Budget(3.0, NAN), 1001.0, 3.0),
    ],
)
def test_budget_available_table(budget: Budget, now: float, expected: float) -> None:
    assert math.isclose(budget.available(now, LIMIT_10), expected)


@pytest.mark.parametrize(
    ("target", "now", "budget", "verdict", "left"),
    [
        # from an empty budget (the selection), as the old rule: 11 units per second
        (Position(11.0, 0.0), 1001.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(11.001, 0.0), 1001.0, Budget.empty(1000.0), MoveVerdict.TOO_FAST, None),
        (Position(6.6, 0.0, 8.8), 1001.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(0.001, 0.0), 1000.0, Budget.empty(1000.0), MoveVerdict.TOO_FAST, None),
        # what is left is spent first, then the refill
        (Position(16.5, 0.0), 1001.0, Budget(5.5, 1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(16.51, 0.0), 1001.0, Budget(5.5, 1000.0), MoveVerdict.TOO_FAST, None),
        (Position(5.5, 0.0), 1000.0, Budget(5.5, 1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(2.0, 0.0), 1000.0, Budget(5.5, 1000.0), MoveVerdict.ACCEPTED, 3.5),
        # coarse steps (the default rate limit allows a move every 2 s): the refill of the gap
        # pays for the move, only the left-over is capped
        (Position(22.0, 0.0), 1002.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(40.0, 0.0), 1004.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 4.0),
        (Position(10.0, 0.0), 1004.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 5.5),
        # a teleport is refused however much budget there is
        (Position(50.01, 0.0), 9e9, Budget(5.5, 0.0), MoveVerdict.TELEPORT, None),
        (Position(0.0, 0.0, 50.01), 9e9, Budget(5.5, 0.0), MoveVerdict.TELEPORT, None),
        (Position(50.0, 0.0), 9e9, Budget(5.5, 0.0), MoveVerdict.ACCEPTED, 5.5),
        # bounds and numbers stay absolute
        (Position(100.001, 0.0), 9e9, Budget(5.5, 0.0), MoveVerdict.INVALID, None),
        (Position(NAN, 0.0), 9e9, Budget(5.5, 0.0), MoveVerdict.INVALID, None),
        (Position(0.0, 0.0, 0.0, INF), 9e9, Budget(5.5, 0.0), MoveVerdict.INVALID, None),
        # turning on the spot is always fine and keeps what is left (capped)
        (Position(0.0, 0.0, 0.0, 3.14), 1000.0, Budget.empty(1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(0.0, 0.0, 0.0, 3.14), 1000.0, Budget(NAN, NAN), MoveVerdict.ACCEPTED, 0.0),
        # the clock going backwards: only what is left, and ``at`` does not move back
        (Position(3.0, 0.0), 990.0, Budget(3.0, 1000.0), MoveVerdict.ACCEPTED, 0.0),
        (Position(3.1, 0.0), 990.0, Budget(3.0, 1000.0), MoveVerdict.TOO_FAST, None),
    ],
)
def test_judge_budgeted_move_table(
    target: Position, now: float, budget: Budget, verdict: MoveVerdict, left: float | None
) -> None:
    judgement = budgeted(target, now, budget)
    assert judgement.verdict is verdict
    assert judgement.accepted is (verdict is MoveVerdict.ACCEPTED)
    if left is None:
        assert judgement.budget is budget  # a rejection changes nothing
    else:
        assert math.isclose(judgement.budget.left, left, abs_tol=1e-9)
        expected_at = now if math.isnan(budget.at) else max(now, budget.at)
        assert judgement.budget.at == expected_at


def test_budgeted_nan_clock_rejects_rather_than_accepts() -> None:
    judgement = budgeted(Position(1.0, 0.0), NAN, Budget(0.0, 1000.0))
    assert judgement.verdict is MoveVerdict.TOO_FAST


def test_arrival_jitter_that_the_old_rule_called_too_fast_is_absorbed() -> None:
    """bench/README.md: 4-unit steps every 0.5 s (8 units/s); a move that waits more than 136 ms
    longer than its successor makes the gap look shorter than 0.364 s, i.e. faster than
    11 units/s, and the old rule refused the successor. Here: 150 ms."""
    sent = [0.5 * k for k in range(1, 5)]
    delay = [0.0, 0.15, 0.0, 0.0]
    arrived = [s + d for s, d in zip(sent, delay, strict=True)]
    positions = [Position(4.0 * k, 0.0) for k in range(1, 5)]
    # Judged between handling times, the third move covered 4 units in 0.35 s: 11.4 units/s.
    assert 4.0 / (arrived[2] - arrived[1]) > LIMIT
    budget, current = Budget.empty(0.0), ORIGIN
    for target, now in zip(positions, arrived, strict=True):
        judgement = budgeted(target, now, budget, current)
        assert judgement.verdict is MoveVerdict.ACCEPTED
        budget, current = judgement.budget, target


# --- seq: replayed and reordered moves ---------------------------------------------------------


@pytest.mark.parametrize(
    ("last_seq", "seq", "stale"),
    [
        (None, None, False),
        (None, 0, False),
        (None, 2**53, False),
        (5, None, False),  # a move without seq skips the check
        (5, 6, False),
        (5, 5, True),  # replayed
        (5, 4, True),  # reordered
        (5, 0, True),
    ],
)
def test_seq_is_stale_table(last_seq: int | None, seq: int | None, stale: bool) -> None:
    assert seq_is_stale(last_seq, seq) is stale


def test_stale_move_is_refused_before_anything_else_and_changes_nothing() -> None:
    budget = Budget(2.0, 1000.0)
    for target in (Position(1.0, 0.0), Position(NAN, 0.0), Position(60.0, 0.0), ORIGIN):
        judgement = budgeted(target, 1001.0, budget, last_seq=7, seq=7)
        assert judgement == MoveJudgement(MoveVerdict.STALE, budget, 7)
        assert not judgement.verdict.is_violation


def test_accepted_move_with_seq_becomes_the_last_seq_and_a_move_without_keeps_it() -> None:
    budget = Budget.empty(1000.0)
    with_seq = budgeted(Position(1.0, 0.0), 1001.0, budget, last_seq=3, seq=9)
    assert (with_seq.verdict, with_seq.last_seq) == (MoveVerdict.ACCEPTED, 9)
    without = budgeted(Position(1.0, 0.0), 1001.0, budget, last_seq=3, seq=None)
    assert (without.verdict, without.last_seq) == (MoveVerdict.ACCEPTED, 3)
    refused = budgeted(Position(30.0, 0.0), 1001.0, budget, last_seq=3, seq=9)
    assert (refused.verdict, refused.last_seq) == (MoveVerdict.TOO_FAST, 3)


def test_replayed_and_reordered_moves_are_stale_and_never_violations() -> None:
    """A client walks 1 unit per 0.2 s with seq 1..6; the network delivers 1 2 3 2 3 5 4 1 6."""
    sent = {k: (0.2 * k, Position(float(k), 0.0)) for k in range(1, 7)}
    order = [1, 2, 3, 2, 3, 5, 4, 1, 6]
    budget, current, last_seq = Budget.empty(0.0), ORIGIN, None
    verdicts = []
    for i, k in enumerate(order):
        now = 0.2 * (i + 1)  # arrival
        judgement = budgeted(sent[k][1], now, budget, current, last_seq=last_seq, seq=k)
        verdicts.append(judgement.verdict)
        if judgement.accepted:
            current = sent[k][1]
        budget, last_seq = judgement.budget, judgement.last_seq
    a, s = MoveVerdict.ACCEPTED, MoveVerdict.STALE
    assert verdicts == [a, a, a, s, s, a, s, s, a]
    assert not any(v.is_violation for v in verdicts)
    assert current == sent[6][1] and last_seq == 6


# --- properties of the budget ------------------------------------------------------------------

seqs = st.one_of(st.none(), st.integers(0, 50))
limits = st.builds(
    SpeedLimit,
    max_speed=st.sampled_from([MAX_SPEED, 3.0, 25.0]),
    burst_s=st.sampled_from([0.0, 0.1, MOVE_BURST_S, 2.0]),
)
backwards = st.floats(-2.0, 0.0)


@settings(max_examples=300, deadline=None)
@given(
    limit=limits,
    start_x=inside,
    start_y=inside,
    t0=st.floats(0.0, 1e6),
    plan=st.lists(
        st.tuples(st.one_of(time_step, backwards), st.one_of(absolute, offset, at_limit), seqs),
        max_size=40,
    ),
)
def test_no_run_of_accepted_moves_beats_the_limit_by_more_than_the_burst(
    limit: SpeedLimit,
    start_x: float,
    start_y: float,
    t0: float,
    plan: list[tuple[float, tuple[str, float, float, float, float], int | None]],
) -> None:
    """For accepted moves i < j: the distance of the moves after i up to j is at most
    capacity + rate * (t_j - t_i); from the selection (empty budget) at most rate * (t_j - t0).
    So within any window, what is accepted is at most capacity + rate * window plus the one
    move that opens the window (which may spend the pause before it, up to TELEPORT_DISTANCE).
    Arbitrary targets, seqs and clocks (including a clock that goes backwards)."""
    current = Position(start_x, start_y)
    budget, last_seq, now = Budget.empty(t0), None, t0
    accepted: list[tuple[float, float, float]] = [(t0, 0.0, 0.0)]  # (at, path so far, cost)
    for dt, spec, seq in plan:
        now += dt
        target = _target(current, max(dt, 0.0), spec)
        judgement = judge_budgeted_move(
            current=current,
            budget=budget,
            target=target,
            now=now,
            bounds=ARENA,
            limit=limit,
            last_seq=last_seq,
            seq=seq,
        )
        if judgement.verdict is MoveVerdict.STALE:
            assert judgement.budget is budget and judgement.last_seq == last_seq
        if judgement.accepted:
            cost = distance(current, target)
            assert judgement.budget.at >= budget.at
            assert 0.0 <= judgement.budget.left <= limit.capacity
            accepted.append((judgement.budget.at, accepted[-1][1] + cost, cost))
            current = target
        budget, last_seq = judgement.budget, judgement.last_seq
    slack = 1e-6
    for i, (t_i, path_i, _) in enumerate(accepted):
        for t_j, path_j, _ in accepted[i + 1 :]:
            burst = 0.0 if i == 0 else limit.capacity
            assert path_j - path_i <= burst + limit.rate * (t_j - t_i) + slack
    for i, (t_i, path_i, cost_i) in enumerate(accepted):
        for t_j, path_j, _ in accepted[i:]:
            window = path_j - path_i + cost_i  # moves i..j, all accepted within [t_i, t_j]
            assert window <= TELEPORT_DISTANCE + limit.capacity + limit.rate * (t_j - t_i) + slack


honest_step = st.tuples(
    st.one_of(st.floats(0.001, 4.0), st.sampled_from([0.05, 0.1, 0.5, 2.0])),  # seconds
    st.one_of(st.just(1.0), st.floats(0.0, 1.0)),  # fraction of max_speed
    st.floats(0.0, 2 * math.pi),  # heading
    st.floats(-0.5, 0.5),  # climb: share of the distance that goes into z
    st.floats(0.0, 1.0),  # arrival delay, as a fraction of the burst
)


@settings(max_examples=300, deadline=None)
@given(
    limit=limits,
    start_after=st.floats(0.0, 3.0),
    plan=st.lists(honest_step, min_size=1, max_size=60),
    sequenced=st.booleans(),
)
def test_honest_movement_whose_moves_arrive_up_to_the_burst_late_is_never_rejected(
    limit: SpeedLimit,
    start_after: float,
    plan: list[tuple[float, float, float, float, float]],
    sequenced: bool,
) -> None:
    """A client walks at most max_speed (x, y and z together) from when its character:select
    was answered. Each move reaches the server between 0 and burst_s after it was sent, in the
    order sent (TCP). Every move is accepted, whatever the step sizes and pauses."""
    selected = 0.0  # the server's time of character:select: the budget starts empty here
    budget, last_seq = Budget.empty(selected), None
    current = Position(0.0, 0.0)
    sent = selected + start_after  # the client starts walking once it got the answer
    arrived = selected
    for k, (step_s, speed, heading, climb, delay) in enumerate(plan, start=1):
        dt = min(step_s, TELEPORT_DISTANCE / limit.max_speed)  # honest: no single jump over 50
        sent += dt
        reach = limit.max_speed * dt * speed * (1 - 1e-9)
        flat, up = reach * math.sqrt(1 - climb * climb), reach * climb
        target = Position(
            current.x + flat * math.cos(heading),
            current.y + flat * math.sin(heading),
            current.z + up,
        )
        arrived = max(arrived, sent + delay * limit.burst_s)  # in order, at most burst_s late
        judgement = judge_budgeted_move(
            current=current,
            budget=budget,
            target=target,
            now=arrived,
            bounds=FAR,
            limit=limit,
            last_seq=last_seq,
            seq=k if sequenced else None,
        )
        assert judgement.verdict is MoveVerdict.ACCEPTED, (k, budget, arrived)
        budget, last_seq, current = judgement.budget, judgement.last_seq, target


CHEAT = 1.15  # times the limit (max_speed * 1.1): 12.65 units/s at max_speed 10


def _cheat(
    step_s: float, seconds: float, delays: list[float] | None = None, *, snap_back: bool = False
) -> list[tuple[float, MoveVerdict]]:
    """A client that walks straight at CHEAT x the limit, one move every ``step_s``, after a
    long rest (its budget is as large as it gets). Without ``snap_back`` it keeps its own
    position whatever the server says (a speed hack); with it, it restarts from the server's
    position after each rejection. Returns (send time, verdict) of each move."""
    speed = CHEAT * RATE
    start = 100.0  # selected at 0, so the first move may spend a long pause
    budget, current, mine = Budget.empty(0.0), ORIGIN, ORIGIN
    out: list[tuple[float, MoveVerdict]] = []
    arrived = 0.0
    for k in range(1, int(seconds / step_s) + 1):
        sent = start + k * step_s
        target = Position(mine.x + speed * step_s, 0.0)
        delay = delays[(k - 1) % len(delays)] if delays else 0.0
        arrived = max(arrived, sent + delay)
        judgement = judge_budgeted_move(
            current=current, budget=budget, target=target, now=arrived, bounds=FAR, limit=LIMIT_10
        )
        out.append((sent, judgement.verdict))
        budget = judgement.budget
        if judgement.accepted:
            current = target
        mine = current if snap_back and not judgement.accepted else target
    return out


@pytest.mark.parametrize(("step_s", "in_burst"), [(0.05, 67), (0.1, 34), (0.5, 7), (2.0, 2)])
def test_sustained_115_percent_of_the_limit_is_refused_on_every_move_beyond_the_burst(
    step_s: float, in_burst: int
) -> None:
    """The first move spends the rest before it; each later one takes 15 % more than the refill
    (0.15 * 11 * step units), so the capacity (5.5 units) lasts burst_s / 0.15 = 3.3 s:
    1 + floor(3.33 / step) moves. Every move after that is refused (TOO_FAST, then TELEPORT
    once the client is 50 units ahead of its accepted position), and each is a violation."""
    verdicts = [v for _, v in _cheat(step_s, 30.0)]
    assert verdicts[:in_burst] == [MoveVerdict.ACCEPTED] * in_burst
    beyond = verdicts[in_burst:]
    assert len(beyond) >= 10
    assert all(v.is_violation for v in beyond)
    assert in_burst == 1 + math.floor(MOVE_BURST_S / ((CHEAT - 1) * step_s))


@settings(max_examples=200, deadline=None)
@given(
    step_s=st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0, 2.0]),
    delays=st.lists(st.floats(0.0, MOVE_BURST_S), min_size=1, max_size=50),
)
def test_jitter_buys_a_115_percent_walker_at_most_one_more_burst(
    step_s: float, delays: list[float]
) -> None:
    """With arrivals up to burst_s late, the capacity can be stretched by rate * burst_s once
    more: no move sent later than 2 * burst_s / 0.15 = 6.7 s after the first is accepted."""
    moves = _cheat(step_s, 30.0, delays)
    first = moves[0][0]
    horizon = 2 * MOVE_BURST_S / (CHEAT - 1) + 1e-9
    late = [v for sent, v in moves if sent - first > horizon]
    assert late and all(v is not MoveVerdict.ACCEPTED for v in late)


@pytest.mark.parametrize("step_s", [0.1, 0.5, 2.0])
def test_a_115_percent_walker_that_snaps_back_is_held_to_the_limit(step_s: float) -> None:
    """A client that accepts the server's corrections cannot be refused on every move (its
    next move starts from the authoritative position), but what it is allowed to cover stays
    within the limit: at least 1 - 1/1.15 = 13 % of its moves are refused, and the accepted
    distance over 60 s is at most capacity + rate * 60 plus the first move's pause."""
    moves = _cheat(step_s, 60.0, snap_back=True)
    refused = sum(v is not MoveVerdict.ACCEPTED for _, v in moves)
    accepted = len(moves) - refused
    step = CHEAT * RATE * step_s
    assert accepted * step <= step + CAPACITY + RATE * 60.0 + 1e-6
    assert refused / len(moves) >= 1 - 1 / CHEAT - (1 + CAPACITY / step) / len(moves)


# --- violations -------------------------------------------------------------------------------


def test_tenth_violation_within_the_window_reaches_the_limit_and_ninth_does_not() -> None:
    history: tuple[float, ...] = ()
    flags = []
    for i in range(10):
        history, reached = record_violation(history, 100.0 + i * 5.0)
        flags.append(reached)
    assert flags == [False] * 9 + [True]
    assert history == tuple(100.0 + i * 5.0 for i in range(10))


def test_violations_older_than_the_window_are_dropped_and_do_not_count() -> None:
    old = tuple(float(t) for t in range(9))  # 0 .. 8
    history, reached = record_violation(old, 67.5)
    assert history == (8.0, 67.5)  # only 8.0 is less than 60 s old
    assert reached is False


def test_violation_exactly_window_seconds_ago_has_expired() -> None:
    history, _ = record_violation((10.0, 20.0), 70.0)
    assert history == (20.0, 70.0)


def test_violation_history_is_capped_at_the_limit_and_keeps_reporting_it() -> None:
    history: tuple[float, ...] = tuple(float(t) for t in range(3))
    history, reached = record_violation(history, 3.0, limit=3, window_s=10.0)
    assert history == (1.0, 2.0, 3.0)
    assert reached is True


@pytest.mark.parametrize(("limit", "window_s"), [(0, 60.0), (10, 0.0), (10, NAN)])
def test_record_violation_refuses_a_meaningless_limit_or_window(
    limit: int, window_s: float
) -> None:
    with pytest.raises(ValueError, match="limit"):
        record_violation((), 1.0, limit=limit, window_s=window_s)


# --- actions ----------------------------------------------------------------------------------


def test_action_table_matches_the_protocol() -> None:
    assert {
        n: (r.cooldown_ms, r.needs_target, r.range, r.mana_cost) for n, r in ACTIONS.items()
    } == {
        "attack": (1000, True, 5.0, 0),
        "cast_spell": (2000, False, 30.0, 10),
        "use_item": (500, False, None, 0),
        "interact": (1000, True, 5.0, 0),
        "gather": (1000, False, None, 0),
    }
    assert all(rule.name == name for name, rule in ACTIONS.items())


def test_action_rule_looks_up_known_actions_and_returns_none_for_unknown() -> None:
    assert action_rule("attack") is ACTIONS["attack"]
    assert action_rule("fly") is None
    assert action_rule("") is None


ME = 1
NEAR = Position(3.0, 4.0)  # 5.0 from the origin: exactly in melee range
OK_PARAMS: dict[str, object] = {"itemId": "potion"}


def act(
    name: str,
    *,
    target_id: int | None = 2,
    target: Position | None = NEAR,
    in_zone: bool = True,
    mana: int = 50,
    parameters: dict[str, object] | None = None,
) -> ActionProblem | None:
    rule = ACTIONS[name]
    return check_action(
        rule=rule,
        actor_id=ME,
        actor=ORIGIN,
        mana=mana,
        target_id=target_id,
        target=target,
        target_in_zone=in_zone,
        parameters=OK_PARAMS if parameters is None else parameters,
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("attack", {}, None),
        ("attack", {"target_id": None, "target": None}, ActionProblem.TARGET_REQUIRED),
        ("interact", {"target_id": None, "target": None}, ActionProblem.TARGET_REQUIRED),
        ("attack", {"target_id": ME, "target": ORIGIN}, ActionProblem.TARGET_IS_SELF),
        ("interact", {"target_id": ME, "target": ORIGIN}, ActionProblem.TARGET_IS_SELF),
        ("cast_spell", {"target_id": ME, "target": ORIGIN}, None),
        ("attack", {"in_zone": False}, ActionProblem.TARGET_NOT_IN_ZONE),
        ("attack", {"target": None}, ActionProblem.TARGET_NOT_IN_ZONE),
        ("use_item", {"in_zone": False}, ActionProblem.TARGET_NOT_IN_ZONE),
        ("attack", {"target": Position(3.0, 4.01)}, ActionProblem.TARGET_OUT_OF_RANGE),
        ("attack", {"target": Position(0.0, 0.0, 5.01)}, ActionProblem.TARGET_OUT_OF_RANGE),
        ("cast_spell", {"target": Position(30.0, 0.0)}, None),
        ("cast_spell", {"target": Position(30.01, 0.0)}, ActionProblem.TARGET_OUT_OF_RANGE),
        ("use_item", {"target": Position(90.0, 90.0)}, None),
        ("cast_spell", {"target_id": None, "target": None}, None),
        ("cast_spell", {"mana": 10}, None),
        ("cast_spell", {"mana": 9}, ActionProblem.NOT_ENOUGH_MANA),
        ("attack", {"mana": 0}, None),
        ("use_item", {"target_id": None}, None),
        ("use_item", {"parameters": {"itemId": "x" * 64}}, None),
        ("use_item", {"parameters": {"itemId": "x" * 65}}, ActionProblem.BAD_PARAMETERS),
        ("use_item", {"parameters": {"itemId": ""}}, ActionProblem.BAD_PARAMETERS),
        ("use_item", {"parameters": {"itemId": "   "}}, ActionProblem.BAD_PARAMETERS),
        ("use_item", {"parameters": {"itemId": 7}}, ActionProblem.BAD_PARAMETERS),
        ("use_item", {"parameters": {}}, ActionProblem.BAD_PARAMETERS),
        ("gather", {"target_id": None, "parameters": {}}, None),
    ],
)
def test_check_action_table(name: str, kwargs: dict[str, object], expected: object) -> None:
    assert act(name, **kwargs) == expected


def test_check_action_reports_the_first_problem_in_protocol_order() -> None:
    # self-target is reported before zone, range and mana problems
    assert act("attack", target_id=ME, target=None, in_zone=False) is ActionProblem.TARGET_IS_SELF
    # zone before range; range before mana
    far = Position(99.0, 0.0)
    assert act("cast_spell", target=far, in_zone=False, mana=0) is ActionProblem.TARGET_NOT_IN_ZONE
    assert act("cast_spell", target=far, mana=0) is ActionProblem.TARGET_OUT_OF_RANGE


def test_check_action_uses_the_rule_it_is_given() -> None:
    rule = replace(ACTIONS["attack"], range=None, mana_cost=3)
    assert isinstance(rule, ActionRule)
    problem = check_action(
        rule=rule,
        actor_id=ME,
        actor=ORIGIN,
        mana=2,
        target_id=2,
        target=Position(90.0, 0.0),
        target_in_zone=True,
        parameters={},
    )
    assert problem is ActionProblem.NOT_ENOUGH_MANA


def test_every_action_problem_has_a_message() -> None:
    assert set(ACTION_PROBLEM_MESSAGES) == set(ActionProblem)
    assert all(msg.strip() for msg in ACTION_PROBLEM_MESSAGES.values())


@pytest.mark.parametrize(
    ("ready_at", "now", "expected"), [(5000, 4200, 800), (5000, 5000, 0), (5000, 9000, 0)]
)
def test_cooldown_remaining_is_time_to_ready_and_never_negative(
    ready_at: int, now: int, expected: int
) -> None:
    assert cooldown_remaining_ms(ready_at, now) == expected


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ""),
        ("  looking for healer  ", "looking for healer"),
        ("a\x00b\x07c\x1bd\x7fe", "abcde"),
        ("line\none\ttab\r", "lineonetab"),
        ("zero\u200bwidth\u202eRLO\ufeff", "zerowidthRLO"),
        ("\x00  padded \x01", "padded"),
        ("héllo wörld ✨", "héllo wörld ✨"),
    ],
)
def test_clean_status_message_strips_and_removes_control_characters(
    raw: str | None, expected: str
) -> None:
    assert clean_status_message(raw) == expected


@pytest.mark.parametrize("status", STATUSES)
def test_every_protocol_status_is_accepted(status: str) -> None:
    assert check_status(status, "") is None


def test_status_list_matches_the_protocol() -> None:
    assert STATUSES == ("idle", "busy", "afk", "lfg", "roleplaying")


@pytest.mark.parametrize("status", ["", "IDLE", "sleeping", "idle "])
def test_unknown_status_is_refused_with_a_message(status: str) -> None:
    problem = check_status(status, "")
    assert problem is not None and "status" in problem.lower()


def test_status_message_of_100_characters_is_accepted_and_101_refused() -> None:
    assert STATUS_MESSAGE_MAX == 100
    assert check_status("lfg", "x" * 100) is None
    problem = check_status("lfg", "x" * 101)
    assert problem is not None and "100" in problem


def test_status_message_length_is_counted_after_cleaning() -> None:
    assert check_status("afk", "  " + "x" * 100 + "\x00\x00  ") is None


@pytest.mark.parametrize(
    "raw",
    [
        "\u3164" * 20,
        "\u2800" * 20,
        "\u115f\u1160\uffa0",
        "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e",
        "\u0300\u0301",
        "\ufe0f\U000e0100\u034f\u17b4\u17b5",
        "\U000e0041\U000e007f",
        "\u3000\u2003\u2028\u2029\u00a0",
        " \u3164 \u2800 \u200b ",
    ],
)
def test_a_status_message_that_shows_as_nothing_is_no_message(raw: str) -> None:
    """As a whitespace-only message always was: the status is set, without a message."""
    assert clean_status_message(raw) == ""
    assert check_status("afk", clean_status_message(raw)) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("brb\u2800\u2800\u2800", "brb"),
        ("\u3164lfg\u3164 tank", "lfg tank"),
        ("\u0301afk", "afk"),
        ("coffee \u2615\ufe0f", "coffee \u2615\ufe0f"),
        ("ロールプレイ中", "ロールプレイ中"),
        ("a\ud800b", "ab"),  # a lone surrogate could not be sent as JSON
    ],
)
def test_clean_status_message_removes_invisible_and_trims_blank_characters(
    raw: str, expected: str
) -> None:
    assert clean_status_message(raw) == expected


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Alice",
        "Sir Galahad",
        "Ærwyn",
        "안녕",
        "Zoë",
        "Владимир",
        "李小龙",
        "O'Neil-2",
        "\u2764 Bob",
    ],
)
def test_ordinary_names_have_no_problem(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "visible"),
        ("   ", "visible"),
        ("\u3164" * 5, "visible"),
        ("\u2800", "visible"),
        ("\u115f\u1160", "visible"),
        ("\u0300", "visible"),
        ("\U000e0041", "visible"),
        ("Al\u200bice", "invisible"),  # looks like Alice
        ("Alice\ufe0f", "invisible"),
        ("Alice\u3164", "invisible"),
        ("Al\u3164ice", "invisible"),
        ("Alice\u2800", "invisible"),
        ("A\u2800lice", "invisible"),
        (" Alice", "invisible"),
        ("Alice ", "invisible"),
        ("Sir  Galahad", "invisible"),
        ("Sir\u00a0Galahad", "invisible"),
        ("Sir\nGalahad", "invisible"),
        ("Zoe\u0308", "NFC"),
    ],
)
def test_names_that_show_as_nothing_or_hide_characters_are_refused(name: str, problem: str) -> None:
    found = name_problem(name)
    assert found is not None and problem in found


# --- zones ------------------------------------------------------------------------------------

NEIGHBOURS = frozenset({"forest", "river"})


@pytest.mark.parametrize(
    ("target", "staff", "expected"),
    [
        ("forest", False, True),
        ("river", False, True),
        ("dungeon", False, False),
        ("dungeon", True, True),
        ("town", False, False),
        ("town", True, False),
    ],
)
def test_zone_change_only_to_a_neighbour_unless_staff_and_never_to_the_same_zone(
    target: str, staff: bool, expected: bool
) -> None:
    got = zone_change_allowed(current="town", target=target, neighbours=NEIGHBOURS, staff=staff)
    assert got is expected
