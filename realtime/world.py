"""The character a connection plays, and writing live positions behind to the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from characters.rules import Bounds
from characters.selectors import CharacterView, ZoneView
from characters.services import StoredPosition, character_positions_save
from realtime.db import db
from realtime.live import LiveState, LiveStore

logger = logging.getLogger(__name__)

FLUSH_BATCH = 500


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


def _stored(states: list[LiveState]) -> list[StoredPosition]:
    return [StoredPosition(s.character_id, s.zone_id, s.position) for s in states]


async def _save(positions: list[StoredPosition]) -> int:
    return await db(character_positions_save, positions=positions)


class PositionWriter:
    """Writes dirty live positions to the database every ``AETURNIS_POSITION_FLUSH_S``."""

    def __init__(self, store: LiveStore) -> None:
        self.store = store

    async def run(self) -> None:
        """The write-behind loop (the runtime runs and cancels it)."""
        from realtime.runtime import repeat

        await repeat(
            lambda: float(settings.AETURNIS_POSITION_FLUSH_S), self.flush_all, "position write"
        )

    async def flush_all(self) -> int:
        """Write every dirty position; on failure the taken ones are marked dirty again."""
        written = 0
        while True:
            states = await self.store.take_dirty(FLUSH_BATCH)
            if not states:
                return written
            try:
                await _save(_stored(states))
            except Exception:
                await self.store.mark_dirty([s.character_id for s in states])
                raise
            written += len(states)
            if len(states) < FLUSH_BATCH:
                return written

    async def flush_character(self, character_id: int) -> None:
        """Write one character's live position now (its connection ended)."""
        state = await self.store.get(character_id)
        if state is not None:
            await _save(_stored([state]))
