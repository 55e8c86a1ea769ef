"""``manage.py seed_demo`` builds exactly the demo world of PROTOCOL.md §9, idempotently."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from characters.models import Character, Guild, GuildMembership, GuildRole, Zone

pytestmark = pytest.mark.django_db

DEMO_PASSWORD = "aeturnis-demo"
DEMO_ZONES = {"starting_village", "meadow_path", "dark_forest", "crystal_caves"}
DEMO_ADJACENCY = {
    frozenset({"starting_village", "meadow_path"}),
    frozenset({"meadow_path", "dark_forest"}),
    frozenset({"dark_forest", "crystal_caves"}),
}
DEMO_PLAYERS = {"alice": "Alice", "bob": "Bob", "carol": "Carol", "dave": "Dave"}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def world_counts() -> dict[str, int]:
    return {
        "zones": Zone.objects.count(),
        "adjacencies": Zone.neighbours.through.objects.count(),
        "users": get_user_model().objects.count(),
        "characters": Character.objects.count(),
        "guilds": Guild.objects.count(),
        "memberships": GuildMembership.objects.count(),
    }


def adjacency_pairs() -> set[frozenset[str]]:
    return {
        frozenset({zone.key, neighbour.key})
        for zone in Zone.objects.prefetch_related("neighbours")
        for neighbour in zone.neighbours.all()
    }


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """PBKDF2 costs ~0.3 s a hash; the seed's logic does not depend on which hasher runs."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded() -> str:
    return seed()


def test_seed_creates_the_four_zones_with_only_the_three_adjacencies(seeded: str) -> None:
    assert set(Zone.objects.values_list("key", flat=True)) == DEMO_ZONES
    assert adjacency_pairs() == DEMO_ADJACENCY
    village = Zone.objects.get(key="starting_village")
    assert (village.min_x, village.max_x, village.min_y, village.max_y) == (-500, 500, -500, 500)
    assert (village.spawn_x, village.spawn_y, village.spawn_z) == (0, 0, 0)


def test_every_zone_has_a_human_name_and_its_spawn_inside_its_bounds(seeded: str) -> None:
    for zone in Zone.objects.all():
        assert zone.name and zone.name != zone.key
        assert zone.min_x < zone.max_x and zone.min_y < zone.max_y
        assert zone.min_x <= zone.spawn_x <= zone.max_x
        assert zone.min_y <= zone.spawn_y <= zone.max_y


def test_each_demo_player_owns_one_character_at_the_village_spawn(seeded: str) -> None:
    classes = set()
    for username, character_name in DEMO_PLAYERS.items():
        characters = list(Character.objects.filter(owner__username=username))
        assert [c.name for c in characters] == [character_name]
        character = characters[0]
        assert character.zone.key == "starting_village"
        assert (character.pos_x, character.pos_y, character.pos_z) == (0, 0, 0)
        assert 1 <= character.level <= 5
        assert 0 < character.health == character.max_health
        assert 0 < character.mana == character.max_mana
        classes.add(character.character_class)
    assert len(classes) == len(DEMO_PLAYERS)
    levels = set(Character.objects.values_list("level", flat=True))
    assert len(levels) > 1, "demo characters should not all share one level"


def test_higher_level_demo_characters_are_stronger(seeded: str) -> None:
    by_level = sorted(Character.objects.all(), key=lambda c: c.level)
    lowest, highest = by_level[0], by_level[-1]
    assert highest.level > lowest.level
    assert highest.max_health > lowest.max_health
    assert highest.experience > lowest.experience


@pytest.mark.parametrize("username", [*DEMO_PLAYERS, "gm"])
def test_demo_password_authenticates_every_demo_account(seeded: str, username: str) -> None:
    user = authenticate(username=username, password=DEMO_PASSWORD)
    assert user is not None and user.get_username() == username
    assert authenticate(username=username, password="wrong-password") is None


