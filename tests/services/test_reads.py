"""``realtime.core.reads``: the hot path's reads, on the event loop's own connections on
PostgreSQL and through ``db()`` elsewhere; one behaviour either way."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connection, connections

from realtime.core import reads as reads_module
from realtime.core.health import DATABASE
from realtime.core.reads import Rows, close_reads, read

pytestmark = pytest.mark.django_db(transaction=True)
requires_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="reads on the loop: PostgreSQL"
)


@pytest.fixture
async def reads() -> AsyncIterator[None]:
    yield
    await close_reads()


def numbers(vendor: str) -> str:
    return "SELECT %s + 1, %s * 2"


def pair(rows: Rows) -> tuple[Any, ...]:
    return tuple(rows[0])


async def test_reads_run_in_parallel_and_each_gets_its_own_rows(reads: None) -> None:
    results = await asyncio.gather(*(read(numbers, [n, n], pair) for n in range(50)))

    assert results == [(n + 1, n * 2) for n in range(50)]


async def test_an_error_of_the_statement_is_raised_and_is_no_outage(reads: None) -> None:
    def one_placeholder(vendor: str) -> str:
        return "SELECT %s"

    with pytest.raises(Exception) as raised:  # psycopg's or sqlite3's, as the ORM's would be
        await read(one_placeholder, [], pair)  # no parameter for the placeholder

    assert type(raised.value).__name__ == "ProgrammingError"
    assert DATABASE.up
    assert await read(numbers, [1, 2], pair) == (2, 4)  # the connection is still good


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads on the loop: PostgreSQL")
async def test_a_caller_that_stops_waiting_leaves_the_statement_to_finish(reads: None) -> None:
    def slow(vendor: str) -> str:
        return "SELECT pg_sleep(0.2), %s"

    waiting = asyncio.ensure_future(read(slow, [7], pair))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert await asyncio.gather(*(read(numbers, [n, n], pair) for n in range(4))) == [
        (n + 1, n * 2) for n in range(4)
    ]


async def test_a_read_leaves_no_django_connection_object_in_its_callers_context(
    reads: None,
) -> None:
    """Every connection's task reads; a Django connection object made in its context would
    stay for the connection's life (~4 KB each, bench/README.md's idle memory)."""

    async def a_connections_task() -> bool:
        await read(numbers, [1, 1], pair)
        return hasattr(connections._connections, DEFAULT_DB_ALIAS)

    task = asyncio.get_running_loop().create_task(
        a_connections_task(), context=contextvars.Context()
    )
    assert await task is False


def _loop_connections() -> list[Any]:
    """The running loop's read connections made so far."""
    return [slot.conn for slot in reads_module._reads.get()._slots if slot.conn is not None]


def _registered(fd: int) -> bool:
    """Whether ``fd`` is registered with the running (asyncio selector) loop."""
    try:
        asyncio.get_running_loop()._selector.get_key(fd)  # type: ignore[attr-defined]
    except KeyError:
        return False
    return True


@requires_postgresql
async def test_a_read_connection_stays_registered_between_reads_and_leaves_the_loop_closed(
    reads: None,
) -> None:
    await asyncio.gather(*(read(numbers, [n, n], pair) for n in range(10)))
    conns = _loop_connections()
    assert conns
    sockets = [conn.pgconn.socket for conn in conns]
    assert all(_registered(fd) for fd in sockets)  # no per-statement registration
    assert await read(numbers, [3, 3], pair) == (4, 6)

    await close_reads()

    assert not any(_registered(fd) for fd in sockets)


@requires_postgresql
async def test_a_connection_postgresql_closes_while_idle_leaves_the_loop_at_once(
    reads: None,
) -> None:
    await read(numbers, [1, 1], pair)
    conn = _loop_connections()[0]
    fd = conn.pgconn.socket

    await sync_to_async(_terminate)(conn.info.backend_pid)
    for _ in range(100):  # readable with nobody waiting: unregistered, not called again
        if not _registered(fd):
            break
        await asyncio.sleep(0.02)

    assert not _registered(fd)


@requires_postgresql
async def test_a_statement_larger_than_the_socket_buffer_is_written_and_answered(
    reads: None,
) -> None:
    def length(vendor: str) -> str:
        return "SELECT length(%s), %s"

    assert await read(length, ["x" * 8_000_000, 5], pair) == (8_000_000, 5)
    assert await read(numbers, [2, 2], pair) == (3, 4)


