"""Hostile frames on a live connection: every request is answered, the socket stays usable.

The frames are generated from a fixed seed (so a failure replays), and aimed at every route
with random payloads, on a connection that has a character selected so handlers run deep.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from channels.db import database_sync_to_async

from realtime.handlers.dispatch import ROUTES
from tests.conftest import WS_TIMEOUT
from tests.consumers.world import Player, play, seed_world

pytestmark = pytest.mark.django_db(transaction=True)

FIELD_HINTS = [
    "characterId", "x", "y", "z", "direction", "zone", "action", "targetId", "parameters",
    "status", "message", "userIds", "rooms", "token", "data",
]  # fmt: skip


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63, -(2**63) - 1, 2**80, rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e308, 3.0, rng.uniform(-600, 600)])
    if kind == 4:
        alphabet = string.printable + "\u00e9\u202e\x00\ud7ff"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
    if kind == 5:
        return str(rng.randint(0, 10**6))
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = [*FIELD_HINTS, "", "__proto__", "a" * 200]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def test_random_requests_are_all_answered_and_the_connection_survives(world: Any) -> None:
    rng = random.Random(20261126)
    comm = await play(world["alice"])
    events = [*sorted(ROUTES), "unknown:event", "", "character:", "auth"]
    for ack in range(1, 301):
        event = rng.choice(events)
        frame_text = json.dumps({"event": event, "data": random_json(rng), "ack": ack})
        await comm.send_to(text_data=frame_text)
        while True:
            frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
            if "ack" in frame:
                break
            assert frame.get("event") not in ("error", None), frame  # errors belong in the ack
        assert frame["ack"] == ack, frame
        body = frame["data"]
        assert isinstance(body["ok"], bool)
        if not body["ok"]:
            assert isinstance(body["error"]["code"], str) and body["error"]["message"]
            assert body["error"]["code"] != "INTERNAL_ERROR", (frame_text, frame)
    await comm.disconnect()
