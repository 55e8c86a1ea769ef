"""The hot path's reads: on PostgreSQL, on the event loop itself, without the ORM thread.

Every connect reads its account twice and every ``character:select`` reads the character: plain
statements of hand-written SQL whose rows the caller turns into a value. Through ``db()`` each
is a hop to the ORM thread and back, and in a connect storm the hop costs more CPU than the
query (the loop and the thread hand work and the GIL to each other: ~310 µs of CPU per read
with 50 in flight, against ~120 µs for the same statement on psycopg's async connection,
bench/README.md). So on PostgreSQL ``read()`` runs the statement on one of a few async
connections of the event loop (``AETURNIS_DB_READ_CONNECTIONS``, 2), one statement at a time
on each; reads beyond that wait their turn. Elsewhere (SQLite, the embedded default) it is a
``db()`` call, as before.

The reads are prepared statements (``AETURNIS_DB_PREPARE_READS``, on): each connection has
PostgreSQL parse and plan a statement once, not at every connect. A pooler in front of
PostgreSQL that loses them (transaction pooling without statement tracking) answers "does not
exist" or "already exists"; the read is then made again unprepared on a new connection, and the
process stops preparing.

It keeps ``db()``'s rules (PROTOCOL.md §8a): refused at once while the database is known to be
down; a read that gets no answer within ``AETURNIS_DB_TIMEOUT_S`` from its start has its
socket shut, the database is reported down and the caller refused; reads queued behind it are
refused when their turn comes. Only reads come here: nothing written can be applied late. The
connection is made again after any failure and after any outage reported elsewhere, so a
connection that died with the database is never used once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from realtime.core.db import connection_lost, database_failed, db
from realtime.core.errors import ServiceUnavailable
from realtime.core.health import DATABASE, RETRY_AFTER_S
from realtime.core.per_loop import PerLoop

T = TypeVar("T")
logger = logging.getLogger(__name__)

Rows = list[tuple[Any, ...]]


async def read(
    statement: Callable[[str], str], params: Sequence[Any], result: Callable[[Rows], T]
) -> T:
    """``result`` of the rows of ``statement(vendor)`` run with ``params`` (read-only SQL)."""
    if not _on_postgresql():
        return await db(_read_here, statement, params, result)
    return result(await _reads.get().fetch(statement("postgresql"), params))


def _on_postgresql() -> bool:
    """From the settings, not ``connections``: on the loop, ``connections[alias]`` makes a
    Django connection object for every task's context (~4 KB and ~50 µs each, kept for the
    life of the connection whose task it is)."""
    return str(settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"]).endswith("postgresql")


def _read_here(
    statement: Callable[[str], str], params: Sequence[Any], result: Callable[[Rows], T]
) -> T:
    """On the ORM thread, with Django's connection (datetimes adapted as the ORM would)."""
    ops = connection.ops
    values = [
        ops.adapt_datetimefield_value(p) if isinstance(p, datetime.datetime) else p for p in params
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement(connection.vendor), values)
        rows = cursor.fetchall()
    return result(rows)


