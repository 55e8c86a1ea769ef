"""Real Socket.IO clients against real daphne and uvicorn processes (PROTOCOL.md §1.2, §2, §4, §8).

A small Node script (``sioclient/client.mjs``) runs ``socket.io-client`` 4.x with ``auth:
{token}`` on one of three transports: its default options (HTTP long-polling, then the upgrade
to WebSocket), polling only, or WebSocket only. It takes commands on stdin (emit, emit with ack,
binary emits, ask for the transport, exit) and prints one JSON line per observation (connect,
connect_error, disconnect, upgrade, every event with all its arguments, acks, reconnection).
The tests drive it, ``python-socketio``'s ``AsyncClient`` with its default transports, and
native ``/ws/game/`` clients from the harness, against the same servers.

The npm packages are installed once per session (``npm ci``) when ``sioclient/node_modules``
lacks the pinned ``socket.io-client``; ``node`` and ``npm`` must be on PATH.

Run: ``DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/e2e/test_socketio_e2e.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import (
    ServerPool,
    ServerProcess,
    connect_authenticated,
    create_user,
    is_int,
    obtain_tokens,
    recv_event,
    requires_redis_and_postgres,
    ws_connect,
)
from tests.e2e.players import VILLAGE, Player, create_player

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]

SIOCLIENT_DIR = Path(__file__).resolve().parent / "sioclient"
CLIENT_SCRIPT = SIOCLIENT_DIR / "client.mjs"
NPM_TIMEOUT_S = 300.0
GENEROUS_TIMEOUT_S = 5.0
EXIT_TIMEOUT_S = 15.0
# After a restart the client has to find the new process on its own: short reconnection delays
# keep the test quick (the defaults, 1 s growing to 5 s, would only make it slower).
FAST_RECONNECT = {"reconnectionDelay": 200, "reconnectionDelayMax": 1000}
RECONNECT_TIMEOUT_S = 20.0

# socket.io-client's transports: its default options, long-polling only, WebSocket only.
TRANSPORTS: dict[str, dict[str, Any]] = {
    "default": {},
    "polling": {"transports": ["polling"]},
    "websocket": {"transports": ["websocket"]},
}
# Where each ends up once connected (the default upgrades to WebSocket).
SETTLED = {"default": "websocket", "polling": "polling", "websocket": "websocket"}
SERVERS = ("daphne", "uvicorn")


# --- the Node client ---------------------------------------------------------------------------


def _installed_version() -> str | None:
    manifest = SIOCLIENT_DIR / "node_modules" / "socket.io-client" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _pinned_version() -> str:
    manifest = json.loads((SIOCLIENT_DIR / "package.json").read_text())
    return str(manifest["dependencies"]["socket.io-client"])


@pytest.fixture(scope="session")
def sioclient() -> str:
    """Path of ``node``, once ``sioclient/node_modules`` holds the pinned socket.io-client."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the Socket.IO e2e tests need Node.js 18+ with npm on PATH "
            f"(node: {node}, npm: {npm}); they run socket.io-client from {SIOCLIENT_DIR}",
            pytrace=False,
        )
    if _installed_version() != _pinned_version():
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=SIOCLIENT_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"npm ci in {SIOCLIENT_DIR} took over {NPM_TIMEOUT_S:.0f} s: {exc}")
        if result.returncode != 0:
            pytest.fail(
                f"npm ci in {SIOCLIENT_DIR} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        installed = _installed_version()
        assert installed == _pinned_version(), (installed, result.stdout, result.stderr)
    return node


Observation = dict[str, Any]


class SioClient:
    """One ``client.mjs`` process; ``seen`` is every line it printed, in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[Observation] = []
        self.stderr = bytearray()
        self.ended = False
        self._changed = asyncio.Event()
        self._acks = 0
        self._tasks = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._drain())]

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                if line.strip():
                    self.seen.append(json.loads(line))
                    self._changed.set()
        finally:
            self.ended = True
            self._changed.set()

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        async for chunk in self.proc.stderr:
            self.stderr.extend(chunk)

    def describe(self) -> str:
        lines = "\n".join(json.dumps(o) for o in self.seen)
        return f"observed:\n{lines}\nnode stderr:\n{self.stderr.decode(errors='replace')}"

    async def command(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait_for(
        self,
        what: str,
        predicate: Callable[[Observation], bool],
        *,
        start: int = 0,
        timeout: float = GENEROUS_TIMEOUT_S,
    ) -> tuple[int, Observation]:
        """(index, observation) of the first observation from ``start`` on that matches."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.seen):
                if predicate(self.seen[index]):
                    return index, self.seen[index]
                index += 1
            remaining = deadline - time.monotonic()
            if self.ended or remaining <= 0:
                state = "the client ended" if self.ended else f"nothing within {timeout} s"
                pytest.fail(f"{what}: {state}\n{self.describe()}", pytrace=False)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def observed(
        self, kind: str, *, start: int = 0, timeout: float = GENEROUS_TIMEOUT_S
    ) -> tuple[int, Observation]:
        return await self.wait_for(
            f"no {kind!r}", lambda o: o["type"] == kind, start=start, timeout=timeout
        )

    async def event(
        self,
        name: str,
        predicate: Callable[[list[Any]], bool] = lambda args: True,
        *,
        start: int = 0,
        timeout: float = GENEROUS_TIMEOUT_S,
    ) -> tuple[int, list[Any]]:
        """(index, args) of the first server event ``name`` whose args match ``predicate``."""
        index, found = await self.wait_for(
            f"no event {name!r}",
            lambda o: o["type"] == "event" and o["event"] == name and predicate(o["args"]),
            start=start,
            timeout=timeout,
        )
        return index, found["args"]

    async def emit_with_ack(
        self,
        event: str,
        data: Any,
        *,
        timeout: float = GENEROUS_TIMEOUT_S,
        buffers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``socket.emitWithAck(event, data)``: (index, the value the server acknowledged with).

        ``buffers`` {key: base64} puts binary values into ``data[key]`` (``""``: data itself).
        """
        self._acks += 1
        ack_id = f"ack-{self._acks}"
        extra = {} if buffers is None else {"buffers": buffers}
        await self.command(
            op="emit", event=event, data=data, id=ack_id, timeoutMs=int(timeout * 1000), **extra
        )
        index, answer = await self.wait_for(
            f"no answer to {event!r}",
            lambda o: o["type"] in ("ack", "ack_error") and o.get("id") == ack_id,
            timeout=timeout + 1.0,
        )
        assert answer["type"] == "ack", f"{answer}\n{self.describe()}"
        return index, answer["data"]

    async def transport(self) -> str:
        """``socket.io.engine.transport.name`` right now."""
        mark = len(self.seen)
        await self.command(op="transport")
        _, answer = await self.observed("transport", start=mark)
        return str(answer["name"])

    async def settled_on(self, name: str, timeout: float = GENEROUS_TIMEOUT_S) -> None:
        """Wait until the engine's transport is ``name`` (an upgrade may still be under way)."""
        deadline = time.monotonic() + timeout
        while (current := await self.transport()) != name:
            if time.monotonic() > deadline:
                pytest.fail(f"transport {current!r}, not {name!r}\n{self.describe()}")
            await asyncio.sleep(0.05)

    def types(self, start: int = 0, end: int | None = None) -> list[str]:
        return [o["type"] for o in self.seen[start:end]]

    def events(self, name: str, start: int = 0) -> list[list[Any]]:
        return [o["args"] for o in self.seen[start:] if o["type"] == "event" and o["event"] == name]

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.command(op="exit")
        try:
            await asyncio.wait_for(self.proc.wait(), GENEROUS_TIMEOUT_S)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, GENEROUS_TIMEOUT_S)


@contextlib.asynccontextmanager
async def sio_client(
    node: str, server: ServerProcess, token: str | None, transport: str = "default", **options: Any
) -> AsyncIterator[SioClient]:
    """A socket.io-client connecting to ``server`` with ``auth: {token}`` on ``transport`` (a key
    of ``TRANSPORTS``; socket.io-client's default options unless told otherwise)."""
    scenario = {
        "url": server.http_url,
        "token": token,
        "options": {**TRANSPORTS[transport], **options},
        "lifetimeMs": 60_000,
    }
    env = dict(os.environ)
    # The debug build that Node loads prints its traces when DEBUG names them.
    env.pop("DEBUG", None)
    if os.environ.get("AETURNIS_SIOCLIENT_DEBUG"):
        env["DEBUG"] = os.environ["AETURNIS_SIOCLIENT_DEBUG"]
    proc = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT_SCRIPT),
        json.dumps(scenario),
        cwd=SIOCLIENT_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    client = SioClient(proc)
    try:
        yield client
    finally:
        await client.close()


