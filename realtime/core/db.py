"""The one way async realtime code calls a (sync) domain service or selector, within a deadline.

``db(fn, ...)`` runs ``fn`` on the ORM thread and returns its result, or raises
``ServiceUnavailable`` — at once while the database is known to be down, and when a call
runs for longer than ``AETURNIS_DB_TIMEOUT_S`` (PROTOCOL.md §8a: fail fast, never apply later).
A call that overruns is not awaited further: the socket of the connection it is stuck on is
shut down, so the ORM thread is freed and the server drops the transaction (its COMMIT never
arrives), and the database is marked down until a probe in a thread of its own can connect
again. Errors that are the request's own (an integrity error, a bug) are not outages and
propagate as they are. So every write a caller may be refused must run in a transaction: a
lone autocommitted statement that reached the server before the stall would still be applied.

The deadline counts from the moment a call starts on the ORM thread, not from when it was
queued: a burst of requests waiting their turn behind a database that answers is load, not an
outage. Calls still queued when the database is marked down are answered at once and never
run (the outage future below wakes them).

The ORM thread's connection goes back to the pool when the thread has nothing more to do, not
after every call (channels' ``database_sync_to_async`` closes it before and after each one):
in a burst the calls queued behind one another share the connection instead of each taking it
from the pool and handing it back (~40 µs of CPU per call, bench/README.md). A call that
failed, or that starts after the connection sat idle for ``IDLE_CHECK_S``, still gets the
usual check (``close_old_connections``), so a connection broken by an outage or closed by the
server while idle is never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
from django.db.utils import InterfaceError, OperationalError

from realtime.core.errors import ServiceUnavailable
from realtime.core.health import DATABASE, RETRY_AFTER_S

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1
# A connection the ORM thread kept that sat idle this long is checked before its next use.
IDLE_CHECK_S = 1.0


class _Unavailable(Exception):
    """Raised on the ORM thread when the database itself failed the call."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means the database is unreachable or going away (connection
    refused, reset, timed out, shutting down), not that the request itself was wrong."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    return connection_lost(exc.__cause__)


def connection_lost(error: BaseException | None) -> bool:
    """Whether a driver's (psycopg's) operational error says the server is out of reach."""
    sqlstate = getattr(error, "sqlstate", None)
    # No SQLSTATE: the client never got an answer. 08: connection exception; 57P: operator
    # intervention (the server shutting down or restarting).
    return sqlstate is None or str(sqlstate).startswith(("08", "57P"))


class _GivenUp(Exception):
    """Raised on the ORM thread for a call its caller stopped waiting for before it started."""


# Guards a call's start against its caller giving up on it (the ORM thread vs the loop).
_start_lock = threading.Lock()


class _Call:
    """One call on the ORM thread: when it started, and which connection it uses, so it can
    be cut short."""

    __slots__ = ("given_up", "started", "wrapper")

    def __init__(self) -> None:
        self.wrapper: Any = None
        self.started: float | None = None
        self.given_up = False

    def give_up_if_queued(self) -> bool:
        """Whether the call had not started; it never will."""
        with _start_lock:
            if self.started is None:
                self.given_up = True
                return True
            return False

    def interrupt(self) -> None:
        """Shut the socket of the connection the call is stuck on: its read fails at once."""
        raw = getattr(self.wrapper, "connection", None)
        fd = getattr(getattr(raw, "pgconn", None), "socket", -1)
        if not isinstance(fd, int) or fd < 0:
            return
        with contextlib.suppress(OSError):
            stuck = socket.socket(fileno=os.dup(fd))
            try:
                stuck.shutdown(socket.SHUT_RDWR)
            finally:
                stuck.close()


class _Thread:
    """What the ORM thread's connection handling needs to know: how many calls were submitted
    (counted on the event loop) and finished (counted on the ORM thread; each counter has one
    writer, so none loses an update to the other), and when the thread last finished one."""

    submitted = 0
    finished = 0
    last_end = 0.0


