"""The world across server processes (PROTOCOL.md §4, §5.2, §5.5, §6).

Two real server processes share Redis and PostgreSQL: a move on one reaches its zone on the
other, presence is one view of every process, a killed process leaves no ghosts, rate limits
are shared and positions written behind survive a clean shutdown.

Every test plays its own users and characters (unique names, at (0, 0, 0)), so it does not
depend on the demo characters, which other tests may move.

Run: ``DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/e2e``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import (
    RELAXED_IP_LIMITS,
    ServerPool,
    ServerProcess,
    connect_authenticated,
    create_user,
    expect_close,
    is_int,
    obtain_tokens,
    recv_event,
    recv_json,
    requires_redis_and_postgres,
)
from tests.e2e.players import Player, create_player

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]

VILLAGE = "starting_village"
MEADOW = "meadow_path"
GENEROUS_TIMEOUT_S = 5.0
# How long a client is watched to show that something does NOT arrive. Cross-process fan-out
# on loopback takes milliseconds; a second is far more than a delivered event would need.
QUIET_S = 1.0
EXIT_TIMEOUT_S = 15.0
# Default MAX_SPEED is 10 units/s, measured from the selection on the server's clock: a move of
# about 2.2 units at least 0.6 s after the selection is well within it.
SETTLE_AFTER_SELECT_S = 0.6


# --- players -----------------------------------------------------------------------------------


async def character_row(character_id: int) -> dict[str, Any]:
    """The stored zone and position of a character, read from the database now."""
    from channels.db import database_sync_to_async

    def read() -> dict[str, Any]:
        from characters.models import Character

        return dict(
            Character.objects.filter(pk=character_id)
            .values("zone__key", "pos_x", "pos_y", "pos_z", "direction")
            .get()
        )

    row: dict[str, Any] = await database_sync_to_async(read)()
    return row


# --- client helpers -----------------------------------------------------------------------------


async def send(ws: ClientConnection, event: str, data: Any, ack: int | None = None) -> None:
    frame: dict[str, Any] = {"event": event, "data": data}
    if ack is not None:
        frame["ack"] = ack
    await ws.send(json.dumps(frame))


async def select(ws: ClientConnection, player: Player) -> dict[str, Any]:
    """``character:select`` the player's character; its ``Character`` from the reply."""
    await send(ws, "character:select", {"characterId": player.cid})
    selected = await recv_event(ws, "character:selected", GENEROUS_TIMEOUT_S)
    character: dict[str, Any] = selected["data"]["character"]
    assert character["id"] == player.cid, selected
    return character


@contextlib.asynccontextmanager
async def playing(
    server: ServerProcess, player: Player, token: str
) -> AsyncIterator[ClientConnection]:
    """A connection of ``player`` on ``server`` with the player's character selected."""
    async with connect_authenticated(server, token) as (ws, initial):
        assert initial["userId"] == player.uid, initial
        await select(ws, player)
        yield ws


