"""Combat services against a real database: stored fights, locking, turn deadlines."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from characters.models import Character
from combat import challenges, services
from combat.models import CombatAction, CombatParticipant, CombatSession

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> dict[str, Character]:
    call_command("seed_demo", verbosity=0)
    return {c.owner.username: c for c in Character.objects.select_related("owner")}


def pvp(world: dict[str, Character]) -> services.CombatView:
    made = challenges.combat_challenge(
        character_id=world["alice"].pk, target_character_id=world["bob"].pk, now=timezone.now()
    )
    answer = challenges.combat_challenge_respond(
        challenge_id=made.id, character_id=world["bob"].pk, accept=True, now=timezone.now()
    )
    assert answer.view is not None
    return answer.view


def character_of(view: services.CombatView, pid: str) -> int:
    return next(
        int(p["characterId"])
        for p in view.state["participants"]  # type: ignore[attr-defined]
        if p["id"] == pid
    )


@override_settings(AETURNIS_COMBAT_SEED="svc")
def test_pve_start_stores_the_session_its_participants_and_deadline(world: Any) -> None:
    view = services.combat_start_pve(
        character_id=world["alice"].pk, monster_key="goblin", now=timezone.now()
    )
    session = CombatSession.objects.get(pk=view.session_id)
    assert session.status == "active" and session.kind == "pve" and session.seed
    assert session.turn_deadline is not None and session.turn_deadline > timezone.now()
    rows = CombatParticipant.objects.filter(session=session)
    assert {(r.participant_id, r.side) for r in rows} == {("p1", "players"), ("m1", "monsters")}
    assert CombatAction.objects.filter(session=session).count() == len(view.steps)
    with pytest.raises(services.AlreadyInCombat):
        services.combat_start_pve(
            character_id=world["alice"].pk, monster_key="wolf", now=timezone.now()
        )
    with pytest.raises(services.MonsterNotFound):
        services.combat_start_pve(
            character_id=world["bob"].pk, monster_key="dragon", now=timezone.now()
        )


@override_settings(AETURNIS_COMBAT_SEED="svc")
def test_out_of_turn_and_repeated_actions_are_refused(world: Any) -> None:
    view = pvp(world)
    current = str(view.state["currentTurn"])
    waiting = "p2" if current == "p1" else "p1"
    with pytest.raises(services.CombatError) as refused:
        services.combat_act(
            session_id=view.session_id,
            character_id=character_of(view, waiting),
            action_type="attack",
            now=timezone.now(),
        )
    assert refused.value.code == "NOT_YOUR_TURN"
    assert refused.value.extra["currentTurn"] == current
    services.combat_act(
        session_id=view.session_id,
        character_id=character_of(view, current),
        action_type="defend",
        now=timezone.now(),
    )
    with pytest.raises(services.CombatError) as again:
        services.combat_act(
            session_id=view.session_id,
            character_id=character_of(view, current),
            action_type="defend",
            now=timezone.now(),
        )
    assert again.value.code == "NOT_YOUR_TURN"
    seqs = list(
        CombatAction.objects.filter(session_id=view.session_id).values_list("seq", flat=True)
    )
    assert seqs == [1]


@override_settings(AETURNIS_COMBAT_SEED="svc")
def test_an_expired_turn_is_played_once_and_three_forfeit(world: Any) -> None:
    view = pvp(world)
    later = timezone.now() + timedelta(seconds=31)
    played = services.combat_timeouts(now=later)
    assert len(played) == 1 and played[0].steps[0].action.timed_out
    assert played[0].steps[0].outcome.action == "defend"
    assert services.combat_timeouts(now=later) == []  # the deadline moved on: not twice
    for step in range(2, 20):
        results = services.combat_timeouts(now=later + timedelta(seconds=31 * step))
        if results and results[-1].finished:
            assert results[-1].reason == "timeout"
            break
    else:
        pytest.fail("nobody forfeited after many missed turns")
    session = CombatSession.objects.get(pk=view.session_id)
    assert session.status == "finished" and session.reason == "timeout"
    assert not CombatParticipant.objects.filter(session=session, active=True).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@override_settings(AETURNIS_COMBAT_SEED="svc")
def test_two_processes_acting_at_once_apply_exactly_one_action(world: Any) -> None:
    view = pvp(world)
    actor = character_of(view, str(view.state["currentTurn"]))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def act() -> None:
        try:
            barrier.wait()
            services.combat_act(
                session_id=view.session_id,
                character_id=actor,
                action_type="defend",
                now=timezone.now(),
            )
            outcomes.append("applied")
        except services.CombatError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=act) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["NOT_YOUR_TURN", "applied"]
    assert CombatAction.objects.filter(session_id=view.session_id).count() == 1


def test_challenges_expire_and_are_answered_once(world: Any) -> None:
    made = challenges.combat_challenge(
        character_id=world["alice"].pk, target_character_id=world["bob"].pk, now=timezone.now()
    )
    with pytest.raises(services.ChallengeNotFound):
        challenges.combat_challenge_respond(
            challenge_id=made.id,
            character_id=world["bob"].pk,
            accept=True,
            now=timezone.now() + timedelta(seconds=31),
        )
    with pytest.raises(services.ChallengeNotFound):  # not addressed to carol
        challenges.combat_challenge_respond(
            challenge_id=made.id, character_id=world["carol"].pk, accept=True, now=timezone.now()
        )
    declined = challenges.combat_challenge_respond(
        challenge_id=made.id, character_id=world["bob"].pk, accept=False, now=timezone.now()
    )
    assert not declined.accepted and declined.view is None
    with pytest.raises(services.ChallengeNotFound):
        challenges.combat_challenge_respond(
            challenge_id=made.id, character_id=world["bob"].pk, accept=True, now=timezone.now()
        )
