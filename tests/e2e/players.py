"""Players for end-to-end tests: committed users with a character of their own, in a zone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.e2e.conftest import create_user

VILLAGE = "starting_village"


@dataclass(frozen=True)
class Player:
    user_id: int
    username: str
    character_id: int
    character_name: str

    @property
    def uid(self) -> str:
        return str(self.user_id)

    @property
    def cid(self) -> str:
        return str(self.character_id)


def ensure_zones() -> dict[str, Any]:
    """The demo zones and their neighbours (PROTOCOL.md §9), created when missing.

    pytest-django empties every table after a transactional test, so each test needs them again.
    """
    from characters.management.commands.seed_demo import SeedReport, seed_zones

    return seed_zones(SeedReport())


async def create_player(zone_key: str = VILLAGE, **character: Any) -> Player:
    """A committed user with one character of its own in ``zone_key`` at (0, 0, 0)."""
    from channels.db import database_sync_to_async

    user = await create_user()
    name = f"E2e{uuid.uuid4().hex[:12]}"

    def create() -> int:
        from characters.models import Character

        zone = ensure_zones()[zone_key]
        row = Character.objects.create(
            owner_id=user.pk, name=name, zone=zone, pos_x=0, pos_y=0, pos_z=0, **character
        )
        return int(row.pk)

    character_id = await database_sync_to_async(create)()
    return Player(user.pk, user.username, character_id, name)