# --- raw Engine.IO HTTP ------------------------------------------------------------------------

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _engineio_request(method: str, url: str, body: bytes | None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "text/plain;charset=UTF-8")
    try:
        with _opener.open(request, timeout=GENEROUS_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


async def engineio_http(method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
    """(status, body text) of one Engine.IO HTTP request, as a polling client sends it."""
    return await asyncio.to_thread(_engineio_request, method, url, body)


# --- native clients ----------------------------------------------------------------------------


async def send(ws: ClientConnection, event: str, data: Any) -> None:
    await ws.send(json.dumps({"event": event, "data": data}))


@contextlib.asynccontextmanager
async def native_playing(
    server: ServerProcess, player: Player, token: str
) -> AsyncIterator[ClientConnection]:
    """A native ``/ws/game/`` connection of ``player`` with its character selected."""
    async with connect_authenticated(server, token) as (ws, initial):
        assert initial["userId"] == player.uid, initial
        await send(ws, "character:select", {"characterId": player.cid})
        selected = await recv_event(ws, "character:selected", GENEROUS_TIMEOUT_S)
        assert selected["data"]["character"]["id"] == player.cid, selected
        yield ws


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", SERVERS)
async def test_socketio_client_connects_with_a_token_and_gets_acks(
    server_pool: ServerPool, sioclient: str, kind: str, transport: str
) -> None:
    server = server_pool.get(kind)
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)

    async with sio_client(sioclient, server, token, transport) as client:
        _, connected = await client.observed("connect")
        await client.settled_on(SETTLED[transport])
        initial_at, (initial, *initial_rest) = await client.event("sync:initial")
        sent_after = int(time.time() * 1000)
        _, pong = await client.emit_with_ack("ping", {"probe": 1})
        received_before = int(time.time() * 1000)
        # Replies travel in order: once this ack is in, a `pong` event for either would be too.
        _, second = await client.emit_with_ack("ping", {"probe": 2})
        observed_while_open = client.types()

    # The default options start on polling and upgrade (often before the CONNECT answer is in);
    # the others stay on their one transport.
    upgrades = [o["transport"] for o in client.seen if o["type"] == "upgrade"]
    assert upgrades == (["websocket"] if transport == "default" else []), client.describe()
    if transport != "default":
        assert connected["transport"] == SETTLED[transport], client.describe()
    # sync:initial is the first event of the connection and names this user and socket.
    events_and_connects = [
        t for t in client.types()[: initial_at + 1] if t not in ("upgrade", "transport")
    ]
    assert events_and_connects == ["connect", "event"], client.describe()
    assert initial["userId"] == str(user.pk), initial
    assert initial["socketId"] == connected["id"], (initial, connected)
    assert initial_rest == [], initial_rest  # not a room event: no meta argument
    assert pong["ok"] is True and pong["probe"] == 1, pong
    assert set(pong) == {"ok", "probe", "serverTime"}, pong
    assert is_int(pong["serverTime"]), pong
    # Same host, same clock: the server answered between the two readings (1 s of slack).
    assert sent_after - 1000 <= pong["serverTime"] <= received_before + 1000, pong
    assert second["ok"] is True and second["probe"] == 2, second
    # A request with an ack gets its answer in the ack only (PROTOCOL.md §1.3).
    assert client.events("pong") == [], client.describe()
    assert "disconnect" not in observed_while_open, client.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", SERVERS)
async def test_socketio_client_receives_a_room_broadcast_from_a_native_client(
    server_pool: ServerPool, sioclient: str, kind: str, transport: str
) -> None:
    server = server_pool.get(kind)
    sio_player, native_player = await create_player(), await create_player()
    sio_token, _ = await obtain_tokens(server, sio_player.username)
    native_token, _ = await obtain_tokens(server, native_player.username)
    to_sio = f"native to socket.io {uuid.uuid4().hex[:8]}"
    to_native = f"socket.io to native {uuid.uuid4().hex[:8]}"

    async with (
        native_playing(server, native_player, native_token) as ws,
        sio_client(sioclient, server, sio_token, transport) as client,
    ):
        _, (initial, *_) = await client.event("sync:initial")
        assert initial["userId"] == sio_player.uid, initial
        _, selected = await client.emit_with_ack(
            "character:select", {"characterId": sio_player.cid}
        )
        # The native client sees the Socket.IO user's character arrive in its zone.
        online = await recv_event(ws, "character:online", GENEROUS_TIMEOUT_S)

        # native → Socket.IO
        await send(ws, "chat:message", {"channel": "zone", "message": to_sio})
        sent = await recv_event(ws, "chat:message_sent", GENEROUS_TIMEOUT_S)
        _, (heard, *heard_meta) = await client.event(
            "chat:message", lambda args: args[0].get("message") == to_sio
        )

        # Socket.IO → native
        mark = len(client.seen)
        _, own_ack = await client.emit_with_ack(
            "chat:message", {"channel": "zone", "message": to_native}
        )
        at_native = await recv_event(ws, "chat:message", GENEROUS_TIMEOUT_S)
        # The room excludes the sender: its own message does not come back to it. By the time
        # the native client has it and a later ping is answered, an echo would be in too.
        await client.emit_with_ack("ping", {})
        echoed = [
            args
            for args in client.events("chat:message", mark)
            if args[0].get("message") == to_native
        ]

    assert selected["ok"] is True, selected
    assert selected["character"]["id"] == sio_player.cid, selected
    assert selected["character"]["zone"] == VILLAGE, selected
    assert online["data"]["characterId"] == sio_player.cid, online
    assert online["data"]["userId"] == sio_player.uid, online
    assert online["room"] == f"zone:{VILLAGE}", online

    assert heard["userId"] == native_player.uid, heard
    assert heard["characterId"] == native_player.cid, heard
    assert heard["channel"] == "zone", heard
    assert heard["id"] == sent["data"]["id"], (heard, sent)
    # Room events carry {room, offset, epoch} as a second argument (PROTOCOL.md §8), and the
    # connection state recovery offset last: a string socket.io-client keeps (§1.2).
    assert len(heard_meta) == 2, heard_meta
    meta, recovery_offset = heard_meta
    assert isinstance(recovery_offset, str) and recovery_offset.isdigit(), heard_meta
    assert set(meta) == {"room", "offset", "epoch"}, meta
    assert isinstance(meta["epoch"], str) and meta["epoch"], meta
    assert meta["room"] == f"zone:{VILLAGE}", meta
    assert is_int(meta["offset"]) and meta["offset"] > online["offset"], (meta, online)

    assert own_ack["ok"] is True and own_ack["channel"] == "zone", own_ack
    assert at_native["data"]["message"] == to_native, at_native
    assert at_native["data"]["userId"] == sio_player.uid, at_native
    assert at_native["data"]["characterId"] == sio_player.cid, at_native
    assert at_native["data"]["id"] == own_ack["id"], (at_native, own_ack)
    assert at_native["room"] == f"zone:{VILLAGE}", at_native
    assert is_int(at_native["offset"]) and at_native["offset"] > meta["offset"], at_native
    assert echoed == [], client.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_socketio_bad_token_gets_connect_error(
    server_pool: ServerPool, sioclient: str, transport: str
) -> None:
    server = server_pool.get("daphne")

    async with sio_client(sioclient, server, "not-a-valid-token", transport) as client:
        _, refused = await client.observed("connect_error")

    assert refused["message"] == "Invalid token", refused
    assert refused["data"] == {"code": "TOKEN_INVALID"}, refused
    assert "connect" not in client.types(), client.describe()
    assert [o for o in client.seen if o["type"] == "event"] == [], client.describe()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socketio_client_reconnects_after_the_server_restarts(
    server_factory: Any, port_server_factory: Any, sioclient: str, transport: str
) -> None:
    (first,) = server_factory("daphne")
    user = await create_user()
    token, _ = await obtain_tokens(first, user.username)

    async with sio_client(sioclient, first, token, transport, **FAST_RECONNECT) as client:
        _, connected = await client.observed("connect")
        _, (initial, *_) = await client.event("sync:initial")
        mark = len(client.seen)

        first.send_signal(signal.SIGTERM)
        shutdown_at, (shutdown, *_) = await client.event("system:shutdown", start=mark)
        disconnect_at, disconnected = await client.observed("disconnect", start=mark)
        exit_status = await asyncio.to_thread(first.wait_exit, EXIT_TIMEOUT_S)
        assert exit_status is not None, f"{first.name} still running after SIGTERM"

        await port_server_factory("daphne", first.port)
        # Nothing else listens on that port now: the answer comes from the new process, over the
        # connection the client opened to it by itself (socket.io-client buffers the emit).
        answered_at, pong = await client.emit_with_ack(
            "ping", {"probe": "after restart"}, timeout=RECONNECT_TIMEOUT_S
        )
        reconnected_at = max(i for i in range(answered_at) if client.seen[i]["type"] == "connect")
        reconnected = client.seen[reconnected_at]
        initial_again_at, (initial_again, *_) = await client.event(
            "sync:initial", start=reconnected_at
        )

    assert is_int(shutdown["reconnectAfterMs"]) and shutdown["reconnectAfterMs"] >= 0, shutdown
    assert shutdown_at < disconnect_at, client.describe()
    # A closed transport, not a Socket.IO DISCONNECT ("io server disconnect" would mean the
    # client gives up), and the close says why (PROTOCOL.md §3): over WebSocket in its close
    # frame; over polling, whose close packet carries nothing, in system:shutdown before it.
    assert disconnected["reason"] == "transport close", disconnected
    if transport == "websocket":
        assert (disconnected["closeCode"], disconnected["closeReason"]) == (
            1012,
            "SERVER_RESTART",
        )

    # The client reconnected on its own: a successful attempt of the manager, then the socket
    # connected again, and the new server's sync:initial is the first event on it.
    assert disconnect_at < reconnected_at, client.describe()
    assert client.types(reconnected_at - 2, reconnected_at) == ["reconnect_attempt", "reconnect"]
    assert client.types(reconnected_at + 1, answered_at) == ["event"], client.describe()
    assert initial_again_at == reconnected_at + 1, client.describe()
    assert reconnected["id"] != connected["id"], (connected, reconnected)
    assert initial_again["userId"] == initial["userId"] == str(user.pk), initial_again
    assert initial_again["socketId"] == reconnected["id"], (initial_again, reconnected)
    assert pong["ok"] is True and pong["probe"] == "after restart", pong


# Regression: a connection opened while a process shuts down (after SIGTERM, before it exits)
# used to be accepted, authenticated and then cut with 1006 when daphne exited. It is now
# closed at once with 1012, so the client goes on reconnecting until it reaches a live process.
async def test_socketio_client_reconnecting_during_a_graceful_shutdown_is_not_dropped_silently(
    server_factory: Any, sioclient: str
) -> None:
    (server,) = server_factory("daphne")
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)

    # Reconnect 50 ms after the close: while the process still runs after its 1012 closes.
    options = {"reconnectionDelay": 50, "reconnectionDelayMax": 50, "randomizationFactor": 0}
    async with sio_client(sioclient, server, token, "websocket", **options) as client:
        await client.event("sync:initial")
        mark = len(client.seen)
        server.send_signal(signal.SIGTERM)
        await client.observed("disconnect", start=mark)
        if await asyncio.to_thread(server.wait_exit, EXIT_TIMEOUT_S) is None:
            # Not an AssertionError: only the assertions below are the expected failure.
            pytest.fail(f"{server.name} still running after SIGTERM", pytrace=False)
        # The port is closed now; once an attempt is refused, every earlier observation is in.
        await client.observed("reconnect_error", start=len(client.seen))

    # Every connection the server ends during its shutdown is told so: system:shutdown, then
    # close 1012 SERVER_RESTART (PROTOCOL.md §3) — never a bare drop (1006).
    last_connect = 0
    for index, observation in enumerate(client.seen):
        if observation["type"] == "connect":
            last_connect = index
        if observation["type"] == "disconnect":
            assert (observation["closeCode"], observation["closeReason"]) == (
                1012,
                "SERVER_RESTART",
            ), client.describe()
            told = [
                o for o in client.seen[last_connect:index] if o.get("event") == "system:shutdown"
            ]
            assert told, client.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", SERVERS)
