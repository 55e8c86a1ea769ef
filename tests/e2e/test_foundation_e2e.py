"""Foundation behaviour against real server processes, PostgreSQL and Redis (PROTOCOL.md §1.1-§3).

Run: ``DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import (
    FRAME_TIMEOUT_S,
    STOP_GRACE_S,
    ServerPool,
    connect_authenticated,
    create_user,
    expect_close,
    is_int,
    logout,
    obtain_tokens,
    recv_event,
    recv_json,
    requires_postgres,
    requires_redis_and_postgres,
    run_manage,
    ws_connect,
)

pytestmark = [pytest.mark.e2e, requires_postgres]

SERVER_KINDS = ["daphne", "uvicorn"]
MAX_FRAME_BYTES = 64 * 1024
# Revocation must reach other processes within 1 s (PROTOCOL.md §2); tests do not time it,
# they only refuse to wait forever.
GENEROUS_TIMEOUT_S = 5.0
EXIT_TIMEOUT_S = 15.0


def ping_frame_of_size(size: int, ack: int) -> str:
    """A valid ``ping`` request whose UTF-8 encoding is exactly ``size`` bytes."""
    empty = json.dumps({"event": "ping", "data": {"pad": ""}, "ack": ack}, separators=(",", ":"))
    frame = json.dumps(
        {"event": "ping", "data": {"pad": "x" * (size - len(empty))}, "ack": ack},
        separators=(",", ":"),
    )
    assert len(frame.encode()) == size
    return frame


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@requires_redis_and_postgres
async def test_announce_command_reaches_clients_on_every_process_with_one_offset(
    server_pool: ServerPool,
) -> None:
    server_a, server_b = server_pool.start_many(("daphne", 0), ("daphne", 1))
    user_a, user_b = await create_user(), await create_user()
    token_a, _ = await obtain_tokens(server_a, user_a.username)
    token_b, _ = await obtain_tokens(server_b, user_b.username)

    async with (
        connect_authenticated(server_a, token_a) as (ws_a, initial_a),
        connect_authenticated(server_b, token_b) as (ws_b, initial_b),
    ):
        assert "global:events" in initial_a["rooms"]
        assert "global:events" in initial_b["rooms"]

        result = await run_manage("announce", "hello", "--priority", "high")
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"

        got_a, got_b = await asyncio.gather(
            recv_event(ws_a, "system:announcement", GENEROUS_TIMEOUT_S),
            recv_event(ws_b, "system:announcement", GENEROUS_TIMEOUT_S),
        )

    for frame in (got_a, got_b):
        data = frame["data"]
        assert data["message"] == "hello"
        assert data["priority"] == "high"
        assert data["type"] == "announcement"
        assert is_int(data["timestamp"]) and data["timestamp"] > 0
        assert frame["room"] == "global:events"
        assert is_int(frame["offset"]) and frame["offset"] > 0
    assert got_a["offset"] == got_b["offset"]
    assert got_a["data"] == got_b["data"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_sigterm_sends_system_shutdown_then_closes_1012_server_restart_and_exits(
    server_factory: Any, kind: str
) -> None:
    (server,) = server_factory(kind)
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)

    async with connect_authenticated(server, token) as (ws, _initial):
        server.send_signal(signal.SIGTERM)

        shutdown = await recv_event(ws, "system:shutdown", GENEROUS_TIMEOUT_S)
        closed = await expect_close(ws, GENEROUS_TIMEOUT_S)

    reconnect_after = shutdown["data"]["reconnectAfterMs"]
    assert is_int(reconnect_after) and reconnect_after >= 0, shutdown
    assert (closed.code, closed.reason) == (1012, "SERVER_RESTART"), closed
    exit_status = await asyncio.to_thread(server.wait_exit, EXIT_TIMEOUT_S)
    assert exit_status is not None, f"{server.name} still running {EXIT_TIMEOUT_S} s after SIGTERM"


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@requires_redis_and_postgres
async def test_logout_on_one_process_closes_sockets_using_that_token_on_another(
    server_pool: ServerPool,
) -> None:
    server_a, server_b = server_pool.start_many(("daphne", 0), ("daphne", 1))
    user = await create_user()
    access, refresh = await obtain_tokens(server_a, user.username)
    other_access, _ = await obtain_tokens(server_a, user.username)

    async with (
        connect_authenticated(server_b, access) as (ws, _),
        connect_authenticated(server_b, other_access) as (other_ws, _),
    ):
        status, body = await logout(server_a, access, refresh)
        assert status == 205, (status, body)

        expired = await recv_event(ws, "auth:expired", GENEROUS_TIMEOUT_S)
        closed = await expect_close(ws, GENEROUS_TIMEOUT_S)
        assert expired["data"] == {"code": "TOKEN_REVOKED"}
        assert (closed.code, closed.reason) == (4001, "TOKEN_REVOKED"), closed

        # Only that token is revoked: the user's other session lives on.
        await other_ws.send(json.dumps({"event": "ping", "data": {"n": 1}, "ack": 1}))
        reply = await recv_json(other_ws)
        assert reply["ack"] == 1 and reply["data"]["ok"] is True, reply

    for server in (server_b, server_a):
        async with ws_connect(server, token=access) as again:
            refused = await recv_json(again)
            closed_again = await expect_close(again)
        assert refused == {
            "event": "connect_error",
            "data": {"code": "TOKEN_REVOKED", "message": "Token has been revoked"},
        }, (server.name, refused)
        assert (closed_again.code, closed_again.reason) == (4001, "TOKEN_REVOKED"), server.name


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_frame_over_64_kib_closes_1009_and_one_of_64_kib_is_answered(
    server_pool: ServerPool, kind: str
) -> None:
    server = server_pool.get(kind)
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)

    # No compression: the frame on the wire is the message the server measures.
    async with connect_authenticated(server, token, compression=None) as (ws, _):
        await ws.send(ping_frame_of_size(MAX_FRAME_BYTES, ack=1))
        reply = await recv_json(ws)
        assert reply["ack"] == 1 and reply["data"]["ok"] is True, str(reply)[:200]

        await ws.send(ping_frame_of_size(MAX_FRAME_BYTES + 1, ack=2))
        closed = await expect_close(ws, GENEROUS_TIMEOUT_S)

    assert closed.code == 1009, closed
    assert closed.frames == [], closed


@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_bad_token_is_answered_with_connect_error_token_invalid_then_close_4001(
    server_pool: ServerPool, kind: str
) -> None:
    server = server_pool.get(kind)

    # The handshake succeeds (an HTTP 403 would raise here): the refusal is in-band.
    async with ws_connect(server, token="not-a-jwt") as ws:
        refused = await recv_json(ws, FRAME_TIMEOUT_S)
        closed = await expect_close(ws)

    assert refused == {
        "event": "connect_error",
        "data": {"code": "TOKEN_INVALID", "message": "Invalid token"},
    }
    assert (closed.code, closed.reason) == (4001, "TOKEN_INVALID"), closed
    assert closed.frames == []


@pytest.mark.django_db(transaction=True)
async def test_uvicorn_writes_one_info_line_per_websocket_not_websockets_repeat_of_it(
    server_factory: Any,
) -> None:
    """uvicorn writes its own line for every WebSocket, accepted or refused; websockets'
    "connection open" / "connection rejected" repeated it (without the address) at ~10 µs of
    CPU each, and are left out by the settings' LOGGING."""
    (server,) = server_factory(
        "uvicorn", extra_env={"AETURNIS_ALLOWED_ORIGINS": "https://game.example"}
    )
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)

    async with connect_authenticated(server, token):
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(server, token=token, origin="https://elsewhere.example"):
            pass
    assert refused.value.response.status_code == 403

    server.stop()
    assert server.wait_exit(STOP_GRACE_S) is not None
    lines = server.log_text().splitlines()
    uvicorns = [line for line in lines if '"WebSocket /ws/game/' in line]
    assert [line.rsplit('" ', 1)[-1] for line in uvicorns] == ["[accepted]", "403"], lines
    assert not [line for line in lines if "connection open" in line or "rejected" in line]
