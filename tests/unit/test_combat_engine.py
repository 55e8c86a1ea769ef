"""Pure combat engine (PROTOCOL.md §5.4): checks, damage, skills, flee, timeouts, properties."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from combat.engine import (
    FLEE_CHANCE,
    ITEMS,
    MISSED_TURNS_FORFEIT,
    SKILLS,
    Action,
    Fight,
    Fighter,
    Outcome,
    Problem,
    apply,
    check,
    crit_chance,
    hit_chance,
    monster_action,
    replay,
    roll_initiative,
    start,
    state_view,
)

PLAYERS, MONSTERS, CHALLENGER, DEFENDER = "players", "monsters", "challenger", "defender"


def make(pid: str, side: str, **stats: Any) -> Fighter:
    values: dict[str, Any] = {
        "name": pid.upper(),
        "level": 5,
        "hp": 100,
        "max_hp": 100,
        "mp": 30,
        "max_mp": 30,
        "strength": 10,
        "agility": 10,
        "intelligence": 10,
    }
    return Fighter(id=pid, side=side, **{**values, **stats})


def arena(*fighters: Fighter, current: str = "p1", seed: int = 7, **fight: Any) -> Fight:
    """A fight in roster order (no initiative roll), so tests choose whose turn it is."""
    roster = list(fighters) or [
        make("p1", PLAYERS),
        make("p2", PLAYERS),
        make("m1", MONSTERS, monster="goblin", ai=True),
        make("m2", MONSTERS, monster="goblin", ai=True),
    ]
    return Fight(
        seed=seed, fighters=roster, turn_order=[f.id for f in roster], current=current, **fight
    )


def edit(fight: Fight, **changes: dict[str, Any]) -> Fight:
    """A copy of ``fight`` with some fighters' fields replaced, e.g. ``p2={"status": "dead"}``."""
    fighters = [replace(f, **changes.get(f.id, {})) for f in fight.fighters]
    return replace(fight, fighters=fighters)


def duel(seed: int, attacker: dict[str, Any], target: dict[str, Any]) -> Fight:
    return arena(make("p1", PLAYERS, **attacker), make("m1", MONSTERS, **target), seed=seed)


# --- check() ----------------------------------------------------------------------------------

A = Action
CHECK_CASES: list[tuple[str, Callable[[], Fight], Action, Problem | None]] = [
    ("finished fight", lambda: arena(status="finished"), A("p1", "attack", "m1"), Problem.FINISHED),
    ("unknown actor", arena, A("zz", "defend"), Problem.NOT_A_PARTICIPANT),
    (
        "dead actor",
        lambda: edit(arena(current="p2"), p1={"status": "dead", "hp": 0}),
        A("p1", "defend"),
        Problem.NOT_A_PARTICIPANT,
    ),
    (
        "fled actor",
        lambda: edit(arena(current="p2"), p1={"status": "fled"}),
        A("p1", "flee"),
        Problem.NOT_A_PARTICIPANT,
    ),
    ("ally out of turn", arena, A("p2", "defend"), Problem.NOT_YOUR_TURN),
    ("monster out of turn", arena, A("m1", "attack", "p1"), Problem.NOT_YOUR_TURN),
    ("unknown action type", arena, A("p1", "dance"), Problem.INVALID_ACTION),
    ("skill without id", arena, A("p1", "skill", "m1"), Problem.INVALID_ACTION),
    ("unknown skill", arena, A("p1", "skill", "m1", skill="meteor"), Problem.INVALID_ACTION),
    ("unknown skill, bad target", arena, A("p1", "skill", "p2", skill="x"), Problem.INVALID_ACTION),
    (
        "too little mp",
        lambda: edit(arena(), p1={"mp": 4}),
        A("p1", "skill", "m1", skill="power_strike"),
        Problem.INVALID_ACTION,
    ),
    ("item without id", arena, A("p1", "item"), Problem.INVALID_ACTION),
    ("unknown item", arena, A("p1", "item", item="elixir"), Problem.INVALID_ACTION),
    (
        "timed out non-defend",
        arena,
        A("p1", "attack", "m1", timed_out=True),
        Problem.INVALID_ACTION,
    ),
    ("attack an ally", arena, A("p1", "attack", "p2"), Problem.INVALID_TARGET),
    ("attack yourself", arena, A("p1", "attack", "p1"), Problem.INVALID_TARGET),
    ("attack unknown id", arena, A("p1", "attack", "m9"), Problem.INVALID_TARGET),
    (
        "attack the dead",
        lambda: edit(arena(), m2={"status": "dead", "hp": 0}),
        A("p1", "attack", "m2"),
        Problem.INVALID_TARGET,
    ),
    ("no target, two enemies", arena, A("p1", "attack"), Problem.INVALID_TARGET),
    ("fireball an ally", arena, A("p1", "skill", "p2", skill="fireball"), Problem.INVALID_TARGET),
    ("heal an enemy", arena, A("p1", "skill", "m1", skill="heal"), Problem.INVALID_TARGET),
    (
        "potion to an enemy",
        arena,
        A("p1", "item", "m1", item="health_potion"),
        Problem.INVALID_TARGET,
    ),
    (
        "heal a dead ally",
        lambda: edit(arena(), p2={"status": "dead", "hp": 0}),
        A("p1", "skill", "p2", skill="heal"),
        Problem.INVALID_TARGET,
    ),
    (
        "no target, one enemy left",
        lambda: edit(arena(), m2={"status": "fled"}),
        A("p1", "attack"),
        None,
    ),
    (
        "mp exactly the cost",
        lambda: edit(arena(), p1={"mp": 5}),
        A("p1", "skill", "m1", skill="power_strike"),
        None,
    ),
    ("attack an enemy", arena, A("p1", "attack", "m2"), None),
    ("heal defaults to self", arena, A("p1", "skill", skill="heal"), None),
    ("potion to an ally", arena, A("p1", "item", "p2", item="mana_potion"), None),
    ("defend ignores target", arena, A("p1", "defend", "zz"), None),
    ("timed out defend", arena, A("p1", "defend", timed_out=True), None),
    ("flee", arena, A("p1", "flee"), None),
]