async def test_socketio_binary_emits_are_validated_like_any_payload(
    server_pool: ServerPool, sioclient: str, kind: str, transport: str
) -> None:
    server = server_pool.get(kind)
    player = await create_player()
    token, _ = await obtain_tokens(server, player.username)
    binary = base64.b64encode(b"\x00\x01\x02binary").decode()

    async with sio_client(sioclient, server, token, transport) as client:
        await client.event("sync:initial")
        await client.settled_on(SETTLED[transport])
        await client.emit_with_ack("character:select", {"characterId": player.cid})
        mark = len(client.seen)
        _, refused = await client.emit_with_ack(
            "chat:message", {"channel": "zone", "message": None}, buffers={"message": binary}
        )
        _, whole = await client.emit_with_ack("ping", None, buffers={"": binary})
        _, pong = await client.emit_with_ack("ping", {"probe": "after binary"})
        observed = client.seen[mark:]

    # A well-formed binary packet is one request answered once: no BAD_FRAME, no extra error
    # per attachment, and the connection carries on.
    for answer, field in ((refused, "message"), (whole, "data")):
        assert answer["ok"] is False, answer
        assert answer["error"]["code"] == "INVALID_PAYLOAD", answer
        assert field in answer["error"]["fields"], answer
    assert pong["ok"] is True and pong["probe"] == "after binary", pong
    assert [o for o in observed if o["type"] in ("event", "disconnect")] == [], client.describe()