class _Slot:
    """One psycopg async connection of a loop's reads, made when first needed."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.outages = 0  # DATABASE's outage count when the connection was made
        self.timed_out = False

    async def fetch(self, sql: str, params: Sequence[Any], started: float | None = None) -> Rows:
        """The rows of ``sql``; ``started``: when the read began (a retry keeps its deadline)."""
        timeout = float(settings.AETURNIS_DB_TIMEOUT_S)
        if started is None:
            started = time.monotonic()
        try:
            conn = await asyncio.wait_for(self._connection(), timeout)
        except Exception as exc:  # refused, reset, timed out, or not let in: no reads
            self.drop()
            raise database_failed("db", exc) from None
        finally:
            self.timed_out = False
        left = max(0.001, started + timeout - time.monotonic())
        watchdog = asyncio.get_running_loop().call_later(left, self._interrupt, conn)
        prepare = _preparing()
        try:
            cursor = conn.cursor()
            await cursor.execute(sql, params, prepare=prepare)
            return list(await cursor.fetchall())
        except Exception as exc:
            if not (prepare and _prepared_statement_lost(exc)):
                failure = self._failure(exc)
                if failure is None:
                    raise
                self.drop()
                raise failure from None
        finally:
            watchdog.cancel()
        # Something between this process and PostgreSQL loses prepared statements: psycopg's
        # record of what this connection prepared is wrong now. Again, on a new connection,
        # unprepared (a read: nothing was applied), within the same deadline.
        self.drop()
        return await self.fetch(sql, params, started)

    def _failure(self, exc: Exception) -> ServiceUnavailable | None:
        """The refusal for an outage (the database went away, or did not answer in time),
        None for an error of the statement itself."""
        import psycopg  # only a PostgreSQL deployment gets here

        if self.timed_out:
            return database_failed("db", TimeoutError("no answer within the deadline"))
        lost = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        if lost and connection_lost(exc):
            return database_failed("db", exc)
        return None

    async def _connection(self) -> Any:
        conn = self.conn
        # timed_out: a deadline shut the socket, possibly just as the statement answered.
        stale = self.timed_out or self.outages != DATABASE.outages
        if conn is not None and (stale or conn.closed or conn.broken):
            self.drop()
            conn = None
        if conn is None:
            conn = self.conn = await _connect()
            self.outages = DATABASE.outages
        return conn

    def _interrupt(self, conn: Any) -> None:
        """The statement overran its deadline: shut its socket, so its read fails at once."""
        self.timed_out = True
        with contextlib.suppress(Exception):  # OSError, or psycopg's for a closed connection
            fd = conn.pgconn.socket
            stuck = socket.socket(fileno=os.dup(fd))
            try:
                stuck.shutdown(socket.SHUT_RDWR)
            finally:
                stuck.close()

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            _finish(conn)


# What PostgreSQL answers when a session does not hold the prepared statements psycopg made in
# it, or holds another client's of the same name: a transaction-mode pooler that does not track
# them hands each transaction another server session.
_LOST_PREPARED_STATEMENT = frozenset({"26000", "42P05"})  # does not exist, already exists
_prepare_refused = False


def _preparing() -> bool:
    return not _prepare_refused and bool(settings.AETURNIS_DB_PREPARE_READS)


def _prepared_statement_lost(exc: Exception) -> bool:
    """Whether ``exc`` says prepared statements do not work here; if so, this process stops
    preparing its reads (said once in the log)."""
    global _prepare_refused
    if getattr(exc, "sqlstate", None) not in _LOST_PREPARED_STATEMENT:
        return False
    if not _prepare_refused:
        _prepare_refused = True
        logger.warning(
            "PostgreSQL lost a prepared read (%s: %s): is a pooler without prepared statements"
            " in front of it? This process no longer prepares its reads;"
            " set AETURNIS_DB_PREPARE_READS=0 to say so from the start",
            getattr(exc, "sqlstate", ""),
            exc,
        )
    return True


class _LoopReads:
    """A loop's ``AETURNIS_DB_READ_CONNECTIONS`` connections; a read takes a free one, or waits
    its turn (first come, first served) for the next one freed."""

    def __init__(self) -> None:
        size = int(settings.AETURNIS_DB_READ_CONNECTIONS)
        self._slots = [_Slot() for _ in range(max(1, size))]
        self._free: asyncio.Queue[_Slot] = asyncio.Queue()
        for slot in self._slots:
            self._free.put_nowait(slot)
        # A loop that ends without close_reads() (a test's) still closes its connections.
        weakref.finalize(asyncio.get_running_loop(), self.drop)

    async def fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        DATABASE.check()
        # Shielded: a caller that stops waiting (its socket closed) must not cancel a statement
        # half way; it finishes (or its deadline cuts it) and the next one starts after it.
        task = asyncio.ensure_future(self._fetch(sql, params))
        task.add_done_callback(_collect)
        return await asyncio.shield(task)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        slot = await self._free.get()
        try:
            if not DATABASE.up:  # marked down while this read waited its turn
                raise ServiceUnavailable(DATABASE.name, RETRY_AFTER_S)
            return await slot.fetch(sql, params)
        finally:
            self._free.put_nowait(slot)

    def drop(self) -> None:
        for slot in self._slots:
            slot.drop()


async def _connect() -> Any:
    import psycopg  # only a PostgreSQL deployment gets here

    from realtime.core.pg_waits import LoopConnection

    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    # Parameters bound by the server (psycopg's default cursor), not quoted into the statement
    # as Django's connections do: measured on these reads, ~20 % less CPU here and half the
    # round trip.
    params.pop("cursor_factory", None)
    # Prepared (``fetch`` says so for each read): PostgreSQL parses and plans a read once per
    # connection instead of every time, ~70 % less of its CPU per read (bench/README.md).
    # Django's connections never prepare (its default), and none of theirs come here.
    params["prepare_threshold"] = 0 if _preparing() else None
    conn = await LoopConnection.connect(
        **params, autocommit=True, cursor_factory=psycopg.AsyncCursor
    )
    # As Django's own connections: timestamps in UTC.
    if conn.info.parameter_status("TimeZone") != "UTC":
        await conn.execute("SELECT set_config('TimeZone', 'UTC', false)", prepare=False)
    return conn


def _collect(task: asyncio.Future[Any]) -> None:
    """A read whose caller stopped waiting: its error goes nowhere (it was answered, or
    reported, where it happened)."""
    if not task.cancelled():
        task.exception()


def _finish(conn: Any) -> None:
    """Close without awaiting (libpq's own close): also when the loop is gone. The socket
    leaves the loop first (``LoopConnection.release``)."""
    with contextlib.suppress(Exception):
        conn.release()
    with contextlib.suppress(Exception):
        conn.pgconn.finish()


_reads = PerLoop(_LoopReads)


async def close_reads() -> None:
    """Close this loop's connections (at shutdown, and between tests that each have a loop);
    a read still running on one fails (the loop is stopping)."""
    reads = _reads.pop()
    if reads is not None:
        reads.drop()