def _hop(call: _Call, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    """On the ORM thread: ``fn`` between the connection checks (see the module docstring)."""
    if time.monotonic() - _Thread.last_end > IDLE_CHECK_S:
        close_old_connections()
    failed = True
    try:
        result = _run(call, fn, args, kwargs)
        failed = False
        return result
    finally:
        _Thread.finished += 1
        _Thread.last_end = time.monotonic()
        if failed or _Thread.submitted <= _Thread.finished:  # nothing queued: hand it back
            close_old_connections()


_hop_async = sync_to_async(_hop, thread_sensitive=True)


def _run(call: _Call, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    with _start_lock:
        if call.given_up:
            raise _GivenUp
        call.started = time.monotonic()
    if not DATABASE.up:
        raise _GivenUp
    call.wrapper = connections[DEFAULT_DB_ALIAS]
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError) as exc:
        if is_outage(exc):
            raise _Unavailable(exc) from None
        raise


def _forget(task: asyncio.Future[Any]) -> None:
    """A call that was given up: collect its result so that nothing reports it later."""
    if not task.cancelled():
        exc = task.exception()
        if exc is not None and not isinstance(exc, _Unavailable | _GivenUp):
            logger.debug("a database call given up on failed later: %r", exc)


# Per event loop, a future resolved when the database is marked down: it wakes every caller
# whose call is still queued (and is replaced by a fresh one for the next outage).
_outages: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}


def _outage_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future = _outages.get(loop)
    if future is None or future.done():
        future = _outages[loop] = loop.create_future()
    return future


def _announce_outage() -> None:
    for loop, future in list(_outages.items()):
        if loop.is_closed():
            _outages.pop(loop, None)
        elif not future.done():
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` on the ORM thread (closing stale connections around it) and return its
    result; ``ServiceUnavailable`` when the database is down or a call does not answer in
    time once started."""
    DATABASE.check()
    call = _Call()
    _Thread.submitted += 1
    task: asyncio.Future[T] = asyncio.ensure_future(_hop_async(call, fn, args, kwargs))
    timeout = float(settings.AETURNIS_DB_TIMEOUT_S)
    outage = _outage_future(asyncio.get_running_loop())
    # Not asyncio.wait_for: cancelling asgiref's sync_to_async waits for the thread anyway.
    while True:
        started = call.started
        wait_s = timeout if started is None else started + timeout - time.monotonic()
        if wait_s > 0:
            await asyncio.wait((task, outage), timeout=wait_s, return_when=FIRST_COMPLETED)
        if task.done():
            break
        if outage.done() and call.give_up_if_queued():
            task.add_done_callback(_forget)
            raise ServiceUnavailable(DATABASE.name, RETRY_AFTER_S)
        if call.started is not None and (
            outage.done() or time.monotonic() >= call.started + timeout
        ):
            task.add_done_callback(_forget)
            call.interrupt()
            raise database_failed("db", TimeoutError("no answer within the deadline"))
    try:
        return task.result()
    except _Unavailable as exc:
        raise database_failed("db", exc.cause) from None
    except _GivenUp:
        raise ServiceUnavailable(DATABASE.name, RETRY_AFTER_S) from None


def database_failed(component: str, exc: BaseException) -> ServiceUnavailable:
    """Report the database down (once per outage) and watch for it to come back; returns the
    exception for callers to raise."""
    refusal = DATABASE.failed(component, exc)
    _announce_outage()
    _start_probe()
    return refusal


# --- finding out that the database is back --------------------------------------------------

_probe_lock = threading.Lock()
_probing = False


def probe_database() -> None:
    """Open a connection of our own (not the pool's), run SELECT 1, close it; raises when the
    database does not answer within about a second. Reports a success to the health."""
    _probe_once()
    if not DATABASE.up:
        DATABASE.recovered()


def _probe_once() -> bool:
    """Open a connection of our own (not the pool's) and run SELECT 1."""
    config = settings.DATABASES[DEFAULT_DB_ALIAS]
    if "sqlite3" in config["ENGINE"]:
        with contextlib.closing(sqlite3.connect(str(config["NAME"]), timeout=1)) as conn:
            conn.execute("SELECT 1")
        return True
    import psycopg  # imported here: only a PostgreSQL deployment needs it

    params = {
        "dbname": config["NAME"],
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "connect_timeout": PROBE_TIMEOUT_S,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
        conn.execute("SELECT 1")
    return True


def _drop_broken_pooled_connections() -> None:
    """After an outage the pool may hold connections that died with it: check them all now,
    before requests get them (else the first requests fail and the outage seems to go on)."""
    pool = getattr(connections[DEFAULT_DB_ALIAS], "pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.check()


def _probe_loop() -> None:
    global _probing
    try:
        while not DATABASE.up:
            try:
                if _probe_once():
                    _drop_broken_pooled_connections()
                    DATABASE.recovered()
                    return
            except Exception:  # still down: try again
                time.sleep(PROBE_INTERVAL_S)
    finally:
        with _probe_lock:
            _probing = False


def _start_probe() -> None:
    """Watch for the database to come back, in a thread of its own (never the ORM thread)."""
    global _probing
    with _probe_lock:
        if _probing:
            return
        _probing = True
    threading.Thread(target=_probe_loop, name="database-probe", daemon=True).start()