async def test_python_socketio_with_default_transports_upgrades_and_plays(
    server_pool: ServerPool,
) -> None:
    import socketio

    server = server_pool.get("uvicorn")
    sio_player, native_player = await create_player(), await create_player()
    sio_token, _ = await obtain_tokens(server, sio_player.username)
    native_token, _ = await obtain_tokens(server, native_player.username)
    heard: asyncio.Queue[list[Any]] = asyncio.Queue()
    initial: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    text = f"to python {uuid.uuid4().hex[:8]}"

    client = socketio.AsyncClient(reconnection=False)
    client.on("sync:initial", lambda *args: initial.set_result(args))

    # Room events come with {room, offset, epoch} and the recovery offset (README).
    def on_message(data: Any, meta: Any = None, offset: Any = None) -> None:
        heard.put_nowait([data, meta, offset])

    client.on("chat:message", on_message)
    async with native_playing(server, native_player, native_token) as ws:
        await client.connect(server.http_url, auth={"token": sio_token}, wait_timeout=5)
        try:
            transport, socket_id = client.transport(), client.get_sid()
            (state,) = await asyncio.wait_for(initial, GENEROUS_TIMEOUT_S)
            pong = await client.call("ping", {"probe": "py"}, timeout=GENEROUS_TIMEOUT_S)
            selected = await client.call(
                "character:select", {"characterId": sio_player.cid}, timeout=GENEROUS_TIMEOUT_S
            )
            await send(ws, "chat:message", {"channel": "zone", "message": text})
            message, meta, offset = await asyncio.wait_for(heard.get(), GENEROUS_TIMEOUT_S)
        finally:
            await client.disconnect()

    assert transport == "websocket"  # polling first, upgraded inside connect()
    assert state["userId"] == sio_player.uid and state["socketId"] == socket_id
    assert pong["ok"] is True and pong["probe"] == "py", pong
    assert selected["ok"] is True and selected["character"]["id"] == sio_player.cid, selected
    assert message["message"] == text and meta["room"] == f"zone:{VILLAGE}", (message, meta)
    assert isinstance(offset, str) and offset.isdigit(), offset