async def frames_within(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives within ``seconds`` (already buffered ones included)."""
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await ws.recv()))
    return frames


async def presence_of(ws: ClientConnection, player: Player) -> dict[str, Any]:
    """``presence:get`` for one user; that user's entry of ``presence:state``."""
    await send(ws, "presence:get", {"userIds": [player.uid]})
    state = await recv_event(ws, "presence:state", GENEROUS_TIMEOUT_S)
    users = state["data"]["users"]
    assert set(users) == {player.uid}, state
    user: dict[str, Any] = users[player.uid]
    return user


async def ping(ws: ClientConnection, n: int) -> dict[str, Any]:
    """Send ``ping`` ``{n}`` without an ack; the next frame (``pong`` or ``error``)."""
    await send(ws, "ping", {"n": n})
    return await recv_json(ws)


def assert_offline_event(frame: dict[str, Any], player: Player) -> None:
    data = frame["data"]
    assert data["characterId"] == player.cid, frame
    assert data["userId"] == player.uid, frame
    assert is_int(data["timestamp"]) and data["timestamp"] > 0, frame
    assert frame["room"] == f"zone:{VILLAGE}", frame
    assert is_int(frame["offset"]) and frame["offset"] > 0, frame


# --- tests ------------------------------------------------------------------------------------


async def test_a_move_on_one_process_reaches_the_same_zone_on_the_other_and_not_other_zones(
    server_pool: ServerPool,
) -> None:
    first, second = server_pool.start_many(("daphne", 0), ("daphne", 1))
    mover, watcher, elsewhere = (
        await create_player(VILLAGE),
        await create_player(VILLAGE),
        await create_player(MEADOW),
    )
    token_mover, _ = await obtain_tokens(first, mover.username)
    token_watcher, _ = await obtain_tokens(second, watcher.username)
    token_elsewhere, _ = await obtain_tokens(second, elsewhere.username)

    async with (
        playing(second, watcher, token_watcher) as ws_watcher,
        playing(second, elsewhere, token_elsewhere) as ws_elsewhere,
        playing(first, mover, token_mover) as ws_mover,
    ):
        # The watcher, on the other process, sees the mover arrive in the zone.
        online = await recv_event(ws_watcher, "character:online", GENEROUS_TIMEOUT_S)
        assert online["data"]["characterId"] == mover.cid, online

        await asyncio.sleep(SETTLE_AFTER_SELECT_S)
        await send(ws_mover, "character:move", {"x": 2.0, "y": 1.0})
        moved, at_mover, at_elsewhere = await asyncio.gather(
            recv_event(ws_watcher, "character:moved", GENEROUS_TIMEOUT_S),
            frames_within(ws_mover, QUIET_S),
            frames_within(ws_elsewhere, QUIET_S),
        )

        # The client in the other zone is alive: its silence means it was not sent anything.
        await send(ws_elsewhere, "ping", {"n": 1})
        pong = await recv_json(ws_elsewhere)
        assert pong["event"] == "pong" and pong["data"]["n"] == 1, pong

    data = moved["data"]
    assert data["characterId"] == mover.cid, moved
    assert data["position"] == {"x": 2.0, "y": 1.0, "z": 0.0, "direction": 0.0}, moved
    assert is_int(data["timestamp"]) and data["timestamp"] > 0, moved
    assert moved["room"] == f"zone:{VILLAGE}", moved
    assert is_int(moved["offset"]) and moved["offset"] > online["offset"], (online, moved)
    # Accepted moves get no reply, and the zone broadcast excludes the sender.
    assert at_mover == [], at_mover
    # Neither the mover's arrival nor its move reached another zone.
    assert at_elsewhere == [], at_elsewhere


async def test_presence_of_a_user_with_connections_on_both_processes(
    server_pool: ServerPool,
) -> None:
    first, second = server_pool.start_many(("daphne", 0), ("daphne", 1))
    player, observer = await create_player(), await create_player()
    token_player, _ = await obtain_tokens(first, player.username)
    token_observer, _ = await obtain_tokens(first, observer.username)

    async with (
        playing(first, observer, token_observer) as ws_observer,
        # The observer's second connection asks from the other process (no character needed).
        connect_authenticated(second, token_observer) as (ws_observer_2, _),
        playing(first, player, token_player) as ws_player_1,
        playing(second, player, token_player) as ws_player_2,
    ):
        online = await recv_event(ws_observer, "character:online", GENEROUS_TIMEOUT_S)
        assert online["data"]["characterId"] == player.cid, online
        for ws in (ws_observer, ws_observer_2):
            state = await presence_of(ws, player)
            assert state["status"] == "online", state
            assert state["characterId"] == player.cid, state
            assert state["zone"] == VILLAGE, state

        # One of two connections ends: the character is still in the world.
        await ws_player_1.close()
        after_first_close = await frames_within(ws_observer, QUIET_S)
        offline_events = [f for f in after_first_close if f.get("event") == "character:offline"]
        assert offline_events == [], after_first_close
        for ws in (ws_observer, ws_observer_2):
            state = await presence_of(ws, player)
            assert state["status"] == "online", state
            assert state["characterId"] == player.cid, state

        # The last connection ends: the zone hears it, and presence agrees on both processes.
        await ws_player_2.close()
        offline = await recv_event(ws_observer, "character:offline", GENEROUS_TIMEOUT_S)
        assert_offline_event(offline, player)
        for ws in (ws_observer, ws_observer_2):
            state = await presence_of(ws, player)
            assert state["status"] == "offline", state


async def test_sigkill_of_a_process_converges_within_the_ttl(server_factory: Any) -> None:
    ttl_s = 2.0
    first, second = server_factory(
        "daphne",
        "daphne",
        extra_env={"AETURNIS_PRESENCE_REFRESH_S": "0.5", "AETURNIS_PRESENCE_TTL_S": str(ttl_s)},
    )
    victim, observer = await create_player(), await create_player()
    token_victim, _ = await obtain_tokens(second, victim.username)
    token_observer, _ = await obtain_tokens(first, observer.username)

    async with (
        playing(first, observer, token_observer) as ws_observer,
        playing(second, victim, token_victim),
    ):
        online = await recv_event(ws_observer, "character:online", GENEROUS_TIMEOUT_S)
        assert online["data"]["characterId"] == victim.cid, online
        before = await presence_of(ws_observer, victim)
        assert before["status"] == "online", before

        second.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        # No disconnect handler runs in a killed process: only the expiry can end its entries.
        offline = await recv_event(ws_observer, "character:offline", ttl_s + 3.0)
        converged_after = time.monotonic() - killed_at
        after = await presence_of(ws_observer, victim)

    assert_offline_event(offline, victim)
    assert converged_after <= ttl_s + 3.0, converged_after
    assert after["status"] == "offline", after
    exit_status = await asyncio.to_thread(second.wait_exit, EXIT_TIMEOUT_S)
    assert exit_status == -signal.SIGKILL, exit_status


async def test_a_rate_limit_is_shared_across_processes(server_factory: Any) -> None:
    limits = {**json.loads(RELAXED_IP_LIMITS), "ping": "3/60"}
    first, second = server_factory(
        "daphne", "daphne", extra_env={"AETURNIS_RATE_LIMITS": json.dumps(limits)}
    )
    user = await create_user()
    token_1, _ = await obtain_tokens(first, user.username)
    token_2, _ = await obtain_tokens(second, user.username)

    async with (
        connect_authenticated(first, token_1) as (ws_1, _),
        connect_authenticated(second, token_2) as (ws_2, _),
    ):
        first_ping_at = time.time()
        answers = [await ping(ws_1, 1), await ping(ws_1, 2), await ping(ws_2, 3)]
        refusals = [await ping(ws_1, 4), await ping(ws_2, 5)]
        elapsed = time.time() - first_ping_at

    for n, answer in enumerate(answers, start=1):
        assert answer["event"] == "pong" and answer["data"]["n"] == n, answer
    for refusal in refusals:
        assert refusal["event"] == "error", refusal
        data = refusal["data"]
        assert data["code"] == "RATE_LIMITED", refusal
        assert data["type"] == "RATE_LIMIT_EXCEEDED", refusal
        assert data["event"] == "ping", refusal
        assert data["message"] == "Rate limit exceeded for ping", refusal
        retry_after = data["retryAfter"]
        assert is_int(retry_after) and 1 <= retry_after <= 60, refusal
        # The oldest ping of the window was sent at most ``elapsed`` seconds ago.
        assert retry_after >= math.floor(60 - elapsed) - 1, (refusal, elapsed)


async def test_positions_survive_a_clean_shutdown(server_factory: Any) -> None:
    (server,) = server_factory(
        "daphne",
        extra_env={"AETURNIS_MAX_SPEED": "1000", "AETURNIS_POSITION_FLUSH_S": "600"},
    )
    player = await create_player()
    token, _ = await obtain_tokens(server, player.username)
    target = {"x": 30.5, "y": -20.25, "z": 4.0, "direction": 90.0}

    async with playing(server, player, token) as ws:
        await asyncio.sleep(0.3)  # ~37 units in 0.3 s is far below 1000 units/s
        await send(ws, "character:move", target, ack=1)
        accepted = await recv_json(ws)
        assert accepted == {"ack": 1, "data": {"ok": True}}, accepted
        # Premise: nothing has written the move yet (the periodic write is 600 s away).
        before = await character_row(player.character_id)
        assert (before["pos_x"], before["pos_y"], before["pos_z"]) == (0, 0, 0), before

        server.send_signal(signal.SIGTERM)
        await recv_event(ws, "system:shutdown", GENEROUS_TIMEOUT_S)
        closed = await expect_close(ws, GENEROUS_TIMEOUT_S)
        assert (closed.code, closed.reason) == (1012, "SERVER_RESTART"), closed

    exit_status = await asyncio.to_thread(server.wait_exit, EXIT_TIMEOUT_S)
    assert exit_status is not None, f"{server.name} still running {EXIT_TIMEOUT_S} s after SIGTERM"
    row = await character_row(player.character_id)
    assert row == {
        "zone__key": VILLAGE,
        "pos_x": target["x"],
        "pos_y": target["y"],
        "pos_z": target["z"],
        "direction": target["direction"],
    }, row