def test_demo_password_authenticates_with_the_production_hasher(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    seed("--players", "1")

    for username in ("alice", "gm", "player0001"):
        user = authenticate(username=username, password=DEMO_PASSWORD)
        assert user is not None
        assert user.password.startswith("pbkdf2_sha256$")


def test_rerun_resets_a_changed_demo_password(seeded: str) -> None:
    alice = get_user_model().objects.get(username="alice")
    alice.set_password("something-else")
    alice.save()

    seed()

    assert authenticate(username="alice", password=DEMO_PASSWORD) is not None


def test_dawnguard_has_exactly_alice_as_leader_and_bob_as_member(seeded: str) -> None:
    guild = Guild.objects.get(name="Dawnguard")
    roles = dict(guild.memberships.values_list("character__name", "role"))
    assert roles == {"Alice": GuildRole.LEADER, "Bob": GuildRole.MEMBER}


def test_gm_is_a_staff_superuser_without_a_character(seeded: str) -> None:
    gm = get_user_model().objects.get(username="gm")
    assert gm.is_staff and gm.is_superuser and gm.is_active
    assert not Character.objects.filter(owner=gm).exists()


def test_demo_players_are_not_staff(seeded: str) -> None:
    assert not get_user_model().objects.filter(username__in=DEMO_PLAYERS, is_staff=True).exists()


def test_seed_creates_the_goblin_and_the_stronger_wolf(seeded: str) -> None:
    from combat.models import MonsterTemplate

    monsters = {m.key: m for m in MonsterTemplate.objects.all()}
    assert set(monsters) == {"goblin", "wolf"}
    assert monsters["wolf"].level > monsters["goblin"].level
    assert monsters["wolf"].max_hp > monsters["goblin"].max_hp


def test_seed_creates_no_extra_accounts(seeded: str) -> None:
    assert world_counts() == {
        "zones": 4,
        # Symmetrical M2M: one through row per direction of each adjacency.
        "adjacencies": 2 * len(DEMO_ADJACENCY),
        "users": len(DEMO_PLAYERS) + 1,
        "characters": len(DEMO_PLAYERS),
        "guilds": 1,
        "memberships": 2,
    }


def test_running_seed_twice_leaves_the_world_unchanged(seeded: str) -> None:
    before = world_counts()
    pairs = adjacency_pairs()

    seed()

    assert world_counts() == before
    assert adjacency_pairs() == pairs


def test_rerun_restores_a_moved_demo_character_and_a_stray_adjacency(seeded: str) -> None:
    bob = Character.objects.get(name="Bob")
    bob.zone = Zone.objects.get(key="dark_forest")
    bob.pos_x, bob.pos_y = 12.5, -40
    bob.save()
    Zone.objects.get(key="starting_village").neighbours.add(Zone.objects.get(key="crystal_caves"))

    seed()

    bob.refresh_from_db()
    assert bob.zone.key == "starting_village"
    assert (bob.pos_x, bob.pos_y, bob.pos_z) == (0, 0, 0)
    assert adjacency_pairs() == DEMO_ADJACENCY


def test_summary_says_how_to_log_in(seeded: str) -> None:
    assert "aeturnis-demo" in seeded
    assert "gm" in seeded
    assert "/api/auth/token/" in seeded


def test_players_option_creates_numbered_players_with_one_character_each() -> None:
    seed("--players", "5")

    usernames = [f"player{n:04d}" for n in range(1, 6)]
    characters = Character.objects.filter(owner__username__startswith="player").select_related(
        "owner", "zone"
    )
    assert sorted(c.owner.username for c in characters) == usernames
    assert sorted(c.name for c in characters) == [name.capitalize() for name in usernames]
    assert {c.zone.key for c in characters} == DEMO_ZONES
    for character in characters:
        zone = character.zone
        assert (character.pos_x, character.pos_y, character.pos_z) == (
            zone.spawn_x,
            zone.spawn_y,
            zone.spawn_z,
        )
    assert authenticate(username="player0005", password=DEMO_PASSWORD) is not None
    assert not get_user_model().objects.filter(username="player0006").exists()


def test_rerunning_players_option_creates_no_duplicates() -> None:
    seed("--players", "5")
    before = world_counts()

    seed("--players", "5")

    assert world_counts() == before
    assert Character.objects.filter(owner__username__startswith="player").count() == 5


def test_fewer_players_after_more_keeps_existing_and_adds_nothing() -> None:
    seed("--players", "5")
    before = world_counts()

    seed("--players", "3")

    assert world_counts() == before


def test_more_players_after_fewer_adds_only_the_missing_ones() -> None:
    seed("--players", "3")
    seed("--players", "5")

    usernames = get_user_model().objects.filter(username__startswith="player")
    assert sorted(usernames.values_list("username", flat=True)) == [
        f"player{n:04d}" for n in range(1, 6)
    ]
    assert Character.objects.filter(owner__username__startswith="player").count() == 5


def test_players_option_rejects_a_negative_count() -> None:
    with pytest.raises(CommandError):
        seed("--players", "-1")
    assert not Zone.objects.exists()


@pytest.mark.parametrize(
    ("model", "listed"),
    [(Character, "Alice"), (Zone, "starting_village"), (Guild, "Dawnguard")],
)
def test_admin_changelist_lists_seeded_rows_for_a_superuser(
    client: Any, seeded: str, model: Any, listed: str
) -> None:
    client.force_login(get_user_model().objects.get(username="gm"))
    meta = model._meta
    response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200
    assert listed in response.content.decode()


@pytest.mark.parametrize("model", [Character, Zone, Guild])
def test_admin_change_page_loads_for_a_superuser(client: Any, seeded: str, model: Any) -> None:
    client.force_login(get_user_model().objects.get(username="gm"))
    meta = model._meta
    obj = model.objects.first()
    response = client.get(
        reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    )
    assert response.status_code == 200