async def test_python_socketio_on_polling_only_takes_bursts_without_dropping(
    server_pool: ServerPool,
) -> None:
    """python-engineio drops a connection whose poll answer holds more than 16 packets; the
    server splits bursts over several GETs."""
    import socketio

    server = server_pool.get("daphne")
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)
    pongs: asyncio.Queue[Any] = asyncio.Queue()
    dropped: list[Any] = []

    client = socketio.AsyncClient(reconnection=False)
    client.on("pong", lambda data: pongs.put_nowait(data))
    client.on("disconnect", lambda *reason: dropped.append(reason))
    await client.connect(
        server.http_url, auth={"token": token}, transports=["polling"], wait_timeout=5
    )
    try:
        for n in range(40):
            await client.emit("ping", {"n": n})
        received = [
            (await asyncio.wait_for(pongs.get(), GENEROUS_TIMEOUT_S))["n"] for _ in range(40)
        ]
        transport = client.transport()
    finally:
        await client.disconnect()

    assert transport == "polling"
    assert received == list(range(40))
    assert dropped == [("client disconnect",)] or dropped == [], dropped


async def test_a_polling_request_reaching_the_wrong_process_is_refused_at_once(
    server_pool: ServerPool,
) -> None:
    home, other = server_pool.start_many(("daphne", 0), ("uvicorn", 0))
    status, opened = await engineio_http(
        "GET", f"{home.http_url}/socket.io/?EIO=4&transport=polling"
    )
    assert status == 200, opened
    sid = json.loads(opened[1:])["sid"]
    query = f"/socket.io/?EIO=4&transport=polling&sid={sid}"

    started = time.monotonic()
    for method, body in (("GET", None), ("POST", b"3")):
        status, answer = await engineio_http(method, f"{other.http_url}{query}", body)
        assert (status, json.loads(answer)) == (400, {"code": 1, "message": "Session ID unknown"})
    assert time.monotonic() - started < GENEROUS_TIMEOUT_S  # answered, never held
    with pytest.raises(Exception) as refused:  # the upgrade too: refused before 101
        async with ws_connect(other, path=f"/socket.io/?EIO=4&transport=websocket&sid={sid}") as ws:
            await ws.recv()
    assert "403" in str(refused.value) or "HTTP" in str(refused.value), refused.value
    # At home the session is alive.
    assert await engineio_http("POST", f"{home.http_url}{query}", b"3") == (200, "ok")


