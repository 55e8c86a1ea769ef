"""Notify's bound on outbound frames, against real servers (issue #19 item 1).

A notify whose data would make a frame over ``AETURNIS_MAX_OUTBOUND_FRAME_BYTES`` is refused
with 400 before anything is sent, so a live socket never gets a frame it cannot take; one just
under the limit reaches a live native client whole; the socket keeps answering after a refusal.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from realtime.protocol.base import encode_data
from realtime.protocol.codecs import room_event_frame_bytes
from tests.e2e.conftest import (
    FRAME_TIMEOUT_S,
    ServerPool,
    connect_authenticated,
    create_user,
    http,
    obtain_tokens,
    requires_postgres,
)

pytestmark = [pytest.mark.e2e, requires_postgres, pytest.mark.django_db(transaction=True)]

EVENT = "quest:update"


def padded_data(user_id: int, frame_bytes: int) -> dict[str, Any]:
    """Data whose notify frame to ``user_id`` is sized ``frame_bytes`` (the margin included)."""
    room = f"user:{user_id}"
    empty = room_event_frame_bytes(EVENT, encode_data({"pad": ""}), room)
    data = {"pad": "x" * (frame_bytes - empty)}
    assert room_event_frame_bytes(EVENT, encode_data(data), room) == frame_bytes
    return data


async def staff_headers(server: Any) -> dict[str, str]:
    staff = await create_user()

    def promote() -> None:
        staff.is_staff = True
        staff.save(update_fields=["is_staff"])

    await database_sync_to_async(promote)()
    access, _ = await obtain_tokens(server, staff.username)
    return {"Authorization": f"Bearer {access}"}


async def next_raw_event(ws: Any, event: str) -> str:
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while True:
            raw = await ws.recv()
            if json.loads(raw).get("event") == event:
                return str(raw)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_notify_under_the_frame_limit_arrives_and_one_over_it_is_refused(
    server_pool: ServerPool, kind: str
) -> None:
    server = server_pool.get(kind)
    limit = settings.AETURNIS_MAX_OUTBOUND_FRAME_BYTES
    player = await create_user()
    token, _ = await obtain_tokens(server, player.username)
    admin = await staff_headers(server)
    url = f"{server.http_url}/api/realtime/notify"

    async def notify(data: dict[str, Any]) -> tuple[int, Any]:
        body = {"userIds": [player.pk], "event": EVENT, "data": data}
        return await http("POST", url, body=body, headers=admin)

    async with connect_authenticated(server, token) as (ws, _):
        largest = padded_data(player.pk, limit)
        status, body = await notify(largest)
        assert status == 200, body
        raw = await next_raw_event(ws, EVENT)
        assert json.loads(raw)["data"] == largest
        assert len(raw.encode()) <= limit

        # Just over the limit, and the issue's ~1 MiB (what fits under the request limit).
        for data in (padded_data(player.pk, limit + 1), {"pad": "x" * 1_000_000}):
            status, body = await notify(data)
            assert status == 400, body
            assert body["error"]["code"] == "PAYLOAD_TOO_LARGE", body
            assert body["error"]["details"]["limit"] == limit

        # The socket is alive and in order: a ping is answered, a later notify delivered.
        await ws.send(json.dumps({"event": "ping", "data": {}, "ack": 1}))
        raw = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
        assert json.loads(raw)["ack"] == 1 and json.loads(raw)["data"]["ok"] is True
        status, body = await notify({"step": 2})
        assert status == 200, body
        assert json.loads(await next_raw_event(ws, EVENT))["data"] == {"step": 2}
