"""End-to-end harness: real server processes on loopback, real PostgreSQL and Redis, real clients.

Servers are started as subprocesses (``daphne`` or ``uvicorn``) against the pytest-django test
database, so rows a ``@pytest.mark.django_db(transaction=True)`` test commits are visible to
them. Every process of a test session (the test process, the servers, ``manage.py`` commands)
shares one Redis key prefix, unique to the session, so concurrent runs never collide.

What a test gets:

- ``server_pool`` (module scope): ``pool.get("daphne", 0)`` / ``pool.start_many(...)`` start a
  server lazily and keep it for the module; for tests that do not stop or break it.
- ``server_factory`` (function scope): ``start_servers(...)`` for processes the test owns
  (signals, restarts); they are torn down after the test.
- ``port_server_factory`` (function scope): ``await start(kind, port, extra_env=...)`` starts a
  process on a given port, e.g. where a stopped one was, to restart a server in place.
- async helpers: ``create_user``, ``obtain_tokens``, ``logout``, ``ws_connect``, ``recv_json``,
  ``recv_event``, ``expect_close``, ``connect_authenticated``, ``run_manage``.

On a failing test the logs of every server process that was alive during it are attached to
the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent

E2E_PASSWORD = "e2e-password-1"
START_TIMEOUT_S = 40.0  # 2 cores, Django start-up and a parallel start of several processes
STOP_GRACE_S = 8.0  # graceful shutdown flushes for up to ~3.3 s before the server stops
FRAME_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 200

# Clients of every e2e test come from 127.0.0.1, so the per-IP connect, auth-failure and
# failed-login limits (PROTOCOL.md §2, §6) would couple unrelated tests sharing a server. Tests
# of those limits start their own server with ``extra_env`` restoring the defaults.
RELAXED_IP_LIMITS = json.dumps(
    {"connect": "10000/60", "auth_failures": "10000/900", "login_failures_ip": "10000/300"}
)

HAVE_REDIS = bool(os.environ.get("REDIS_URL"))
HAVE_POSTGRES = bool(os.environ.get("DATABASE_URL"))

requires_postgres = pytest.mark.skipif(
    not HAVE_POSTGRES,
    reason="e2e: DATABASE_URL (PostgreSQL) is not set; server subprocesses cannot share "
    "pytest-django's in-memory SQLite test database",
)
requires_redis_and_postgres = pytest.mark.skipif(
    not (HAVE_REDIS and HAVE_POSTGRES),
    reason="e2e multi-process: needs REDIS_URL and DATABASE_URL (PostgreSQL); CI sets both",
)


# --- one Redis key prefix per test session ---------------------------------------------------


def _session_prefix() -> tuple[str, bool]:
    prefix = os.environ.get("AETURNIS_REDIS_PREFIX")
    if prefix:
        return prefix, False
    prefix = f"e2e-{uuid.uuid4().hex[:12]}"
    os.environ["AETURNIS_REDIS_PREFIX"] = prefix
    return prefix, True


# Set at import time so that every subprocess inherits it.
REDIS_PREFIX, PREFIX_GENERATED = _session_prefix()


def pytest_configure(config: pytest.Config) -> None:
    """Make this process's settings use the session prefix too.

    pytest-django loads the settings before this conftest is imported (its
    ``pytest_load_initial_conftests`` runs before pytest's own), so the environment variable
    alone comes too late for the test process: align the already-loaded settings.
    """
    from django.conf import settings

    if not settings.configured or settings.AETURNIS_REDIS_PREFIX == REDIS_PREFIX:
        return
    settings.AETURNIS_REDIS_PREFIX = REDIS_PREFIX
    layer_config = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG")
    if isinstance(layer_config, dict) and "prefix" in layer_config:
        layer_config["prefix"] = f"{REDIS_PREFIX}:layer:"


@pytest.fixture(scope="session", autouse=True)
def _e2e_redis_keys_removed() -> Iterator[None]:
    """Leave nothing behind in Redis under a prefix this session invented."""
    yield
    if not (HAVE_REDIS and PREFIX_GENERATED):
        return
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        for name in client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000):
            client.delete(name)
    finally:
        client.close()


# --- server processes ------------------------------------------------------------------------


_used_ports: set[int] = set()


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free loopback port")


def server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        exe = shutil.which("daphne", path=str(BIN_DIR)) or "daphne"
        return [exe, "-b", "127.0.0.1", "-p", str(port), "aeturnis.asgi:application"]
    if kind == "uvicorn":
        exe = shutil.which("uvicorn", path=str(BIN_DIR)) or "uvicorn"
        return [
            exe, "aeturnis.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--ws", "realtime.transport.uvicorn:WebSocketProtocol",
            "--ws-per-message-deflate", "false", "--lifespan", "off",
            "--timeout-graceful-shutdown", "10",
        ]  # fmt: skip
    raise ValueError(f"unknown server kind {kind!r}")


def server_database_url() -> str:
    """``DATABASE_URL`` of this session, pointing at pytest-django's test database.

    Call only after the test database exists (``django_db_setup``).
    """
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "test_name"]
    name = quote(str(connection.settings_dict["NAME"]))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", urlencode(query), ""))


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for servers and ``manage.py`` commands: same DB, Redis and prefix."""
    from django.conf import settings

    env = dict(os.environ)
    # tests/conftest.py sets this for in-process tests; real servers must handle SIGTERM.
    env.pop("AETURNIS_NO_SIGNAL_HANDLERS", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "aeturnis.settings",
            "AETURNIS_REDIS_PREFIX": REDIS_PREFIX,
            "DEBUG": "1",
            "SECRET_KEY": str(settings.SECRET_KEY),
            "AETURNIS_RATE_LIMITS": RELAXED_IP_LIMITS,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    if HAVE_POSTGRES:
        env["DATABASE_URL"] = server_database_url()
    if HAVE_REDIS:
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    kind: str
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    stopped_at: float | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def send_signal(self, signum: int) -> None:
        if self.running():
            self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or None if the process is still running after ``timeout``."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.stopped_at = self.stopped_at or time.monotonic()
        return code

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``STOP_GRACE_S``."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(STOP_GRACE_S) is None:
                self.proc.kill()
                self.proc.wait(timeout=STOP_GRACE_S)
        self.proc.wait()
        self.stopped_at = self.stopped_at or time.monotonic()


ALL_SERVERS: list[ServerProcess] = []


def _healthy(server: ServerProcess) -> bool:
    try:
        status, _ = http_request("GET", f"{server.http_url}/healthz", timeout=2.0)
    except OSError:
        return False
    return status == 200


def start_servers(
    specs: Sequence[str], log_dir: Path, *, extra_env: dict[str, str] | None = None
) -> list[ServerProcess]:
    """Start one process per kind in ``specs`` at once; return when each answers ``/healthz``.

    Fails the test with the process's output if one exits or stays unhealthy.
    """
    env = subprocess_env(extra_env)
    started: list[ServerProcess] = []
    for kind in specs:
        port = free_port()
        name = f"{kind}-{port}"
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                server_command(kind, port),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is the harness's to forward
            )
        server = ServerProcess(kind=kind, name=name, port=port, proc=proc, log_path=log_path)
        ALL_SERVERS.append(server)
        started.append(server)
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(started)
    while waiting:
        for server in list(waiting):
            if not server.running():
                _stop_all(started)
                pytest.fail(
                    f"{server.name} exited with {server.proc.returncode} during start-up:\n"
                    f"{server.log_text()}",
                    pytrace=False,
                )
            if _healthy(server):
                waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            _stop_all(started)
            logs = "\n".join(f"--- {s.name} ---\n{s.log_text()}" for s in waiting)
            pytest.fail(
                f"not healthy after {START_TIMEOUT_S:.0f} s: {[s.name for s in waiting]}\n{logs}",
                pytrace=False,
            )
        if waiting:
            time.sleep(0.1)
    return started


def _stop_all(servers: Sequence[ServerProcess]) -> None:
    for server in servers:
        if server.running():
            server.proc.send_signal(signal.SIGTERM)
    for server in servers:
        server.stop()


class ServerPool:
    """Servers shared by the tests of one module, started on first use."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._servers: dict[tuple[str, int], ServerProcess] = {}

    def start_many(self, *keys: tuple[str, int]) -> list[ServerProcess]:
        missing = [k for k in keys if k not in self._servers or not self._servers[k].running()]
        if missing:
            for key, server in zip(
                missing, start_servers([kind for kind, _ in missing], self.log_dir), strict=True
            ):
                self._servers[key] = server
        return [self._servers[k] for k in keys]

    def get(self, kind: str, index: int = 0) -> ServerProcess:
        return self.start_many((kind, index))[0]

    def close(self) -> None:
        _stop_all(list(self._servers.values()))
        self._servers.clear()


@pytest.fixture(scope="module")
def server_pool(
    django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPool]:
    """Module-wide servers (after the test database exists, so they can point at it)."""
    pool = ServerPool(tmp_path_factory.mktemp("e2e-servers"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def server_factory(
    django_db_setup: Any, tmp_path: Path
) -> Iterator[Callable[..., list[ServerProcess]]]:
    """Start processes owned by one test: ``server_factory("daphne", "uvicorn", extra_env=...)``."""
    owned: list[ServerProcess] = []

    def start(*kinds: str, extra_env: dict[str, str] | None = None) -> list[ServerProcess]:
        servers = start_servers(kinds, tmp_path, extra_env=extra_env)
        owned.extend(servers)
        return servers

    try:
        yield start
    finally:
        _stop_all(owned)


# --- servers on a chosen port ------------------------------------------------------------------


def start_server_on_port(
    kind: str, port: int, log_dir: Path, *, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    """Like ``start_servers``, but on ``port`` (e.g. where a stopped one was: a restart)."""
    name = f"{kind}-{port}-{uuid.uuid4().hex[:4]}"
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            server_command(kind, port),
            cwd=REPO_ROOT,
            env=subprocess_env(extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(kind=kind, name=name, port=port, proc=proc, log_path=log_path)
    ALL_SERVERS.append(server)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if not server.running():
            pytest.fail(
                f"{name} exited with {proc.returncode} during start-up:\n{server.log_text()}",
                pytrace=False,
            )
        with contextlib.suppress(OSError):
            if http_request("GET", f"{server.http_url}/healthz", timeout=2.0)[0] == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"{name} not healthy after {START_TIMEOUT_S:.0f} s:\n{server.log_text()}",
                pytrace=False,
            )
        time.sleep(0.1)


@pytest.fixture
def port_server_factory(django_db_setup: Any, tmp_path: Path) -> Iterator[Any]:
    """``start(kind, port)`` for processes on a given port; stopped after the test."""
    owned: list[ServerProcess] = []

    async def start(
        kind: str, port: int, *, extra_env: dict[str, str] | None = None
    ) -> ServerProcess:
        server = await asyncio.to_thread(
            start_server_on_port, kind, port, tmp_path, extra_env=extra_env
        )
        owned.append(server)
        return server

    try:
        yield start
    finally:
        for server in owned:
            server.stop()


# --- attach server logs to failing tests ------------------------------------------------------

_test_started = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_test_started] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and "e2e" in item.keywords:
        since = item.stash.get(_test_started, 0.0)
        for server in ALL_SERVERS:
            if server.stopped_at is None or server.stopped_at >= since:
                status = "running" if server.running() else f"exit {server.proc.returncode}"
                report.sections.append(
                    (f"server log {server.name} ({status}, {server.log_path})", server.log_tail())
                )
    return report


# --- HTTP ----------------------------------------------------------------------------------

# Loopback only: never route through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> tuple[int, Any]:
    """(status, decoded JSON body or None); HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


async def http(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    return await asyncio.to_thread(http_request, method, url, **kwargs)


async def obtain_tokens(
    server: ServerProcess, username: str, password: str = E2E_PASSWORD
) -> tuple[str, str]:
    """(access, refresh) from ``POST /api/auth/token/`` on ``server``."""
    status, body = await http(
        "POST",
        f"{server.http_url}/api/auth/token/",
        body={"username": username, "password": password},
    )
    assert status == 200, (status, body)
    return body["access"], body["refresh"]


async def logout(server: ServerProcess, access: str, refresh: str) -> tuple[int, Any]:
    return await http(
        "POST",
        f"{server.http_url}/api/auth/logout/",
        body={"refresh": refresh},
        headers={"Authorization": f"Bearer {access}"},
    )


# --- database --------------------------------------------------------------------------------


async def create_user(username: str | None = None, password: str = E2E_PASSWORD) -> Any:
    """A committed user (the test needs ``@pytest.mark.django_db(transaction=True)``)."""
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    name = username or f"e2e_{uuid.uuid4().hex[:10]}"

    def create() -> Any:
        return get_user_model().objects.create_user(username=name, password=password)

    # database_sync_to_async closes the thread's connection afterwards, so nothing holds the
    # test database open when pytest-django flushes or drops it.
    return await database_sync_to_async(create)()


# --- management commands ---------------------------------------------------------------------


async def run_manage(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python manage.py <args>`` with the servers' environment (same DB, Redis, prefix)."""
    env = subprocess_env()
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- WebSocket clients -------------------------------------------------------------------------


def ws_connect(
    server: ServerProcess,
    *,
    token: str | None = None,
    path: str = "/ws/game/",
    headers: dict[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
    **kwargs: Any,
) -> connect:
    """``websockets`` client for ``server`` (await it, or use ``async with``)."""
    url = f"{server.ws_url}{path}"
    if token is not None:
        url += f"?token={quote(token, safe='')}"
    return connect(
        url,
        additional_headers=headers,
        subprotocols=list(subprotocols) if subprotocols else None,
        proxy=None,
        open_timeout=HTTP_TIMEOUT_S,
        close_timeout=FRAME_TIMEOUT_S,
        **kwargs,
    )


async def recv_json(ws: ClientConnection, timeout: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
    """The next frame, decoded; fails on timeout, on a non-object frame or if the socket closes."""
    problem = ""
    try:
        async with asyncio.timeout(timeout):
            raw = await ws.recv()
    except TimeoutError:
        problem = f"no frame within {timeout} s"
    except ConnectionClosed as exc:
        problem = f"socket closed while a frame was expected: {_describe_close(exc)}"
    if problem:
        pytest.fail(problem, pytrace=False)
    frame = json.loads(raw)
    assert isinstance(frame, dict), frame
    return frame


async def recv_event(
    ws: ClientConnection, event: str, timeout: float = FRAME_TIMEOUT_S
) -> dict[str, Any]:
    """The next frame whose ``event`` is ``event``, skipping any other frame."""
    skipped: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                if isinstance(frame, dict) and frame.get("event") == event:
                    return frame
                skipped.append(frame)
    except TimeoutError:
        problem = f"no {event!r} within {timeout} s"
    except ConnectionClosed as exc:
        problem = f"socket closed before {event!r}: {_describe_close(exc)}"
    pytest.fail(f"{problem}; skipped {skipped}", pytrace=False)


@dataclass(frozen=True)
class Closed:
    code: int
    reason: str
    frames: list[Any]  # frames received before the close frame


async def expect_close(ws: ClientConnection, timeout: float = FRAME_TIMEOUT_S) -> Closed:
    """Read until the server closes the socket; fails unless a close frame arrives in time."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frames.append(json.loads(await ws.recv()))
    except TimeoutError:
        problem = f"socket still open after {timeout} s"
    except ConnectionClosed as exc:
        if exc.rcvd is not None:
            return Closed(exc.rcvd.code, exc.rcvd.reason, frames)
        problem = _describe_close(exc)
    pytest.fail(f"{problem}; received {frames}", pytrace=False)


def _describe_close(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "connection lost without a close frame (1006)"
    return f"close {exc.rcvd.code} {exc.rcvd.reason!r}"


@contextlib.asynccontextmanager
async def connect_authenticated(server: ServerProcess, token: str, **kwargs: Any) -> Any:
    """Connect with ``?token=`` and yield ``(ws, sync:initial data)``."""
    async with ws_connect(server, token=token, **kwargs) as ws:
        first = await recv_json(ws)
        assert first.get("event") == "sync:initial", first
        yield ws, first["data"]


def is_int(value: Any) -> bool:
    """A JSON integer (``bool`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)
