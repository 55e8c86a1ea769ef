"""Graceful shutdown of a process holding thousands of playing connections (issue #13).

"positions are written first, presence is removed in batches (one pipelined round trip per
few hundred sessions), and 10,000 sessions shut down within the budget with every client told
system:shutdown + 1012 and every acknowledged move written."

2,000 real connections (one asyncio process of ``websockets`` clients) each select a character
of their own — 10 per zone, so the test measures the shutdown and not a zone's fan-out — and
move it once with an ack. Positions are only written behind every hour here
(``AETURNIS_POSITION_FLUSH_S``), so only the shutdown can have written them. On SIGTERM every
client must get ``system:shutdown`` and close 1012 ``SERVER_RESTART``, the process must exit,
both within the budget; afterwards every acknowledged move is in the database and the
process's presence is gone (another process reports every user offline at once, not after
the entries' 90 s expiry).

The 10,000-connection case is ``slow`` (``AETURNIS_SLOW_TESTS=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.e2e.conftest import ServerProcess, ws_connect
from tests.faults.conftest import Rig, rate_limits_env, requires_fault_env, slow
from tests.faults.support import FRAME_TIMEOUT_S, GameClient, figure

pytestmark = [
    pytest.mark.faults,
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_fault_env,
    pytest.mark.django_db(transaction=True),
]

# The budget: systemd's TimeoutStopSec (deploy/systemd, 20 s) is the hard limit, after which
# everything left is SIGKILLed; a shutdown must fit well inside it, as uvicorn's own
# --timeout-graceful-shutdown 10 does.
SHUTDOWN_BUDGET_S = 10.0
PER_ZONE = 10
CONNECT_CONCURRENCY = 64
MOVE = {"x": 0.25, "y": 0.5}  # well inside the speed budget a moment after the selection
SETTLE_AFTER_SELECT_S = 0.3
PRESENCE_BATCH = 100  # presence:get takes at most 100 user ids (PROTOCOL.md §5.5)


async def make_players(n: int) -> list[dict[str, Any]]:
    """``n`` users, each with a character in a zone of its own ``PER_ZONE``, and a token."""
    tag = uuid.uuid4().hex[:6]

    def create() -> list[dict[str, Any]]:
        from django.contrib.auth import get_user_model
        from rest_framework_simplejwt.tokens import AccessToken

        from characters.models import Character, Zone

        zones = Zone.objects.bulk_create(
            [Zone(key=f"sd_{tag}_{z}", name=f"Shutdown {z}") for z in range(n // PER_ZONE + 1)]
        )
        user_model = get_user_model()
        users = user_model.objects.bulk_create(
            [user_model(username=f"sd_{tag}_{i}", password="!") for i in range(n)]
        )
        characters = Character.objects.bulk_create(
            [
                Character(
                    owner_id=user.pk,
                    name=f"S{tag}{i:05d}",
                    zone=zones[i // PER_ZONE],
                    pos_x=0,
                    pos_y=0,
                    pos_z=0,
                )
                for i, user in enumerate(users)
            ]
        )
        return [
            {"uid": str(u.pk), "cid": str(c.pk), "token": str(AccessToken.for_user(u))}
            for u, c in zip(users, characters, strict=True)
        ]

    players: list[dict[str, Any]] = await database_sync_to_async(create)()
    return players


async def stored_positions(character_ids: list[str]) -> dict[str, tuple[float, float]]:
    def read() -> dict[str, tuple[float, float]]:
        from characters.models import Character

        rows = Character.objects.filter(pk__in=[int(c) for c in character_ids])
        return {str(pk): (x, y) for pk, x, y in rows.values_list("pk", "pos_x", "pos_y")}

    positions: dict[str, tuple[float, float]] = await database_sync_to_async(read)()
    return positions


async def connect(
    server: ServerProcess, player: dict[str, Any], gate: asyncio.Semaphore
) -> GameClient:
    """A client of ``player`` after ``sync:initial`` (its label is the character's id)."""
    async with gate:
        ws = await ws_connect(server, token=player["token"])
        async with asyncio.timeout(FRAME_TIMEOUT_S * 2):
            first = json.loads(await ws.recv())
        assert first.get("event") == "sync:initial", first
        return GameClient(ws, player["cid"], first["data"])


async def request_ok(client: GameClient, event: str, data: Any, gate: asyncio.Semaphore) -> bool:
    async with gate:
        return (await client.request(event, data, 30)).ok


async def statuses(observer: GameClient, user_ids: list[str]) -> Counter[str]:
    """How many of ``user_ids`` have each presence status, asked on another process."""
    counts: Counter[str] = Counter()
    for first in range(0, len(user_ids), PRESENCE_BATCH):
        answer = await observer.request(
            "presence:get", {"userIds": user_ids[first : first + PRESENCE_BATCH]}
        )
        assert answer.ok, answer
        counts.update(user["status"] for user in answer.data["users"].values())
    return counts


async def shut_down_many(rig: Rig, kind: str, n: int) -> None:
    # The observer, another process on the same Redis, sees presence as every process does.
    server, observer_server = rig.start_direct(
        kind,
        "uvicorn",
        extra_env={
            "AETURNIS_RATE_LIMITS": rate_limits_env(),
            "AETURNIS_POSITION_FLUSH_S": "3600",  # only the shutdown writes positions
        },
    )
    players = await make_players(n + 1)
    watcher, players = players[0], players[1:]
    user_ids = [p["uid"] for p in players]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients = await asyncio.gather(*(connect(server, p, gate) for p in players))
    selected = await asyncio.gather(
        *(request_ok(c, "character:select", {"characterId": c.label}, gate) for c in clients)
    )
    await asyncio.sleep(SETTLE_AFTER_SELECT_S)
    moved = await asyncio.gather(*(request_ok(c, "character:move", MOVE, gate) for c in clients))
    acked = [c.label for c, ok in zip(clients, moved, strict=True) if ok]
    observer = await connect(observer_server, watcher, gate)
    try:
        assert all(selected), f"{selected.count(False)} selections refused"
        assert len(acked) == n, f"only {len(acked)} of {n} moves acked"
        assert await statuses(observer, user_ids) == {"online": n}

        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_BUDGET_S):
                await asyncio.gather(*(c.ended.wait() for c in clients))
        exit_status = await asyncio.to_thread(
            server.wait_exit, max(0.1, SHUTDOWN_BUDGET_S - (time.monotonic() - signalled))
        )
        exited_after = time.monotonic() - signalled

        closes = Counter(c.close_code for c in clients)
        assert closes == {(1012, "SERVER_RESTART"): n}, closes.most_common(5)
        untold = [c.label for c in clients if not c.frames("system:shutdown")]
        assert not untold, f"{len(untold)} clients closed without system:shutdown"
        last_close = max(c.ended_at or 0.0 for c in clients) - signalled
        assert last_close <= SHUTDOWN_BUDGET_S, last_close
        assert exit_status is not None, f"still running {exited_after:.1f} s after SIGTERM"

        figure(
            f"SIGTERM with {n} playing connections ({kind})",
            f"every client told system:shutdown + 1012 within {last_close:.1f} s, process "
            f"gone after {exited_after:.1f} s",
        )
        positions = await stored_positions(acked)
        unwritten = [cid for cid in acked if positions.get(cid) != (MOVE["x"], MOVE["y"])]
        assert not unwritten, f"{len(unwritten)} acknowledged moves not written"
        # Removed by the shutdown, not left to expire (AETURNIS_PRESENCE_TTL_S, 90 s).
        assert await statuses(observer, user_ids) == {"offline": n}
    finally:
        await asyncio.gather(*(c.close() for c in [*clients, observer]))


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_2000_playing_connections_shut_down_within_the_budget_with_every_move_written(
    rig: Rig, kind: str
) -> None:
    await shut_down_many(rig, kind, 2000)


@slow
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_10000_playing_connections_shut_down_within_the_budget_with_every_move_written(
    rig: Rig, kind: str
) -> None:
    await shut_down_many(rig, kind, 10_000)