# --- connection state recovery (PROTOCOL.md §1.2) ---------------------------------------------


def _notify_user(user_id: int, event: str, data: Any) -> None:
    """A room event to ``user:<id>`` from this process, through Redis (as operators send)."""
    from realtime.fanout.broadcast import to_room_sync

    to_room_sync(f"user:{user_id}", event, data)


async def _say(ws: ClientConnection, text: str) -> None:
    await send(ws, "chat:message", {"channel": "zone", "message": text})
    await recv_event(ws, "chat:message_sent", GENEROUS_TIMEOUT_S)


def _said(observation: Observation) -> str | None:
    if observation["type"] == "event" and observation["event"] == "chat:message":
        return str(observation["args"][0]["message"])
    return None


@pytest.mark.parametrize(
    ("stop", "transport"),
    [("restart", "default"), ("kill", "websocket")],
    ids=["sigterm-default-transports", "sigkill-websocket"],
)
async def test_socketio_client_recovers_its_connection_on_another_process(
    server_factory: Any, port_server_factory: Any, sioclient: str, stop: str, transport: str
) -> None:
    """The client plays on A; A stops (SIGTERM: 1012; SIGKILL: the socket just breaks) while a
    player on C talks and an operator notifies; the client reconnects by itself to B, a new
    process where A was, and gets ``socket.recovered === true``, the missed events in the order
    they were published (before its ``connect``, as socket.io-client buffers them), each once,
    its character selected again, then live events."""
    first, other = server_factory("daphne", "uvicorn")
    sio_player, native_player = await create_player(), await create_player()
    sio_token, _ = await obtain_tokens(first, sio_player.username)
    native_token, _ = await obtain_tokens(other, native_player.username)
    tag = uuid.uuid4().hex[:8]
    before, missed, after = f"before {tag}", [f"missed 1 {tag}", f"missed 2 {tag}"], f"after {tag}"

    async with (
        native_playing(other, native_player, native_token) as ws,
        sio_client(sioclient, first, sio_token, transport, **FAST_RECONNECT) as client,
    ):
        _, connected = await client.observed("connect")
        await client.event("sync:initial")
        await client.settled_on(SETTLED[transport])
        _, selected = await client.emit_with_ack(
            "character:select", {"characterId": sio_player.cid}
        )
        assert selected["ok"] is True, selected
        await _say(ws, before)
        await client.event("chat:message", lambda args: args[0]["message"] == before)
        mark = len(client.seen)

        first.send_signal(signal.SIGTERM if stop == "restart" else signal.SIGKILL)
        disconnect_at, disconnected = await client.observed("disconnect", start=mark)
        assert await asyncio.to_thread(first.wait_exit, EXIT_TIMEOUT_S) is not None
        await _say(ws, missed[0])
        await asyncio.to_thread(_notify_user, sio_player.user_id, "quest:update", {"tag": tag})
        await _say(ws, missed[1])

        second = await port_server_factory("uvicorn", first.port)
        reconnected_at, reconnected = await client.wait_for(
            "no reconnection",
            lambda o: o["type"] == "connect",
            start=disconnect_at,
            timeout=RECONNECT_TIMEOUT_S,
        )
        initial_at, (initial, *_) = await client.event("sync:initial", start=reconnected_at)
        await _say(ws, after)
        await client.event("chat:message", lambda args: args[0]["message"] == after, start=mark)
        # It plays on without selecting again: the server restored its character.
        _, back = await client.emit_with_ack("chat:message", {"channel": "zone", "message": tag})
        heard_back = await recv_event(ws, "chat:message", GENEROUS_TIMEOUT_S)

    assert second.port == first.port
    assert connected["recovered"] is False and reconnected["recovered"] is True, client.describe()
    assert disconnected["reason"] == "transport close", disconnected
    # Between the drop and `connect`: exactly what was missed, in publishing order.
    replayed = [o for o in client.seen[disconnect_at:reconnected_at] if o["type"] == "event"]
    assert [o["event"] for o in replayed] == ["chat:message", "quest:update", "chat:message"], (
        client.describe()
    )
    assert [_said(o) for o in replayed if _said(o)] == missed
    assert replayed[1]["args"][0] == {"tag": tag}
    offsets = [int(o["args"][-1]) for o in replayed]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3, offsets
    # Each message once, over the whole life of the client.
    said = [_said(o) for o in client.seen if _said(o)]
    assert said == [before, *missed, after], client.describe()
    assert initial_at == reconnected_at + 1, client.describe()
    assert initial["socketId"] == reconnected["id"] != connected["id"]
    assert initial["character"]["id"] == sio_player.cid, initial
    assert back["ok"] is True, back
    assert heard_back["data"]["message"] == tag, heard_back


