"""The character a connection plays: its zone, bounds, guild and movement violations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from characters.rules import Bounds
from characters.selectors import CharacterView, ZoneView


@dataclass(slots=True)
class Playing:
    """The selected character of one connection (PROTOCOL.md §4: one zone at a time)."""

    character_id: int
    user_id: int
    name: str
    zone_id: int
    zone: str
    bounds: Bounds
    neighbours: frozenset[str]
    guild_id: int | None
    mana: int
    violations: tuple[float, ...] = field(default=())
    # The seq of the last accepted character:move of this connection and character (None
    # before the first sequenced move): a move whose seq is not above it is STALE.
    last_seq: int | None = None

    @classmethod
    def of(cls, view: CharacterView) -> Playing:
        return cls(
            character_id=view.id,
            user_id=view.owner_id,
            name=view.name,
            zone_id=view.zone.id,
            zone=view.zone.key,
            bounds=view.zone.bounds,
            neighbours=view.zone.neighbours,
            guild_id=view.guild_id,
            mana=view.mana,
        )

    def enter(self, zone: ZoneView) -> None:
        self.zone_id, self.zone = zone.id, zone.key
        self.bounds, self.neighbours = zone.bounds, zone.neighbours

    def zone_message(self) -> dict[str, Any]:
        """The current zone as carried to other connections by the ``enter_zone`` control."""
        b = self.bounds
        return {
            "id": self.zone_id,
            "key": self.zone,
            "bounds": [b.min_x, b.max_x, b.min_y, b.max_y],
            "neighbours": sorted(self.neighbours),
        }

    def follow(self, zone: dict[str, Any]) -> bool:
        """Take the zone of an ``enter_zone`` message; False when it is malformed."""
        try:
            min_x, max_x, min_y, max_y = (float(v) for v in zone["bounds"])
            zone_id, key = int(zone["id"]), str(zone["key"])
            neighbours = frozenset(str(n) for n in zone["neighbours"])
        except (KeyError, TypeError, ValueError):
            return False
        self.zone_id, self.zone = zone_id, key
        self.bounds, self.neighbours = Bounds(min_x, max_x, min_y, max_y), neighbours
        return True
