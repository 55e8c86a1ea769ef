"""The ORM thread keeps its connection through a burst of calls and hands it back after.

Calls queued behind one another share the thread's connection instead of each taking one from
the pool and returning it; once nothing is queued it goes back, and a call that failed gets
Django's check at once, so a broken connection is never reused (``realtime.core.db``).
"""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection

from realtime.core.db import db

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL: SQLite's test database stays open"
    ),
]


def _connected_then_query() -> bool:
    """Whether the thread's connection was open when this call started (then use it)."""
    was_open = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return was_open


def _connected() -> bool:
    return connection.connection is not None


def _bad_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")


async def test_calls_queued_behind_one_another_share_the_connection_then_return_it() -> None:
    await db(_connected_then_query)  # alone: its connection goes back to the pool

    burst = await asyncio.gather(*(db(_connected_then_query) for _ in range(20)))

    assert burst[0] is False  # the first of the burst took one from the pool
    assert sum(burst) >= 10, burst  # most found it open (not all: submission races the thread)
    assert await db(_connected) is False  # nothing was queued behind the last: handed back


async def test_a_call_that_failed_does_not_leave_its_connection_to_the_next() -> None:
    first, bad, after = await asyncio.gather(
        db(_connected_then_query), db(_bad_query), db(_connected), return_exceptions=True
    )

    assert first is False
    assert isinstance(bad, Exception) and "no_such_table" in str(bad)
    assert after is False  # checked (and closed) after the failure, though a call was queued
