"""The admin API across two real processes: stats count both, kick reaches both (PROTOCOL.md §7).

Processes report their counts to Redis every ``min(5 s, AETURNIS_PRESENCE_REFRESH_S)``, so the
servers here run with a short refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.e2e.conftest import (
    RELAXED_IP_LIMITS,
    connect_authenticated,
    create_user,
    expect_close,
    http,
    obtain_tokens,
    requires_redis_and_postgres,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]

FAST_REPORTS = {"AETURNIS_RATE_LIMITS": RELAXED_IP_LIMITS, "AETURNIS_PRESENCE_REFRESH_S": "0.5"}


async def staff_token(server: Any) -> str:
    from channels.db import database_sync_to_async

    staff = await create_user()

    def promote() -> None:
        staff.is_staff = True
        staff.save(update_fields=["is_staff"])

    await database_sync_to_async(promote)()
    access, _ = await obtain_tokens(server, staff.username)
    return access


async def test_stats_count_clients_on_both_processes_and_kick_closes_both(
    server_factory: Any,
) -> None:
    first, second = server_factory("daphne", "daphne", extra_env=FAST_REPORTS)
    player = await create_user()
    token, _ = await obtain_tokens(first, player.username)
    admin = {"Authorization": f"Bearer {await staff_token(first)}"}
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            (await stack.enter_async_context(connect_authenticated(server, token)))[0]
            for server in (first, second, second)
        ]
        stats: dict[str, Any] = {}
        for _ in range(50):
            status, body = await http("GET", f"{first.http_url}/api/realtime/stats", headers=admin)
            assert status == 200, body
            stats = body["data"]
            if stats["connectedClients"] == 3 and len(stats["processes"]) == 2:
                break
            await asyncio.sleep(0.2)
        assert stats["connectedClients"] == 3 and stats["connectedUsers"] == 1, stats
        assert sorted(p["connections"] for p in stats["processes"]) == [1, 2], stats
        rooms = {r["roomName"]: r["clientCount"] for r in stats["rooms"]}
        assert rooms[f"user:{player.pk}"] == 3 and rooms["global:events"] == 3, rooms

        status, body = await http(
            "POST",
            f"{second.http_url}/api/realtime/kick",
            body={"userId": player.pk, "reason": "cheating"},
            headers=admin,
        )
        assert status == 200 and body["success"] is True, body
        for ws in sockets:
            closed = await expect_close(ws)
            assert (closed.code, closed.reason) == (4003, "KICKED"), closed
            kicked = [f for f in closed.frames if f.get("event") == "session:kicked"]
            assert kicked and kicked[0]["data"]["reason"] == "cheating", closed.frames
