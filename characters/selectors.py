"""Read-side queries of the world, and the one access gate for playing a character."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, QuerySet, Subquery

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


def with_guild_id(characters: QuerySet[Character]) -> QuerySet[Character]:
    """Characters annotated with their guild's id (``member_guild_id``), read in the same query
    (a character belongs to at most one guild)."""
    guild = GuildMembership.objects.filter(character_id=OuterRef("pk")).values("guild_id")[:1]
    return characters.annotate(member_guild_id=Subquery(guild))


def character_view(character: Character) -> CharacterView:
    if hasattr(character, "member_guild_id"):  # read with the character (``with_guild_id``)
        guild_id: int | None = character.member_guild_id
    else:
        membership = GuildMembership.objects.filter(character_id=character.pk).first()
        guild_id = membership.guild_id if membership else None
    return CharacterView(
        id=character.pk,
        owner_id=character.owner_id,
        name=character.name,
        character_class=character.character_class,
        level=character.level,
        zone=zone_view(character.zone),
        position=Position(character.pos_x, character.pos_y, character.pos_z, character.direction),
        health=character.health,
        max_health=character.max_health,
        mana=character.mana,
        max_mana=character.max_mana,
        strength=character.strength,
        agility=character.agility,
        intelligence=character.intelligence,
        status=character.status,
        guild_id=guild_id,
    )


def access_character_for_user(*, user_id: int, character_id: int) -> Character:
    """The one place that decides whether ``user_id`` may play ``character_id``.

    Raises ``CharacterNotFound`` when there is no such character and ``CharacterAccessDenied``
    when it belongs to someone else.
    """
    character = (
        with_guild_id(Character.objects.select_related("zone")).filter(pk=character_id).first()
    )
    if character is None:
        raise CharacterNotFound(f"Character {character_id} does not exist")
    if character.owner_id != user_id:
        raise CharacterAccessDenied("That character is not yours")
    return character


def character_ids_for_user(user_id: int) -> list[int]:
    return list(Character.objects.filter(owner_id=user_id).values_list("pk", flat=True))
