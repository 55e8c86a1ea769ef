"""Pure character rules: movement, violations, actions, status, zones (PROTOCOL.md §5.2)."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from characters.rules import (
    ACTION_PROBLEM_MESSAGES,
    ACTIONS,
    SPEED_TOLERANCE,
    STATUS_MESSAGE_MAX,
    STATUSES,
    TELEPORT_DISTANCE,
    ActionProblem,
    ActionRule,
    Bounds,
    MoveVerdict,
    Position,
    action_rule,
    check_action,
    check_status,
    clean_status_message,
    cooldown_remaining_ms,
    distance,
    error_code,
    judge_move,
    record_violation,
    zone_change_allowed,
)

MAX_SPEED = 10.0
LIMIT = MAX_SPEED * (1 + SPEED_TOLERANCE)  # 11 units/s
BOUNDS = Bounds(min_x=-100.0, max_x=100.0, min_y=-100.0, max_y=100.0)
ORIGIN = Position(0.0, 0.0, 0.0, 0.0)
NAN, INF = math.nan, math.inf


def judge(target: Position, elapsed: float, current: Position = ORIGIN) -> MoveVerdict:
    return judge_move(
        current=current,
        since=1000.0,
        target=target,
        now=1000.0 + elapsed,
        bounds=BOUNDS,
        max_speed=MAX_SPEED,
    )


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


def test_nan_speed_limit_or_clock_rejects_rather_than_accepts() -> None:
    kwargs = {"current": ORIGIN, "target": Position(1.0, 0.0), "bounds": BOUNDS}
    assert judge_move(**kwargs, since=0.0, now=10.0, max_speed=NAN) is MoveVerdict.TOO_FAST
    assert judge_move(**kwargs, since=NAN, now=10.0, max_speed=10.0) is MoveVerdict.TOO_FAST


def test_move_verdicts_are_distinct_and_map_to_protocol_error_codes() -> None:
    assert len(set(MoveVerdict)) == 4
    assert MoveVerdict.TELEPORT is not MoveVerdict.TOO_FAST
    assert error_code(MoveVerdict.INVALID) == "INVALID_MOVEMENT"
    assert error_code(MoveVerdict.TOO_FAST) == "INVALID_MOVEMENT_SPEED"
    assert error_code(MoveVerdict.TELEPORT) == "INVALID_MOVEMENT_SPEED"
    assert MoveVerdict.TELEPORT.error_code == "INVALID_MOVEMENT_SPEED"
    with pytest.raises(ValueError, match="not a rejection"):
        error_code(MoveVerdict.ACCEPTED)


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


@settings(max_examples=300, deadline=None)
@given(start_x=inside, start_y=inside, t0=st.floats(0.0, 1e6), plan=steps)
def test_accepted_positions_never_exceed_the_speed_limit_between_any_two_of_them(
    start_x: float,
    start_y: float,
    t0: float,
    plan: list[tuple[float, tuple[str, float, float, float, float]]],
) -> None:
    current, since, now = Position(start_x, start_y), t0, t0
    accepted = [(current, since)]
    for dt, spec in plan:
        now += dt
        target = _target(current, dt, spec)
        verdict = judge_move(
            current=current, since=since, target=target, now=now, bounds=ARENA, max_speed=MAX_SPEED
        )
        if verdict is MoveVerdict.ACCEPTED:
            current, since = target, now
            accepted.append((current, since))
    for i, (p_i, t_i) in enumerate(accepted):
        assert all(math.isfinite(v) for v in (p_i.x, p_i.y, p_i.z, p_i.direction))
        assert ARENA.contains(p_i.x, p_i.y)
        for p_j, t_j in accepted[i + 1 :]:
            assert distance(p_i, p_j) <= LIMIT * (t_j - t_i) + 1e-6
    for (p_a, _), (p_b, _) in pairwise(accepted):
        assert distance(p_a, p_b) <= TELEPORT_DISTANCE


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