@pytest.mark.parametrize(
    ("build", "action", "expected"),
    [pytest.param(b, a, e, id=name) for name, b, a, e in CHECK_CASES],
)
def test_check_reports_each_problem(
    build: Callable[[], Fight], action: Action, expected: Problem | None
) -> None:
    fight = build()
    assert check(fight, action) == expected
    if expected is None:
        apply(fight, action)
    else:
        with pytest.raises(ValueError, match=expected.value):
            apply(fight, action)


# --- hit, critical, damage, defend ------------------------------------------------------------


@pytest.mark.parametrize(
    ("attacker_agility", "target_agility", "hit", "crit"),
    [
        (10, 10, 0.90, 0.10),
        (12, 10, 0.94, 0.12),
        (14, 10, 0.98, 0.14),
        (50, 10, 0.98, 0.35),
        (10, 15, 0.80, 0.10),
        (10, 30, 0.50, 0.10),
        (0, 100, 0.50, 0.10),
    ],
)
def test_hit_and_critical_chances_follow_agility_edge_and_are_clamped(
    attacker_agility: int, target_agility: int, hit: float, crit: float
) -> None:
    a, t = (
        make("p1", PLAYERS, agility=attacker_agility),
        make("m1", MONSTERS, agility=target_agility),
    )
    assert hit_chance(a, t) == pytest.approx(hit)
    assert crit_chance(a, t) == pytest.approx(crit)


def test_attack_damage_follows_the_documented_formula_over_seeds() -> None:
    # power = strength + level = 25; defence = (10 + 4) // 2 = 7; base 18 x U(0.85, 1.15).
    outcomes = []
    for seed in range(300):
        fight = duel(
            seed, {"strength": 20}, {"strength": 10, "level": 4, "hp": 1000, "max_hp": 1000}
        )
        after, outcome = apply(fight, Action("p1", "attack", "m1"))
        assert after.fighter("m1").hp == 1000 - outcome.damage
        outcomes.append(outcome)
    hits = [o for o in outcomes if not o.missed]
    assert {o.damage for o in hits if not o.critical} <= set(range(15, 22))
    assert {o.damage for o in hits if o.critical} <= {2 * d for d in range(15, 22)}
    assert 0.03 < 1 - len(hits) / len(outcomes) < 0.18  # 10 % misses
    assert 0.04 < sum(o.critical for o in hits) / len(hits) < 0.17  # 10 % criticals
    assert all(o.damage == 0 and o.target == "m1" for o in outcomes if o.missed)


