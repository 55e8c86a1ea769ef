"""Write-side of the world: every change to characters goes through here, one transaction each.

Services decide with the pure rules in ``characters.rules``, persist, and return what happened;
they never send anything (the realtime layer publishes what they return, after commit).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F

from characters import rules
from characters.errors import CharacterError, ZoneNotAdjacent, ZoneNotFound
from characters.models import Character
from characters.selectors import (
    CharacterView,
    ZoneView,
    access_character_for_user,
    column,
    zone_by_key,
    zone_view,
)


def character_select(*, user_id: int, character_id: int) -> CharacterView:
    """The character ``user_id`` may play, as stored; raises ``CharacterError`` otherwise."""
    return access_character_for_user(user_id=user_id, character_id=character_id)


@dataclass(frozen=True, slots=True)
class ZoneChange:
    previous: ZoneView
    zone: ZoneView
    position: rules.Position


@transaction.atomic
def character_zone_change(*, character_id: int, zone_key: str, staff: bool) -> ZoneChange:
    """Move the character to ``zone_key``'s spawn point, persisted at once.

    Raises ``ZoneNotFound`` for an unknown zone and ``ZoneNotAdjacent`` unless the zone is a
    neighbour of the current one (staff may go anywhere but where they already are).
    """
    character = Character.objects.select_for_update().select_related("zone").get(pk=character_id)
    target = zone_by_key(zone_key)
    if target is None:
        raise ZoneNotFound(f"Zone '{zone_key[:64]}' does not exist")
    previous = zone_view(character.zone)
    if not rules.zone_change_allowed(
        current=previous.key, target=target.key, neighbours=previous.neighbours, staff=staff
    ):
        raise ZoneNotAdjacent(f"'{target.key}' is not next to '{previous.key}'")
    character.zone = target
    character.pos_x, character.pos_y, character.pos_z = (
        target.spawn_x,
        target.spawn_y,
        target.spawn_z,
    )
    character.save(update_fields=["zone", "pos_x", "pos_y", "pos_z", "updated_at"])
    new_zone = zone_view(target)
    position = rules.Position(target.spawn_x, target.spawn_y, target.spawn_z, character.direction)
    return ZoneChange(previous=previous, zone=new_zone, position=position)


@dataclass(frozen=True, slots=True)
class StoredPosition:
    character_id: int
    zone_id: int
    position: rules.Position


def character_positions_save(*, positions: Sequence[StoredPosition]) -> int:
    """Write live positions behind, in one transaction; returns how many rows changed.

    A position is written only while the character is still in the zone it was measured in,
    so a late write-behind can never move a character back into a zone it has left.
    """
    if not positions:
        return 0
    rows = [
        (p.position.x, p.position.y, p.position.z, p.position.direction, p.character_id, p.zone_id)
        for p in positions
    ]
    # Always in a transaction, even for one row: a write given up on (database stalled) must
    # never be applied later, and only a COMMIT that never arrives guarantees that.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_position_update_statement(connection.vendor), rows)
        return int(cursor.rowcount)


@functools.cache
def _position_update_statement(vendor: str) -> str:
    """One character's position, while it is in the given zone. Written by hand (names from
    the model): every disconnect writes one, and the ORM's UPDATE cost ~1.3 ms of CPU to build
    against ~0.2 ms to run in its transaction (bench/README.md); many run as one
    ``executemany`` (psycopg pipelines them)."""
    qn = connection.ops.quote_name
    meta = Character._meta
    pos_x, pos_y, pos_z, direction, zone = (
        column(meta, name) for name in ("pos_x", "pos_y", "pos_z", "direction", "zone")
    )
    return (
        f"UPDATE {qn(meta.db_table)} SET {pos_x} = %s, {pos_y} = %s, {pos_z} = %s,"  # noqa: S608 (names from the model; values are parameters)
        f" {direction} = %s WHERE {qn(meta.pk.column)} = %s AND {zone} = %s"
    )


def character_status_set(*, character_id: int, status: str) -> None:
    if status not in rules.STATUSES:
        raise CharacterError(f"Unknown status '{status[:32]}'")
    with transaction.atomic():  # never applied later if the database stalls (realtime.core.db)
        Character.objects.filter(pk=character_id).update(status=status)


def character_mana_spend(*, character_id: int, amount: int) -> int | None:
    """Spend ``amount`` mana atomically; the mana left, or None when there is not enough."""
    if amount <= 0:
        return Character.objects.filter(pk=character_id).values_list("mana", flat=True).first()
    with transaction.atomic():
        updated = Character.objects.filter(pk=character_id, mana__gte=amount).update(
            mana=F("mana") - amount
        )
        if not updated:
            return None
        return Character.objects.filter(pk=character_id).values_list("mana", flat=True).first()