def _terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


@requires_postgresql
def test_the_connections_of_a_loop_that_ended_without_closing_them_are_closed() -> None:
    """A loop's connections are kept in a map weakly keyed by the loop: nothing of theirs may
    hold the loop, or neither would ever go (a connection left open for good)."""

    async def one_read() -> tuple[int, weakref.ref[Any]]:
        await read(numbers, [1, 1], pair)
        conn = _loop_connections()[0]
        return conn.info.backend_pid, weakref.ref(conn)

    loop = asyncio.new_event_loop()
    try:
        pid, conn = loop.run_until_complete(one_read())
    finally:
        loop.close()
    del loop
    gc.collect()

    assert conn() is None
    for _ in range(100):
        if not _backend_alive(pid):
            break
        time.sleep(0.02)
    assert not _backend_alive(pid)


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


# --- prepared reads ---------------------------------------------------------------------


@pytest.fixture
def one_connection(settings: Any) -> Iterator[None]:
    """One read connection (each read on the same session), and the process's "prepared
    statements do not work here" forgotten afterwards."""
    settings.AETURNIS_DB_READ_CONNECTIONS = 1
    yield
    reads_module._prepare_refused = False


async def _prepared_here() -> list[str]:
    """The statements the read connection's session holds prepared (asked without preparing)."""
    conn = _loop_connections()[0]
    cursor = conn.cursor()
    await cursor.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
    return [row[0] for row in await cursor.fetchall()]


def _behind_psycopgs_back(conn: Any, sql: bytes) -> None:
    """Run ``sql`` through libpq, as a pooler's other session would look: psycopg keeps its
    record of what it prepared."""
    result = conn.pgconn.exec_(sql)
    assert result.status == 1, result.error_message  # COMMAND_OK


@requires_postgresql
async def test_a_read_is_prepared_once_and_then_only_executed(
    reads: None, one_connection: None
) -> None:
    assert await read(numbers, [1, 1], pair) == (2, 2)
    assert await read(numbers, [5, 6], pair) == (6, 12)

    assert await _prepared_here() == ["SELECT $1 + 1, $2 * 2"]


@requires_postgresql
async def test_reads_are_not_prepared_when_the_setting_says_so(
    reads: None, one_connection: None, settings: Any
) -> None:
    settings.AETURNIS_DB_PREPARE_READS = False

    assert await read(numbers, [1, 1], pair) == (2, 2)

    assert await _prepared_here() == []


@requires_postgresql
async def test_a_pooler_that_loses_prepared_statements_costs_no_read_and_ends_preparing(
    reads: None, one_connection: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction-mode pooler without statement tracking gives the next transaction another
    server session, where psycopg's statement does not exist (SQLSTATE 26000)."""
    assert await read(numbers, [1, 1], pair) == (2, 2)
    lost = _loop_connections()[0]
    _behind_psycopgs_back(lost, b"DEALLOCATE ALL")

    with caplog.at_level("WARNING", logger="realtime.core.reads"):
        assert await read(numbers, [2, 3], pair) == (3, 6)

    assert DATABASE.up
    assert [r.getMessage()[:38] for r in caplog.records] == [
        "PostgreSQL lost a prepared read (26000"
    ]
    assert _loop_connections()[0] is not lost  # psycopg's record of that session is wrong
    assert await read(numbers, [4, 4], pair) == (5, 8)
    assert await _prepared_here() == []  # and the process prepares no more


@requires_postgresql
async def test_another_clients_statement_of_the_same_name_costs_no_read(
    reads: None, one_connection: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The session the pooler hands over already holds a statement of psycopg's next name
    (SQLSTATE 42P05): the read is made again unprepared."""

    def other(vendor: str) -> str:
        return "SELECT %s * 10"

    assert await read(numbers, [1, 1], pair) == (2, 2)  # _pg3_0
    _behind_psycopgs_back(_loop_connections()[0], b"PREPARE _pg3_1 AS SELECT 'someone else'")

    with caplog.at_level("WARNING", logger="realtime.core.reads"):
        assert await read(other, [7], lambda rows: rows[0][0]) == 70

    assert [r.getMessage()[:38] for r in caplog.records] == [
        "PostgreSQL lost a prepared read (42P05"
    ]
    assert not reads_module._preparing()
