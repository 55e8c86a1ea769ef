"""Read-side queries of the world, and the one access gate for playing a character."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection
from django.db.models import Field
from django.db.models.options import Options

from characters.errors import CharacterAccessDenied, CharacterNotFound
from characters.models import Character, GuildMembership, Zone
from characters.rules import Bounds, Position


@dataclass(frozen=True, slots=True)
class ZoneView:
    id: int
    key: str
    name: str
    bounds: Bounds
    spawn: Position
    neighbours: frozenset[str]


@dataclass(frozen=True, slots=True)
class CharacterView:
    """A character as the realtime layer needs it: plain values, no ORM object."""

    id: int
    owner_id: int
    name: str
    character_class: str
    level: int
    zone: ZoneView
    position: Position
    health: int
    max_health: int
    mana: int
    max_mana: int
    strength: int
    agility: int
    intelligence: int
    status: str
    guild_id: int | None


def zone_view(zone: Zone) -> ZoneView:
    return ZoneView(
        id=zone.pk,
        key=zone.key,
        name=zone.name,
        bounds=Bounds(zone.min_x, zone.max_x, zone.min_y, zone.max_y),
        spawn=Position(zone.spawn_x, zone.spawn_y, zone.spawn_z, 0.0),
        neighbours=frozenset(zone.neighbours.values_list("key", flat=True)),
    )


def zone_by_key(key: str) -> Zone | None:
    return Zone.objects.filter(key=key).first()


# The character a connection selects, read with one statement of SQL written here rather than
# built by the ORM: building and compiling the equivalent querysets (select_related, a guild
# subquery, the neighbours' join) cost several times the CPU of running them, on the path every
# connect of a playing client takes (bench/README.md). Table and column names come from the
# models' metadata, so the statement follows the models. The zone's neighbours come as one JSON
# array of keys (the one part that differs between SQLite and PostgreSQL), so the whole read is
# one round trip to the database.

_CHARACTER_FIELDS = (
    "id", "owner", "name", "character_class", "level", "pos_x", "pos_y", "pos_z", "direction",
    "health", "max_health", "mana", "max_mana", "strength", "agility", "intelligence", "status",
)  # fmt: skip
_ZONE_FIELDS = (
    "id", "key", "name", "min_x", "max_x", "min_y", "max_y", "spawn_x", "spawn_y", "spawn_z",
)  # fmt: skip


def column(meta: Options[Any], name: str) -> str:
    field = meta.get_field(name)
    assert isinstance(field, Field) and field.column, name  # concrete fields only
    return str(connection.ops.quote_name(field.column))


@functools.cache
def character_statement(vendor: str) -> str:
    """The character with its zone, guild id and its zone's neighbours' keys (a JSON array, or
    NULL for none), by character id."""
    qn = connection.ops.quote_name
    c, z, m = Character._meta, Zone._meta, GuildMembership._meta
    through = z.get_field("neighbours").remote_field.through._meta  # type: ignore[union-attr]
    columns = [f"c.{column(c, f)}" for f in _CHARACTER_FIELDS]
    columns += [f"z.{column(z, f)}" for f in _ZONE_FIELDS]
    guild = (
        f"(SELECT m.{column(m, 'guild')} FROM {qn(m.db_table)} m"  # noqa: S608 (names from the models; values are parameters)
        f" WHERE m.{column(m, 'character')} = c.{qn(c.pk.column)})"
    )
    keys = (
        f"json_agg(nz.{column(z, 'key')})::text"
        if vendor == "postgresql"
        else f"json_group_array(nz.{column(z, 'key')})"
    )
    neighbours = (
        f"(SELECT {keys} FROM {qn(z.db_table)} nz"  # noqa: S608 (names from the models; values are parameters)
        f" INNER JOIN {qn(through.db_table)} n"
        f" ON n.{column(through, 'to_zone')} = nz.{qn(z.pk.column)}"
        f" WHERE n.{column(through, 'from_zone')} = z.{qn(z.pk.column)})"
    )
    return (
        f"SELECT {', '.join(columns)}, {guild}, {neighbours} FROM {qn(c.db_table)} c"  # noqa: S608 (names from the models; values are parameters)
        f" INNER JOIN {qn(z.db_table)} z ON z.{qn(z.pk.column)} = c.{column(c, 'zone')}"
        f" WHERE c.{qn(c.pk.column)} = %s"
    )


def access_character_for_user(*, user_id: int, character_id: int) -> CharacterView:
    """The one place that decides whether ``user_id`` may play ``character_id``: the character
    as stored, with its zone and guild.

    Raises ``CharacterNotFound`` when there is no such character and ``CharacterAccessDenied``
    when it belongs to someone else.
    """
    with connection.cursor() as cursor:
        cursor.execute(character_statement(connection.vendor), [character_id])
        rows = cursor.fetchall()
    return character_from_rows(rows, user_id=user_id, character_id=character_id)


def character_from_rows(
    rows: Sequence[Sequence[Any]], *, user_id: int, character_id: int
) -> CharacterView:
    """``access_character_for_user``'s decision on the rows of ``character_statement`` (run by
    a caller of its own, e.g. on an async connection)."""
    if not rows:
        raise CharacterNotFound(f"Character {character_id} does not exist")
    (cid, owner_id, name, character_class, level, x, y, z, direction, health, max_health,
     mana, max_mana, strength, agility, intelligence, status,
     zone_id, zone_key, zone_name, min_x, max_x, min_y, max_y, spawn_x, spawn_y, spawn_z,
     guild_id, neighbour_keys) = rows[0]  # fmt: skip
    if owner_id != user_id:
        raise CharacterAccessDenied("That character is not yours")
    neighbours = frozenset(orjson.loads(neighbour_keys)) if neighbour_keys else frozenset()
    zone = ZoneView(
        id=zone_id,
        key=zone_key,
        name=zone_name,
        bounds=Bounds(min_x, max_x, min_y, max_y),
        spawn=Position(spawn_x, spawn_y, spawn_z, 0.0),
        neighbours=neighbours,
    )
    return CharacterView(
        id=cid,
        owner_id=owner_id,
        name=name,
        character_class=character_class,
        level=level,
        zone=zone,
        position=Position(x, y, z, direction),
        health=health,
        max_health=max_health,
        mana=mana,
        max_mana=max_mana,
        strength=strength,
        agility=agility,
        intelligence=intelligence,
        status=status,
        guild_id=guild_id,
    )


def character_ids_for_user(user_id: int) -> list[int]:
    return list(Character.objects.filter(owner_id=user_id).values_list("pk", flat=True))
