"""The account state a connection reads at connect, in one hand-written statement, against the
ORM queries it replaces (chat.services, combat.services), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.utils import timezone

from characters.models import Character
from chat import services as chat_services
from chat.models import Block, Mute
from combat import services as combat_services
from combat.models import CombatParticipant
from realtime.handlers.lifecycle import account_state

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> dict[str, Character]:
    call_command("seed_demo", verbosity=0)
    return {c.owner.username: c for c in Character.objects.select_related("owner")}


def as_the_orm_reads_it(user_id: int) -> tuple[frozenset[int], Any, tuple[int, int] | None]:
    return (
        frozenset(chat_services.blocked_ids(user_id)),
        chat_services.mute_until(user_id),
        combat_services.active_fight_for_user(user_id),
    )


def read(user_id: int) -> tuple[frozenset[int], Any, tuple[int, int] | None]:
    state = async_to_sync(account_state)(user_id)
    return state.chat.blocked_user_ids, state.chat.muted_until, state.active_fight


def test_an_account_with_nothing(world: dict[str, Character]) -> None:
    alice = world["alice"].owner_id
    assert read(alice) == as_the_orm_reads_it(alice) == (frozenset(), None, None)


def test_blocks_the_latest_running_mute_and_a_live_fight(world: dict[str, Character]) -> None:
    alice, bob, carol = (world[name].owner for name in ("alice", "bob", "carol"))
    Block.objects.create(owner=alice, blocked=bob)
    Block.objects.create(owner=alice, blocked=carol)
    Block.objects.create(owner=bob, blocked=alice)  # someone else's
    now = timezone.now()
    Mute.objects.create(user=alice, until=now - timedelta(minutes=1))  # over
    latest = Mute.objects.create(user=alice, until=now + timedelta(minutes=30)).until
    Mute.objects.create(user=alice, until=now + timedelta(minutes=5))
    Mute.objects.create(user=bob, until=now + timedelta(hours=5))  # someone else's
    fight = combat_services.combat_start_pve(
        character_id=world["alice"].pk, monster_key="goblin", now=now
    )

    blocked, muted_until, active = read(alice.pk)
    assert (blocked, muted_until, active) == as_the_orm_reads_it(alice.pk)
    assert blocked == {bob.pk, carol.pk}
    assert muted_until == latest and muted_until.tzinfo is not None
    assert active == (world["alice"].pk, fight.session_id)


def test_a_finished_participation_is_no_live_fight(world: dict[str, Character]) -> None:
    alice = world["alice"]
    combat_services.combat_start_pve(
        character_id=alice.pk, monster_key="goblin", now=timezone.now()
    )
    CombatParticipant.objects.filter(character=alice).update(active=False)
    assert read(alice.owner_id) == as_the_orm_reads_it(alice.owner_id)
    assert read(alice.owner_id)[2] is None
