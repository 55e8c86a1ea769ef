"""Game-level steps of fault tests: tokens, selecting, moving, chatting, reading what was stored.

Tokens are minted in the test process with the servers' secret (``subprocess_env`` passes
``settings.SECRET_KEY``), not through ``POST /api/auth/token/``: a test needs tokens while the
servers' database is cut, and a login costs ~270 ms of PBKDF2 per user.
"""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from tests.e2e.players import Player
from tests.faults.support import Answer, GameClient, Received

MOVE_STEP = 0.01  # units per move: far inside any speed budget, so no move is ever refused


async def access_token(user_id: int) -> str:
    """A valid access token of ``user_id`` (as ``POST /api/auth/token/`` would issue)."""

    def mint() -> str:
        from django.contrib.auth import get_user_model
        from rest_framework_simplejwt.tokens import AccessToken

        return str(AccessToken.for_user(get_user_model().objects.get(pk=user_id)))

    token: str = await database_sync_to_async(mint)()
    return token


async def token_pair(user_id: int) -> tuple[str, str]:
    """(access, refresh) of ``user_id``; the refresh token is recorded as outstanding."""

    def mint() -> tuple[str, str]:
        from django.contrib.auth import get_user_model
        from rest_framework_simplejwt.tokens import RefreshToken

        refresh = RefreshToken.for_user(get_user_model().objects.get(pk=user_id))
        return str(refresh.access_token), str(refresh)

    pair: tuple[str, str] = await database_sync_to_async(mint)()
    return pair


async def select(client: GameClient, player: Player) -> dict[str, Any]:
    answer = await client.request("character:select", {"characterId": player.cid})
    assert answer.ok, (client.label, answer)
    character: dict[str, Any] = answer.data["character"]
    return character


class Walker:
    """Moves one character by ``MOVE_STEP`` along x; every position it sends is unique."""

    def __init__(self, client: GameClient, player: Player) -> None:
        self.client = client
        self.player = player
        self.steps = 0

    def _next_x(self) -> float:
        self.steps += 1
        return round(self.steps * MOVE_STEP, 2)

    async def move(self, timeout: float = 5.0) -> tuple[float, Answer]:
        x = self._next_x()
        return x, await self.client.request("character:move", {"x": x, "y": 0}, timeout)

    async def move_seen_by(self, watcher: GameClient, timeout: float = 5.0) -> float:
        """Move, and return the seconds from sending it to ``watcher`` receiving
        ``character:moved`` for it (fails if the move is refused or never arrives)."""
        started = time.monotonic()
        x, answer = await self.move(timeout)
        assert answer.ok, (self.client.label, answer)
        seen: Received = await watcher.take(
            "character:moved",
            lambda f: (
                f["data"]["characterId"] == self.player.cid and f["data"]["position"]["x"] == x
            ),
            timeout,
        )
        return seen.at - started


async def move_latencies(
    walker: Walker, watcher: GameClient, n: int, timeout: float = 5.0
) -> list[float]:
    """``n`` moves of ``walker``; for each, the seconds until ``watcher`` saw it."""
    return [await walker.move_seen_by(watcher, timeout) for _ in range(n)]


async def stored_chat_texts(contains: str) -> list[str]:
    """Texts of stored chat messages containing ``contains`` (read from the database now)."""

    def read() -> list[str]:
        from chat.models import ChatMessage

        return list(
            ChatMessage.objects.filter(text__contains=contains).values_list("text", flat=True)
        )

    texts: list[str] = await database_sync_to_async(read)()
    return texts