def test_a_turns_dice_depend_on_seed_turn_number_and_state_only() -> None:
    fight = duel(5, {}, {"hp": 1000, "max_hp": 1000})
    attack = Action("p1", "attack", "m1")
    by_turn = [apply(replace(fight, turn_number=n), attack)[1] for n in range(1, 41)]
    assert len({(o.damage, o.critical, o.missed) for o in by_turn}) > 5
    for n, outcome in enumerate(by_turn[:5], start=1):
        stored = json.loads(json.dumps(replace(fight, turn_number=n).to_json()))
        assert apply(Fight.from_json(stored), attack)[1] == outcome


def test_damage_is_at_least_one_against_a_far_stronger_defender() -> None:
    for seed in range(50):
        fight = duel(seed, {"strength": 0, "level": 1}, {"strength": 200})
        _, outcome = apply(fight, Action("p1", "attack", "m1"))
        assert outcome.missed or outcome.damage == (2 if outcome.critical else 1)


def test_defending_target_takes_half_of_the_same_seeded_hit() -> None:
    hits = 0
    for seed in range(60):
        open_fight = duel(seed, {"strength": 30}, {})
        guarded = edit(open_fight, m1={"defending": True})
        _, plain = apply(open_fight, Action("p1", "attack", "m1"))
        _, halved = apply(guarded, Action("p1", "attack", "m1"))
        assert (halved.missed, halved.critical) == (plain.missed, plain.critical)
        if not plain.missed:
            hits += 1
            assert halved.damage == max(1, plain.damage // 2) < plain.damage
    assert hits > 40


def test_defend_lasts_until_the_defenders_next_turn() -> None:
    fight = arena(make("p1", PLAYERS), make("m1", MONSTERS))
    fight, outcome = apply(fight, Action("p1", "defend"))
    assert outcome.effects == ["defending"] and outcome.target is None
    assert fight.fighter("p1").defending and fight.current == "m1"
    fight, _ = apply(fight, Action("m1", "attack", "p1"))
    assert fight.fighter("p1").defending  # still up during the monster's turn
    fight, _ = apply(fight, Action("p1", "attack", "m1"))
    assert not fight.fighter("p1").defending


def test_killing_blow_marks_target_dead_with_zero_hp_and_defeated_effect() -> None:
    fight = arena(make("p1", PLAYERS), make("m1", MONSTERS, hp=3), make("m2", MONSTERS))
    seed = next(
        s
        for s in range(100)
        if not apply(replace(fight, seed=s), A("p1", "attack", "m1"))[1].missed
    )
    after, outcome = apply(replace(fight, seed=seed), Action("p1", "attack", "m1"))
    assert outcome.damage >= 3 and outcome.effects == ["defeated:m1"]
    assert (after.fighter("m1").hp, after.fighter("m1").status) == (0, "dead")
    assert after.status == "active" and after.current == "m2"


# --- skills and items -------------------------------------------------------------------------


def test_power_strike_costs_five_mp_and_out_damages_the_same_seeded_attack() -> None:
    compared = 0
    for seed in range(40):
        fight = duel(seed, {"strength": 20}, {"hp": 1000, "max_hp": 1000})
        _, attack = apply(fight, Action("p1", "attack", "m1"))
        after, strike = apply(fight, Action("p1", "skill", "m1", skill="power_strike"))
        assert after.fighter("p1").mp == 30 - SKILLS["power_strike"].mp_cost == 25
        assert strike.missed == attack.missed and strike.action == "skill"
        if not attack.missed:
            compared += 1
            assert strike.damage > attack.damage
    assert compared > 25


def test_fireball_costs_ten_mp_and_scales_with_intelligence_not_strength() -> None:
    fight = duel(
        3, {"strength": 0, "intelligence": 40, "agility": 30}, {"hp": 1000, "max_hp": 1000}
    )
    _, attack = apply(fight, Action("p1", "attack", "m1"))
    after, fireball = apply(fight, Action("p1", "skill", "m1", skill="fireball"))
    assert not attack.missed and not fireball.missed
    assert fireball.damage > 3 * attack.damage
    assert after.fighter("p1").mp == 20


@pytest.mark.parametrize(
    ("target", "hp", "expected_healing"),
    [(None, 50, 25), ("p1", 90, 10), ("p2", 50, 25), ("p2", 100, 0)],
)
def test_heal_restores_ten_plus_intelligence_plus_level_capped_at_max_hp(
    target: str | None, hp: int, expected_healing: int
) -> None:
    healed_id = target or "p1"
    fight = edit(arena(), **{healed_id: {"hp": hp}})
    after, outcome = apply(fight, Action("p1", "skill", target, skill="heal"))
    assert (outcome.target, outcome.healing) == (healed_id, expected_healing)
    assert after.fighter(healed_id).hp == hp + expected_healing <= 100
    assert after.fighter("p1").mp == 30 - 8


def test_potions_are_capped_at_max_cost_no_mp_and_are_unlimited() -> None:
    fight = arena(make("p1", PLAYERS, hp=20, mp=25), make("m1", MONSTERS))
    fight, health = apply(fight, Action("p1", "item", item="health_potion"))
    assert (health.healing, fight.fighter("p1").hp, fight.fighter("p1").mp) == (30, 50, 25)
    fight, _ = apply(fight, Action("m1", "defend"))
    fight, mana = apply(fight, Action("p1", "item", "p1", item="mana_potion"))
    assert (mana.healing, mana.effects, fight.fighter("p1").mp) == (0, ["mp_restored:5"], 30)
    fight, _ = apply(fight, Action("m1", "defend"))
    fight, again = apply(fight, Action("p1", "item", item="health_potion"))
    assert again.healing == 30 and fight.fighter("p1").hp == 80
    assert set(ITEMS) == {"health_potion", "mana_potion"}


# --- flee ---------------------------------------------------------------------------------------


def test_flee_succeeds_about_three_times_in_four_over_seeds() -> None:
    results = []
    for seed in range(400):
        after, outcome = apply(arena(seed=seed), Action("p1", "flee"))
        assert outcome.chance == FLEE_CHANCE == 0.75
        assert after.fighter("p1").status == ("fled" if outcome.fled else "alive")
        assert outcome.effects == (["fled:p1"] if outcome.fled else [])
        assert after.status == "active" and after.current == "p2"
        results.append(outcome.fled)
    assert 0.69 < sum(results) / len(results) < 0.81


def test_last_player_fleeing_ends_the_fight_with_reason_flee_and_monsters_win() -> None:
    fight = edit(arena(), p2={"status": "dead", "hp": 0})
    seed = next(s for s in range(50) if apply(replace(fight, seed=s), A("p1", "flee"))[1].fled)
    after, _ = apply(replace(fight, seed=seed), Action("p1", "flee"))
    assert (after.status, after.winner, after.reason, after.current) == (
        "finished",
        MONSTERS,
        "flee",
        None,
    )
    assert after.rewards == {"m1": {"experience": 0, "gold": 0}, "m2": {"experience": 0, "gold": 0}}


# --- timeouts -----------------------------------------------------------------------------------

MISSED = Action("p1", "defend", timed_out=True)


def test_three_missed_turns_in_a_row_forfeit_with_reason_timeout() -> None:
    fight = arena(make("p1", CHALLENGER), make("p2", DEFENDER, level=7))
    for missed in range(1, MISSED_TURNS_FORFEIT):
        fight, outcome = apply(fight, MISSED)
        assert outcome.action == "defend" and "defending" in outcome.effects
        assert fight.fighter("p1").missed_turns == missed and fight.fighter("p1").defending
        fight, _ = apply(fight, Action("p2", "defend"))
    fight, outcome = apply(fight, MISSED)
    assert outcome.effects == ["forfeited:p1", "fled:p1"]
    assert fight.fighter("p1").status == "fled"
    assert (fight.status, fight.winner, fight.reason) == ("finished", DEFENDER, "timeout")
    assert fight.rewards == {"p2": {"experience": 0, "gold": 0}}  # nobody was defeated


def test_real_action_resets_the_missed_turn_counter() -> None:
    fight = arena(make("p1", PLAYERS), make("m1", MONSTERS))
    for action in [MISSED, MISSED, Action("p1", "defend"), MISSED, MISSED]:
        fight, _ = apply(fight, action)
        fight, _ = apply(fight, Action("m1", "defend"))
    assert fight.fighter("p1").missed_turns == 2 and fight.status == "active"
    fight, _ = apply(fight, MISSED)
    assert fight.reason == "timeout" and fight.winner == MONSTERS


def test_timed_out_defender_takes_half_damage() -> None:
    fight = duel(11, {}, {"strength": 30, "agility": 40})
    guarded, _ = apply(fight, MISSED)
    _, plain = apply(replace(fight, current="m1", turn_number=2), Action("m1", "attack", "p1"))
    _, halved = apply(guarded, Action("m1", "attack", "p1"))
    assert not plain.missed and halved.damage == max(1, plain.damage // 2)


# --- end of fight and rewards -------------------------------------------------------------------


def test_pve_victory_splits_defeated_monsters_rewards_among_living_players() -> None:
    fight = arena(
        make("p1", PLAYERS),
        make("p2", PLAYERS),
        make("p3", PLAYERS, status="dead", hp=0),
        make("m1", MONSTERS, hp=1, xp_reward=10, gold_reward=7),
        make("m2", MONSTERS, hp=0, status="dead", xp_reward=15, gold_reward=4),
        make("m3", MONSTERS, status="fled", xp_reward=99, gold_reward=99),
    )
    seed = next(
        s for s in range(50) if not apply(replace(fight, seed=s), A("p1", "attack"))[1].missed
    )
    after, outcome = apply(replace(fight, seed=seed), Action("p1", "attack"))
    assert outcome.effects == ["defeated:m1"]
    assert (after.status, after.winner, after.reason, after.current) == (
        "finished",
        PLAYERS,
        "victory",
        None,
    )
    assert after.rewards == {
        "p1": {"experience": 13, "gold": 6},
        "p2": {"experience": 12, "gold": 5},
    }


def test_players_killed_by_monsters_is_a_defeat() -> None:
    fight = arena(make("p1", PLAYERS, hp=1), make("m1", MONSTERS, strength=30), current="m1")
    seed = next(
        s for s in range(50) if not apply(replace(fight, seed=s), A("m1", "attack"))[1].missed
    )
    after, _ = apply(replace(fight, seed=seed), Action("m1", "attack"))
    assert (after.winner, after.reason, after.fighter("p1").status) == (MONSTERS, "defeat", "dead")


def test_pvp_victory_gives_ten_xp_per_opponent_level_and_no_gold() -> None:
    fight = arena(make("p1", CHALLENGER, strength=30), make("p2", DEFENDER, hp=1, level=7))
    seed = next(
        s for s in range(50) if not apply(replace(fight, seed=s), A("p1", "attack"))[1].missed
    )
    after, _ = apply(replace(fight, seed=seed), Action("p1", "attack"))
    assert (after.winner, after.reason) == (CHALLENGER, "victory")
    assert after.rewards == {"p1": {"experience": 70, "gold": 0}}


# --- start, turn order, monsters, views ---------------------------------------------------------


def test_start_orders_by_initiative_then_agility_then_id() -> None:
    roster = [make(f"p{i}", PLAYERS, agility=i % 3, level=1) for i in range(8)]
    roster += [make(f"m{i}", MONSTERS, agility=i % 2, level=2) for i in range(8)]
    for seed in range(20):
        rolls = roll_initiative(roster, seed)
        for f in roster:
            assert 2 * f.agility + f.level + 1 <= rolls[f.id] <= 2 * f.agility + f.level + 20
        fight = start(roster, seed)
        agility = {f.id: f.agility for f in roster}
        assert fight.turn_order == sorted(agility, key=lambda i: (-rolls[i], -agility[i], i))
        assert fight.current == fight.turn_order[0]
        assert (fight.round, fight.turn_number, fight.status) == (1, 1, "active")
    assert start(roster, 1).turn_order != start(roster, 2).turn_order


def test_start_skips_fallen_fighters_and_copies_the_roster() -> None:
    roster = [
        make("p1", PLAYERS, agility=90, status="dead", hp=0),
        make("p2", PLAYERS),
        make("m1", MONSTERS),
    ]
    fight = start(roster, 5)
    assert fight.turn_order[0] == "p1" and fight.current != "p1"
    fight.fighter("p2").hp = 1
    assert roster[1].hp == 100


@pytest.mark.parametrize(
    "roster",
    [
        [make("p1", PLAYERS), make("p1", MONSTERS)],
        [make("p1", PLAYERS), make("p2", PLAYERS)],
        [make("p1", PLAYERS), make("p2", DEFENDER)],
        [make("p1", PLAYERS), make("m1", "pirates")],
        [make("p1", PLAYERS, hp=101), make("m1", MONSTERS)],
        [make("p1", PLAYERS, mp=-1), make("m1", MONSTERS)],
        [make("p1", PLAYERS), make("m1", MONSTERS, status="fled")],
        [],
    ],
)
def test_start_rejects_rosters_that_are_not_a_fair_two_sided_fight(roster: list[Fighter]) -> None:
    with pytest.raises(ValueError):
        start(roster, 1)


def test_turns_skip_the_fallen_and_wrapping_starts_a_new_round() -> None:
    fight = edit(arena(), p2={"status": "dead", "hp": 0})
    seen = []
    for _ in range(4):
        seen.append((fight.current, fight.round, fight.turn_number))
        fight, _ = apply(fight, Action(fight.current or "", "defend"))
    assert seen == [("p1", 1, 1), ("m1", 1, 2), ("m2", 1, 3), ("p1", 2, 4)]


def test_monster_attacks_the_weakest_living_enemy_with_ties_by_id() -> None:
    roster = [
        make("p3", PLAYERS, hp=50),
        make("p2", PLAYERS, hp=50),
        make("p1", PLAYERS, hp=0, status="dead"),
    ]
    fight = arena(*roster, make("m1", MONSTERS, mp=0, ai=True), current="m1")
    assert monster_action(fight) == Action("m1", "attack", "p2")
    assert monster_action(edit(fight, p2={"hp": 51})) == Action("m1", "attack", "p3")


def test_monster_heals_itself_below_thirty_percent_when_it_has_the_mp() -> None:
    fight = arena(make("p1", PLAYERS), make("m1", MONSTERS, hp=29, mp=8), current="m1")
    assert monster_action(fight) == Action("m1", "skill", "m1", skill="heal")
    assert monster_action(edit(fight, m1={"hp": 30})).skill != "heal"
    assert monster_action(edit(fight, m1={"mp": 7})).type == "attack"


def test_monster_sometimes_power_strikes_when_it_has_the_mp() -> None:
    fight = arena(make("p1", PLAYERS), make("m1", MONSTERS), current="m1")
    chosen = [monster_action(replace(fight, seed=s)) for s in range(100)]
    assert {a.skill for a in chosen} == {None, "power_strike"}
    assert all(a.target == "p1" for a in chosen)
    with pytest.raises(ValueError, match="FINISHED"):
        monster_action(replace(fight, status="finished", current=None))


def test_state_view_matches_the_combat_state_contract() -> None:
    fight = arena(make("p1", PLAYERS, character_id=42), make("m1", MONSTERS, monster="wolf", mp=3))
    view = state_view(fight)
    assert json.loads(json.dumps(view)) == {
        "status": "active",
        "round": 1,
        "turnNumber": 1,
        "currentTurn": "p1",
        "turnOrder": ["p1", "m1"],
        "participants": [
            {"id": "p1", "characterId": "42", "monster": None, "name": "P1", "side": PLAYERS}
            | {"hp": 100, "maxHp": 100, "mp": 30, "maxMp": 30, "status": "alive"},
            {"id": "m1", "characterId": None, "monster": "wolf", "name": "M1", "side": MONSTERS}
            | {"hp": 100, "maxHp": 100, "mp": 3, "maxMp": 30, "status": "alive"},
        ],
    }


# --- properties ---------------------------------------------------------------------------------


@st.composite
def rosters(draw: st.DrawFn, max_hp: int = 150) -> list[Fighter]:
    pvp = draw(st.booleans())
    sides = (CHALLENGER, DEFENDER) if pvp else (PLAYERS, MONSTERS)
    roster = []
    for side, prefix in zip(sides, ("p", "m"), strict=True):
        for i in range(draw(st.integers(1, 3))):
            top_hp, top_mp = draw(st.integers(1, max_hp)), draw(st.integers(0, 40))
            stat = st.integers(0, 40)
            fighter = Fighter(
                id=f"{prefix}{i + 1}",
                name=f"{prefix}{i + 1}",
                side=side,
                level=draw(st.integers(1, 20)),
                hp=draw(st.integers(1, top_hp)),
                max_hp=top_hp,
                mp=draw(st.integers(0, top_mp)),
                max_mp=top_mp,
                strength=draw(stat),
                agility=draw(stat),
                intelligence=draw(stat),
                ai=prefix == "m" and not pvp,
                xp_reward=draw(st.integers(0, 50)),
                gold_reward=draw(st.integers(0, 50)),
            )
            roster.append(fighter)
    return roster


def legal_actions(fight: Fight) -> list[Action]:
    me = fight.fighter(fight.current or "")
    enemies = [f.id for f in fight.living() if f.side != me.side]
    allies = [f.id for f in fight.living() if f.side == me.side]
    actions = [
        Action(me.id, "defend"),
        Action(me.id, "defend", timed_out=True),
        Action(me.id, "flee"),
    ]
    actions += [Action(me.id, "attack", e) for e in enemies]
    for key, skill in SKILLS.items():
        if me.mp >= skill.mp_cost:
            actions += [
                Action(me.id, "skill", t, skill=key)
                for t in (enemies if skill.offensive else allies)
            ]
    actions += [Action(me.id, "item", t, item=key) for key in ITEMS for t in allies]
    return actions


class Played:
    def __init__(self, roster: list[Fighter], seed: int, choices: list[int]) -> None:
        """Play ``choices`` (indexes into the legal actions); ai fighters use monster_action."""
        fight = start(roster, seed)
        self.states, self.snapshots = [fight], [json.dumps(fight.to_json())]
        self.log: list[Action] = []
        self.outcomes: list[Outcome] = []
        for choice in choices:
            if fight.status == "finished":
                break
            if fight.fighter(fight.current or "").ai:
                action = monster_action(fight)
            else:
                options = legal_actions(fight)
                assert all(check(fight, a) is None for a in options)
                action = options[choice % len(options)]
            assert check(fight, action) is None
            fight, outcome = apply(fight, action)
            self.log.append(action)
            self.outcomes.append(outcome)
            self.states.append(fight)
            self.snapshots.append(json.dumps(fight.to_json()))
        self.final = fight


fights = st.tuples(rosters(), st.integers(0, 2**64), st.lists(st.integers(0, 10**6), max_size=40))


@settings(max_examples=150, deadline=None)
@given(fights)
def test_random_fights_keep_hp_mp_in_bounds_and_turns_consistent(game: Any) -> None:
    played = Played(*game)
    ids = sorted(f.id for f in played.states[0].fighters)
    for number, fight in enumerate(played.states, start=1):
        assert fight.turn_number == number
        assert sorted(fight.turn_order) == ids
        for f in fight.fighters:
            assert 0 <= f.hp <= f.max_hp and 0 <= f.mp <= f.max_mp
            assert (f.status == "dead") == (f.hp == 0)
        if fight.status == "active":
            assert fight.fighter(fight.current or "").status == "alive"
        else:
            assert fight.current is None and fight.winner is not None and fight.reason is not None
            assert {f.side for f in fight.living()} == {fight.winner}
            assert set(fight.rewards) == {f.id for f in fight.living()}
    assert [s.round for s in played.states] == sorted(s.round for s in played.states)


@settings(max_examples=100, deadline=None)
@given(fights)
def test_replay_json_round_trip_purity_and_determinism(game: Any) -> None:
    played = Played(*game)
    assert replay(game[0], game[1], played.log).to_json() == played.final.to_json()
    assert [json.dumps(s.to_json()) for s in played.states] == played.snapshots  # never mutated
    for fight in played.states:
        restored = Fight.from_json(json.loads(json.dumps(fight.to_json())))
        assert restored == fight and restored.to_json() == fight.to_json()
    again = Played(*game)
    assert [o.to_json() for o in again.outcomes] == [o.to_json() for o in played.outcomes]
    assert json.loads(json.dumps([o.to_json() for o in played.outcomes])) == [
        o.to_json() for o in played.outcomes
    ]


@settings(max_examples=100, deadline=None)
@given(rosters(max_hp=40), st.integers(0, 2**64), st.data())
def test_everyone_attacking_ends_the_fight_and_then_no_action_is_accepted(
    roster: list[Fighter], seed: int, data: st.DataObject
) -> None:
    fight = start(roster, seed)
    bound = 8 * sum(f.hp for f in roster) + 40  # every hit takes >= 1 hp; hits land >= 50 %
    for _ in range(bound):
        if fight.status == "finished":
            break
        me = fight.fighter(fight.current or "")
        enemies = sorted(f.id for f in fight.living() if f.side != me.side)
        fight, _ = apply(fight, Action(me.id, "attack", data.draw(st.sampled_from(enemies))))
    assert fight.status == "finished" and fight.reason in {"victory", "defeat"}
    for f in fight.fighters:
        for action in (Action(f.id, "attack"), Action(f.id, "defend"), Action(f.id, "flee")):
            assert check(fight, action) is Problem.FINISHED
            with pytest.raises(ValueError, match="FINISHED"):
                apply(fight, action)
