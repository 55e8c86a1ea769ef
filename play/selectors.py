"""What the page needs to know that the real-time protocol does not carry.

PROTOCOL.md has no event that lists an account's characters, a zone's bounds and neighbours, a
guild's members, or where characters that have not moved lately stand. The page reads these
once over HTTP; everything live comes over the socket.
"""

from __future__ import annotations

from typing import Any

from characters.models import Character, GuildMembership, Zone


def _position(character: Character) -> dict[str, float]:
    return {
        "x": character.pos_x,
        "y": character.pos_y,
        "z": character.pos_z,
        "direction": character.direction,
    }


def play_zones() -> dict[str, dict[str, Any]]:
    """Every zone by key: name, bounds, spawn point and neighbour keys."""
    zones: dict[str, dict[str, Any]] = {}
    for zone in Zone.objects.prefetch_related("neighbours").order_by("pk"):
        zones[zone.key] = {
            "name": zone.name,
            "bounds": {
                "minX": zone.min_x,
                "maxX": zone.max_x,
                "minY": zone.min_y,
                "maxY": zone.max_y,
            },
            "spawn": {"x": zone.spawn_x, "y": zone.spawn_y, "z": zone.spawn_z},
            "neighbours": sorted(n.key for n in zone.neighbours.all()),
        }
    return zones


def play_account(user_id: int) -> list[dict[str, Any]]:
    """The account's characters, each with its guild and the guild's members."""
    characters = Character.objects.filter(owner_id=user_id).select_related("zone").order_by("pk")
    result = []
    for character in characters:
        membership = (
            GuildMembership.objects.filter(character=character).select_related("guild").first()
        )
        result.append(
            {
                "id": str(character.pk),
                "name": character.name,
                "class": character.character_class,
                "level": character.level,
                "zone": character.zone.key,
                "guild": None if membership is None else _guild(membership.guild_id),
            }
        )
    return result


def _guild(guild_id: int) -> dict[str, Any]:
    members = (
        GuildMembership.objects.filter(guild_id=guild_id)
        .select_related("guild", "character")
        .order_by("character__name")
    )
    rows = list(members)
    return {
        "id": str(guild_id),
        "name": rows[0].guild.name if rows else "",
        "members": [
            {
                "characterId": str(m.character_id),
                "userId": str(m.character.owner_id),
                "name": m.character.name,
                "role": m.role,
            }
            for m in rows
        ],
    }


def play_zone_positions(zone_key: str) -> list[dict[str, Any]]:
    """Stored positions of the characters in a zone (written behind, a few seconds old)."""
    characters = Character.objects.filter(zone__key=zone_key).order_by("pk")
    return [{"characterId": str(c.pk), "position": _position(c)} for c in characters]
