"""Write-side of the world: every change to characters goes through here, one transaction each.

Services decide with the pure rules in ``characters.rules``, persist, and return what happened;
they never send anything (the realtime layer publishes what they return, after commit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Case, F, Field, FloatField, Value, When

from characters import rules
from characters.errors import CharacterError, ZoneNotAdjacent, ZoneNotFound
from characters.models import Character
from characters.selectors import (
    CharacterView,
    ZoneView,
    access_character_for_user,
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


@transaction.atomic
def character_positions_save(*, positions: Sequence[StoredPosition]) -> int:
    """Write live positions behind, in one transaction; returns how many rows changed.

    A position is written only while the character is still in the zone it was measured in,
    so a late write-behind can never move a character back into a zone it has left.
    """
    changed = 0
    for start in range(0, len(positions), POSITIONS_PER_UPDATE):
        chunk = positions[start : start + POSITIONS_PER_UPDATE]
        changed += _positions_update(chunk)
    return changed


# Characters written by one UPDATE statement (each adds a WHEN to five CASE expressions).
POSITIONS_PER_UPDATE = 200


def _positions_update(chunk: Sequence[StoredPosition]) -> int:
    """One UPDATE for many characters, each only while still in its measured zone."""

    def per_character(
        value: Callable[[StoredPosition], float | int], field: Field[Any, Any]
    ) -> Case:
        whens = [When(pk=item.character_id, then=Value(value(item))) for item in chunk]
        return Case(*whens, output_field=field)

    return Character.objects.filter(
        pk__in=[item.character_id for item in chunk],
        zone_id=per_character(lambda i: i.zone_id, BigIntegerField()),
    ).update(
        pos_x=per_character(lambda i: i.position.x, FloatField()),
        pos_y=per_character(lambda i: i.position.y, FloatField()),
        pos_z=per_character(lambda i: i.position.z, FloatField()),
        direction=per_character(lambda i: i.position.direction, FloatField()),
    )


def character_status_set(*, character_id: int, status: str) -> None:
    if status not in rules.STATUSES:
        raise CharacterError(f"Unknown status '{status[:32]}'")
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
