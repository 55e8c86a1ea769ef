"""Writing live positions behind to the database (periodically, per character, at shutdown)."""

from __future__ import annotations

import logging

from django.conf import settings

from characters.services import StoredPosition, character_positions_save
from realtime.core.db import db
from realtime.core.loops import repeat
from realtime.state.live import LiveState, LiveStore

logger = logging.getLogger(__name__)

FLUSH_BATCH = 500


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
        """Write one character's live position now (its connection ended), unless the
        database holds it already (no move since it was last written or loaded); on failure
        it is marked dirty again for the write-behind."""
        state = await self.store.take(character_id)
        if state is None:
            return
        try:
            await _save(_stored([state]))
        except Exception:
            await self.store.mark_dirty([character_id])
            raise