async def test_socketio_client_back_after_the_recovery_window_connects_anew(
    server_factory: Any, port_server_factory: Any, sioclient: str
) -> None:
    window = {"AETURNIS_SIO_RECOVERY_S": "2"}
    first, other = server_factory("daphne", "uvicorn", extra_env=window)
    sio_player, native_player = await create_player(), await create_player()
    sio_token, _ = await obtain_tokens(first, sio_player.username)
    native_token, _ = await obtain_tokens(other, native_player.username)
    missed = f"too long ago {uuid.uuid4().hex[:8]}"

    async with (
        native_playing(other, native_player, native_token) as ws,
        sio_client(sioclient, first, sio_token, "default", **FAST_RECONNECT) as client,
    ):
        await client.event("sync:initial")
        await client.emit_with_ack("character:select", {"characterId": sio_player.cid})
        await _say(ws, f"seen {missed}")
        await client.event("chat:message")
        mark = len(client.seen)
        first.send_signal(signal.SIGTERM)
        disconnect_at, _ = await client.observed("disconnect", start=mark)
        assert await asyncio.to_thread(first.wait_exit, EXIT_TIMEOUT_S) is not None
        await _say(ws, missed)
        await asyncio.sleep(3.0)  # past the window
        await port_server_factory("daphne", first.port, extra_env=window)
        reconnected_at, reconnected = await client.wait_for(
            "no reconnection",
            lambda o: o["type"] == "connect",
            start=disconnect_at,
            timeout=RECONNECT_TIMEOUT_S,
        )
        _, (initial, *_) = await client.event("sync:initial", start=reconnected_at)

    assert reconnected["recovered"] is False, client.describe()
    assert [_said(o) for o in client.seen[mark:] if _said(o)] == [], client.describe()
    assert initial["character"] is None, initial  # a new connection: select again, resume


