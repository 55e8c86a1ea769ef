"""Character services against a real database: the rows they write and what they return."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.forms import modelform_factory

from characters import services
from characters.errors import (
    CharacterAccessDenied,
    CharacterNotFound,
    ZoneNotAdjacent,
    ZoneNotFound,
)
from characters.models import Character, Guild, Zone
from characters.rules import Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Character]:
    call_command("seed_demo", verbosity=0)
    return {c.owner.username: c for c in Character.objects.select_related("owner")}


def test_select_returns_the_owners_character_with_zone_and_guild(world: Any) -> None:
    alice = world["alice"]
    view = services.character_select(user_id=alice.owner_id, character_id=alice.pk)
    assert view.id == alice.pk and view.name == "Alice" and view.owner_id == alice.owner_id
    assert view.zone.key == "starting_village"
    assert view.zone.neighbours == frozenset({"meadow_path"})
    assert (view.zone.bounds.min_x, view.zone.bounds.max_x) == (-500, 500)
    assert view.guild_id is not None
    assert (
        services.character_select(
            user_id=world["carol"].owner_id, character_id=world["carol"].pk
        ).guild_id
        is None
    )


def test_select_reads_every_neighbour_of_the_zone_and_none_of_a_lone_zone(world: Any) -> None:
    bob = world["bob"]
    Character.objects.filter(pk=bob.pk).update(zone=Zone.objects.get(key="meadow_path"))
    view = services.character_select(user_id=bob.owner_id, character_id=bob.pk)
    assert view.zone.neighbours == frozenset({"dark_forest", "starting_village"})
    lone = Zone.objects.create(
        key="lone_isle", name="Lone Isle", min_x=0, max_x=10, min_y=0, max_y=10
    )
    Character.objects.filter(pk=bob.pk).update(zone=lone)
    view = services.character_select(user_id=bob.owner_id, character_id=bob.pk)
    assert view.zone.key == "lone_isle" and view.zone.neighbours == frozenset()


def test_select_refuses_someone_elses_character(world: Any) -> None:
    with pytest.raises(CharacterAccessDenied):
        services.character_select(user_id=world["bob"].owner_id, character_id=world["alice"].pk)
    with pytest.raises(CharacterNotFound):
        services.character_select(user_id=world["bob"].owner_id, character_id=10**9)


def test_zone_change_to_a_neighbour_moves_to_its_spawn_and_is_stored(world: Any) -> None:
    alice = world["alice"]
    change = services.character_zone_change(
        character_id=alice.pk, zone_key="meadow_path", staff=False
    )
    assert change.previous.key == "starting_village" and change.zone.key == "meadow_path"
    meadow = Zone.objects.get(key="meadow_path")
    assert change.position == Position(meadow.spawn_x, meadow.spawn_y, meadow.spawn_z, 0.0)
    alice.refresh_from_db()
    assert alice.zone_id == meadow.pk
    assert (alice.pos_x, alice.pos_y) == (meadow.spawn_x, meadow.spawn_y)


@pytest.mark.parametrize(
    ("zone", "staff", "error"),
    [
        ("dark_forest", False, ZoneNotAdjacent),
        ("starting_village", True, ZoneNotAdjacent),
        ("atlantis", True, ZoneNotFound),
    ],
)
def test_zone_change_refusals_leave_the_row_alone(
    world: Any, zone: str, staff: bool, error: type[Exception]
) -> None:
    alice = world["alice"]
    with pytest.raises(error):
        services.character_zone_change(character_id=alice.pk, zone_key=zone, staff=staff)
    alice.refresh_from_db()
    assert alice.zone.key == "starting_village"


def test_staff_may_jump_to_any_zone(world: Any) -> None:
    change = services.character_zone_change(
        character_id=world["alice"].pk, zone_key="crystal_caves", staff=True
    )
    assert change.zone.key == "crystal_caves"


def test_positions_save_writes_only_characters_still_in_the_measured_zone(world: Any) -> None:
    alice, bob = world["alice"], world["bob"]
    village = alice.zone_id
    services.character_zone_change(character_id=bob.pk, zone_key="meadow_path", staff=False)
    changed = services.character_positions_save(
        positions=[
            services.StoredPosition(alice.pk, village, Position(5, 6, 7, 90)),
            services.StoredPosition(bob.pk, village, Position(9, 9, 9, 0)),  # stale: bob left
        ]
    )
    assert changed == 1
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.pos_x, alice.pos_y, alice.pos_z, alice.direction) == (5, 6, 7, 90)
    assert bob.zone.key == "meadow_path" and bob.pos_x != 9


def test_mana_is_spent_only_when_there_is_enough(world: Any) -> None:
    alice = world["alice"]
    mana = alice.mana
    assert services.character_mana_spend(character_id=alice.pk, amount=10) == mana - 10
    assert services.character_mana_spend(character_id=alice.pk, amount=10_000) is None
    alice.refresh_from_db()
    assert alice.mana == mana - 10


def test_status_is_stored_and_unknown_status_refused(world: Any) -> None:
    alice = world["alice"]
    services.character_status_set(character_id=alice.pk, status="roleplaying")
    alice.refresh_from_db()
    assert alice.status == "roleplaying"
    with pytest.raises(Exception, match="Unknown status"):
        services.character_status_set(character_id=alice.pk, status="asleep")


@pytest.mark.parametrize("model", [Character, Guild])
@pytest.mark.parametrize("name", ["\u3164" * 5, "\u2800\u2800", "\u200b", "Al\u200bice"])
def test_admin_forms_refuse_a_name_that_shows_as_nothing_or_hides_characters(
    model: type[Character | Guild], name: str
) -> None:
    form = modelform_factory(model, fields=["name"])(data={"name": name})
    assert not form.is_valid()
    assert any("visible" in error for error in form.errors["name"]), form.errors


@pytest.mark.parametrize("model", [Character, Guild])
def test_admin_forms_accept_an_ordinary_name(model: type[Character | Guild]) -> None:
    form = modelform_factory(model, fields=["name"])(data={"name": "Ærwyn"})
    assert form.is_valid(), form.errors
