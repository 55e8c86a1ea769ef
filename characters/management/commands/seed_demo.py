"""``manage.py seed_demo [--players N]``: the demo world of PROTOCOL.md §9.

Idempotent: every run leaves the same world. Zones, the four demo players, their characters,
the Dawnguard guild and the ``gm`` moderator are created or reset to their defined state (the
password included, so it always works after a run). Load-test players (``--players N``) are only
created when missing; existing ones are left as they are. Everything happens in one transaction.
The monsters of §9 (``goblin``, ``wolf``) are created or reset here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models.functions import Lower

from characters.models import (
    Character,
    CharacterClass,
    CharacterStatus,
    Guild,
    GuildMembership,
    GuildRole,
    Zone,
)
from combat.models import MonsterTemplate

DEMO_PASSWORD = "aeturnis-demo"  # noqa: S105 - public by design (PROTOCOL.md §9)
MODERATOR_USERNAME = "gm"
GUILD_NAME = "Dawnguard"
LOAD_PLAYER_PREFIX = "player"
MAX_LOAD_PLAYERS = 99_999
BULK_BATCH_SIZE = 500


@dataclass(frozen=True)
class ZoneSpec:
    key: str
    name: str
    bounds: tuple[float, float, float, float]  # min_x, max_x, min_y, max_y
    spawn: tuple[float, float, float]


@dataclass(frozen=True)
class PlayerSpec:
    username: str
    character_class: CharacterClass
    level: int
    guild_role: GuildRole | None = None

    @property
    def character_name(self) -> str:
        return self.username.capitalize()


ZONES: tuple[ZoneSpec, ...] = (
    ZoneSpec("starting_village", "Starting Village", (-500, 500, -500, 500), (0, 0, 0)),
    ZoneSpec("meadow_path", "Meadow Path", (-1000, 1000, -250, 250), (-900, 0, 0)),
    ZoneSpec("dark_forest", "Dark Forest", (-750, 750, -750, 750), (0, -700, 0)),
    ZoneSpec("crystal_caves", "Crystal Caves", (-400, 400, -400, 400), (0, 0, -20)),
)
# A path: starting_village ↔ meadow_path ↔ dark_forest ↔ crystal_caves, and nothing else.
ADJACENCY: tuple[tuple[str, str], ...] = tuple((a.key, b.key) for a, b in pairwise(ZONES))
START_ZONE = ZONES[0].key

PLAYERS: tuple[PlayerSpec, ...] = (
    PlayerSpec("alice", CharacterClass.WARRIOR, 3, GuildRole.LEADER),
    PlayerSpec("bob", CharacterClass.MAGE, 2, GuildRole.MEMBER),
    PlayerSpec("carol", CharacterClass.ROGUE, 4),
    PlayerSpec("dave", CharacterClass.CLERIC, 1),
)

# The monsters of PROTOCOL.md §9: a weak goblin and a stronger wolf.
MONSTERS: tuple[dict[str, Any], ...] = (
    {"key": "goblin", "name": "Goblin", "level": 1, "max_hp": 35, "max_mp": 0, "strength": 8,
     "agility": 9, "intelligence": 4, "xp_reward": 25, "gold_reward": 10},
    {"key": "wolf", "name": "Wolf", "level": 3, "max_hp": 70, "max_mp": 0, "strength": 13,
     "agility": 14, "intelligence": 3, "xp_reward": 60, "gold_reward": 5},
)  # fmt: skip

# Level-1 strength, agility, intelligence per class; the primary stat grows by 2 a level,
# the others by 1.
BASE_STATS: dict[str, tuple[int, int, int]] = {
    CharacterClass.WARRIOR: (14, 10, 6),
    CharacterClass.MAGE: (6, 9, 15),
    CharacterClass.ROGUE: (9, 15, 8),
    CharacterClass.CLERIC: (10, 8, 13),
    CharacterClass.RANGER: (10, 14, 9),
}


def character_attributes(character_class: str, level: int) -> dict[str, int]:
    """Stats, full health and mana, experience and gold that fit a fresh character of a level."""
    base = BASE_STATS[character_class]
    primary = base.index(max(base))
    grown = [value + (level - 1) * (2 if i == primary else 1) for i, value in enumerate(base)]
    strength, agility, intelligence = grown
    max_health = 60 + 10 * level + 3 * strength
    max_mana = 20 + 5 * level + 3 * intelligence
    return {
        "level": level,
        # Total experience at the threshold of ``level``: 100 * (1 + 2 + ... + (level - 1)).
        "experience": 50 * level * (level - 1),
        "gold": 25 * level,
        "strength": strength,
        "agility": agility,
        "intelligence": intelligence,
        "health": max_health,
        "max_health": max_health,
        "mana": max_mana,
        "max_mana": max_mana,
    }


def load_player_username(number: int) -> str:
    return f"{LOAD_PLAYER_PREFIX}{number:04d}"


@dataclass
class SeedReport:
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, *, created: bool, n: int = 1) -> None:
        bucket = self.created if created else self.existing
        bucket[what] = bucket.get(what, 0) + n

    def lines(self) -> list[str]:
        kinds = ("zones", "users", "characters", "guilds", "memberships", "monsters")
        return [
            f"  {kind}: {self.created.get(kind, 0)} created, "
            f"{self.existing.get(kind, 0)} already there"
            for kind in kinds
        ]


def seed_zones(report: SeedReport) -> dict[str, Zone]:
    """Create or reset the demo zones and make their neighbours exactly ``ADJACENCY``."""
    zones: dict[str, Zone] = {}
    for spec in ZONES:
        min_x, max_x, min_y, max_y = spec.bounds
        spawn_x, spawn_y, spawn_z = spec.spawn
        zone, created = Zone.objects.update_or_create(
            key=spec.key,
            defaults={
                "name": spec.name,
                "min_x": min_x,
                "max_x": max_x,
                "min_y": min_y,
                "max_y": max_y,
                "spawn_x": spawn_x,
                "spawn_y": spawn_y,
                "spawn_z": spawn_z,
            },
        )
        zones[spec.key] = zone
        report.count("zones", created=created)
    for key, zone in zones.items():
        linked = [b if a == key else a for a, b in ADJACENCY if key in (a, b)]
        zone.neighbours.set([zones[other] for other in linked])
    return zones


def seed_user(
    username: str, password_hash: str, report: SeedReport, *, moderator: bool = False
) -> AbstractUser:
    user_model = get_user_model()
    user, created = user_model.objects.update_or_create(
        username=username,
        defaults={
            "password": password_hash,
            "is_active": True,
            "is_staff": moderator,
            "is_superuser": moderator,
        },
    )
    report.count("users", created=created)
    return user


def seed_players(
    zones: dict[str, Zone], password_hash: str, report: SeedReport
) -> dict[str, Character]:
    """Create or reset alice, bob, carol and dave and their characters at the village spawn."""
    start = zones[START_ZONE]
    characters: dict[str, Character] = {}
    for spec in PLAYERS:
        user = seed_user(spec.username, password_hash, report)
        # Names are unique case-insensitively, so find "alice" as well as "Alice".
        character, created = Character.objects.update_or_create(
            name__iexact=spec.character_name,
            defaults={
                "name": spec.character_name,
                "owner": user,
                "character_class": spec.character_class,
                "zone": start,
                "pos_x": start.spawn_x,
                "pos_y": start.spawn_y,
                "pos_z": start.spawn_z,
                "direction": 0,
                "status": CharacterStatus.IDLE,
                **character_attributes(spec.character_class, spec.level),
            },
        )
        characters[spec.username] = character
        report.count("characters", created=created)
    return characters


def seed_guild(characters: dict[str, Character], report: SeedReport) -> Guild:
    """Make sure Dawnguard exists and holds its demo members with their roles."""
    guild, created = Guild.objects.get_or_create(name=GUILD_NAME)
    report.count("guilds", created=created)
    for spec in PLAYERS:
        if spec.guild_role is None:
            continue
        _, created = GuildMembership.objects.update_or_create(
            character=characters[spec.username],
            defaults={"guild": guild, "role": spec.guild_role},
        )
        report.count("memberships", created=created)
    return guild


def seed_monsters(report: SeedReport) -> None:
    for spec in MONSTERS:
        _, created = MonsterTemplate.objects.update_or_create(
            key=spec["key"], defaults={k: v for k, v in spec.items() if k != "key"}
        )
        report.count("monsters", created=created)


def seed_load_players(
    count: int, zones: Iterable[Zone], password_hash: str, report: SeedReport
) -> None:
    """Bulk-create the missing ``player0001`` … users and one character for each.

    Users that already exist are left untouched; a user that already owns a character, or whose
    character name is taken, gets no new one. Characters go round-robin over ``zones`` at spawn.
    """
    if count == 0:
        return
    user_model = get_user_model()
    wanted = [load_player_username(n) for n in range(1, count + 1)]
    # Prefix queries instead of ``IN (…)`` lists: no parameter limits, whatever the count.
    existing = set(
        user_model.objects.filter(username__startswith=LOAD_PLAYER_PREFIX).values_list(
            "username", flat=True
        )
    )
    new_users = [
        user_model(username=name, password=password_hash) for name in wanted if name not in existing
    ]
    user_model.objects.bulk_create(new_users, batch_size=BULK_BATCH_SIZE)
    report.count("users", created=True, n=len(new_users))

    ids = dict(
        user_model.objects.filter(username__startswith=LOAD_PLAYER_PREFIX).values_list(
            "username", "pk"
        )
    )
    owners_with_character = set(
        Character.objects.filter(owner__username__startswith=LOAD_PLAYER_PREFIX).values_list(
            "owner_id", flat=True
        )
    )
    taken_names = set(
        Character.objects.annotate(lower_name=Lower("name"))
        .filter(lower_name__startswith=LOAD_PLAYER_PREFIX)
        .values_list("lower_name", flat=True)
    )
    zone_cycle = list(zones)
    class_cycle = list(CharacterClass)
    new_characters: list[Character] = []
    for index, username in enumerate(wanted):
        owner_id = ids[username]
        if owner_id in owners_with_character or username in taken_names:
            continue
        zone = zone_cycle[index % len(zone_cycle)]
        character_class = class_cycle[index % len(class_cycle)]
        new_characters.append(
            Character(
                owner_id=owner_id,
                name=username.capitalize(),
                character_class=character_class,
                zone=zone,
                pos_x=zone.spawn_x,
                pos_y=zone.spawn_y,
                pos_z=zone.spawn_z,
                **character_attributes(character_class, 1),
            )
        )
    Character.objects.bulk_create(new_characters, batch_size=BULK_BATCH_SIZE)
    report.count("characters", created=True, n=len(new_characters))


class Command(BaseCommand):
    help = (
        "Create the demo world of PROTOCOL.md §9 (idempotent): zones, alice/bob/carol/dave with "
        "their characters, the Dawnguard guild and the gm moderator; --players N adds load-test "
        "players player0001 … playerN."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--players",
            type=int,
            default=0,
            metavar="N",
            help="also create load-test users player0001 … playerN, one character each",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        players: int = options["players"]
        if not 0 <= players <= MAX_LOAD_PLAYERS:
            raise CommandError(f"--players must be between 0 and {MAX_LOAD_PLAYERS}")
        # Hash once, outside the transaction: PBKDF2 is deliberately slow, and every demo
        # account shares the same public password.
        password_hash = make_password(DEMO_PASSWORD)
        report = SeedReport()
        with transaction.atomic():
            zones = seed_zones(report)
            characters = seed_players(zones, password_hash, report)
            seed_guild(characters, report)
            seed_user(MODERATOR_USERNAME, password_hash, report, moderator=True)
            seed_monsters(report)
            seed_load_players(players, zones.values(), password_hash, report)
        self._print_summary(report, players)

    def _print_summary(self, report: SeedReport, players: int) -> None:
        self.stdout.write(self.style.SUCCESS("Demo world ready."))
        for line in report.lines():
            self.stdout.write(line)
        names = ", ".join(spec.username for spec in PLAYERS)
        self.stdout.write(f"Players: {names} (characters in {START_ZONE} at 0,0,0).")
        if players:
            last = load_player_username(players)
            self.stdout.write(f"Load-test players: {load_player_username(1)} … {last}.")
        self.stdout.write(
            f"Moderator: {MODERATOR_USERNAME} (Django admin at /admin/). "
            f'Password for every account: "{DEMO_PASSWORD}". '
            "Token: POST /api/auth/token/ with {username, password}."
        )