async def test_python_socketio_with_default_transports_reconnects_after_a_restart(
    server_factory: Any, port_server_factory: Any
) -> None:
    """python-socketio ignores the pid (no recovery): it reconnects as a new connection, on
    polling then WebSocket, and its handlers take the room events' extra arguments."""
    import socketio

    first, other = server_factory("uvicorn", "daphne")
    sio_player, native_player = await create_player(), await create_player()
    sio_token, _ = await obtain_tokens(first, sio_player.username)
    native_token, _ = await obtain_tokens(other, native_player.username)
    initials: asyncio.Queue[Any] = asyncio.Queue()
    heard: asyncio.Queue[tuple[Any, Any, Any]] = asyncio.Queue()
    text = f"to python after a restart {uuid.uuid4().hex[:8]}"

    def on_message(data: Any, meta: Any = None, offset: Any = None) -> None:
        heard.put_nowait((data, meta, offset))

    # Attempts every 2 s: the first comes after the stopping process has exited. An attempt
    # that reaches a process while it shuts down may end python-socketio's reconnection task
    # for good (aiohttp's RuntimeError "Connection closed." is not one it retries on).
    client = socketio.AsyncClient(
        reconnection_delay=2, reconnection_delay_max=2, randomization_factor=0
    )
    client.on("sync:initial", lambda data: initials.put_nowait(data))
    client.on("chat:message", on_message)
    async with native_playing(other, native_player, native_token) as ws:
        await client.connect(first.http_url, auth={"token": sio_token}, wait_timeout=5)
        try:
            initial = await asyncio.wait_for(initials.get(), GENEROUS_TIMEOUT_S)
            await client.call(
                "character:select", {"characterId": sio_player.cid}, timeout=GENEROUS_TIMEOUT_S
            )
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait_exit, EXIT_TIMEOUT_S) is not None
            await port_server_factory("uvicorn", first.port)
            again = await asyncio.wait_for(initials.get(), RECONNECT_TIMEOUT_S)
            selected = await client.call(
                "character:select", {"characterId": sio_player.cid}, timeout=GENEROUS_TIMEOUT_S
            )
            await _say(ws, text)
            message, meta, offset = await asyncio.wait_for(heard.get(), GENEROUS_TIMEOUT_S)
            transport = client.transport()
        finally:
            await client.disconnect()

    assert again["socketId"] != initial["socketId"] and again["character"] is None, again
    assert selected["ok"] is True, selected
    assert transport == "websocket"
    assert message["message"] == text and meta["room"] == f"zone:{VILLAGE}", (message, meta)
    assert isinstance(offset, str) and offset.isdigit(), offset


async def test_python_socketio_handles_events_replayed_before_the_connect_answer_in_order(
    server_pool: ServerPool,
) -> None:
    """The server replays missed events before its CONNECT answer (as the reference server
    does; socket.io-client buffers them until ``connect``). python-socketio never asks for a
    recovery by itself, but a client that passes ``{pid, offset}`` in its auth gets its
    handlers called for them in order, before its ``connect`` handler."""
    import socketio

    server = server_pool.get("daphne")
    user = await create_user()
    token, _ = await obtain_tokens(server, user.username)
    # A raw Socket.IO connection: its pid, one room event's recovery offset, then a drop.
    async with ws_connect(server, path="/socket.io/?EIO=4&transport=websocket") as raw:
        assert str(await raw.recv()).startswith("0{")
        await raw.send("40" + json.dumps({"token": token}))
        answer = str(await raw.recv())
        pid = json.loads(answer[2:])["pid"]
        await asyncio.to_thread(_notify_user, user.pk, "quest:update", {"step": 0})
        while not (frame := str(await raw.recv())).startswith('42["quest:update"'):
            pass
        offset = json.loads(frame[2:])[-1]
    for step in (1, 2):
        await asyncio.to_thread(_notify_user, user.pk, "quest:update", {"step": step})

    seen: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("connect", lambda: seen.append("connect"))
    client.on("sync:initial", lambda data: seen.append("sync:initial"))
    client.on("quest:update", lambda data, meta=None, offset=None: seen.append(data["step"]))
    await client.connect(
        server.http_url, auth={"token": token, "pid": pid, "offset": offset}, wait_timeout=5
    )
    try:
        deadline = time.monotonic() + GENEROUS_TIMEOUT_S
        while "sync:initial" not in seen and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await client.disconnect()

    assert seen == [1, 2, "connect", "sync:initial"], seen
