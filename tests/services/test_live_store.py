"""Live character state at a selection: both backends, one behaviour (``LiveStore.enter``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from django.conf import settings

from characters.rules import Position
from realtime.core.redis_client import async_redis, close_async_redis, key
from realtime.state.live import LiveState, LiveStore, LocalLiveStore, RedisLiveStore

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")

SPAWN = Position(0.0, 0.0, 0.0, 0.0)
MOVED = Position(12.5, -3.25, 1.0, 90.0)


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LiveStore]:
    if request.param == "local":
        yield LocalLiveStore()
        return
    yield RedisLiveStore()
    await close_async_redis()


def selected(zone_id: int = 1, since: float = 1000.0) -> LiveState:
    """What a selection stores: the database's position, an empty budget from ``since``."""
    return LiveState(7, zone_id, f"zone{zone_id}", SPAWN, since)


async def test_a_first_selection_stores_the_given_position_clean(store: LiveStore) -> None:
    stored = await store.enter(selected())

    assert stored == selected()
    assert await store.get(7) == selected()
    assert await store.take_dirty(10) == []


async def test_a_selection_in_the_same_zone_keeps_the_live_position_dirty(
    store: LiveStore,
) -> None:
    await store.put(LiveState(7, 1, "zone1", MOVED, 900.0, budget=4.5), dirty=True)

    stored = await store.enter(selected(since=1000.0))

    expected = LiveState(7, 1, "zone1", MOVED, 1000.0, budget=0.0)
    assert stored == expected
    assert await store.get(7) == expected
    assert await store.take_dirty(10) == [expected]


async def test_a_selection_in_the_same_zone_keeps_a_written_position_clean(
    store: LiveStore,
) -> None:
    moved = LiveState(7, 1, "zone1", MOVED, 900.0, budget=4.5)
    await store.put(moved, dirty=True)
    assert await store.take(7) == moved  # written at the disconnect

    stored = await store.enter(selected(since=1000.0))

    assert stored == LiveState(7, 1, "zone1", MOVED, 1000.0, budget=0.0)
    assert await store.take(7) is None
    assert await store.take_dirty(10) == []


async def test_a_selection_in_another_zone_stores_the_given_position_clean(
    store: LiveStore,
) -> None:
    await store.put(LiveState(7, 2, "zone2", MOVED, 900.0), dirty=True)

    stored = await store.enter(selected(zone_id=1))

    assert stored == selected(zone_id=1)
    assert await store.get(7) == selected(zone_id=1)
    assert await store.take_dirty(10) == []


async def test_a_position_stored_clean_is_not_taken_for_writing(store: LiveStore) -> None:
    await store.enter(selected())

    assert await store.take(7) is None
    assert await store.get(7) == selected()  # still live, only not to be written


async def test_a_moved_position_is_taken_for_writing_once(store: LiveStore) -> None:
    moved = LiveState(7, 1, "zone1", MOVED, 900.0, budget=4.5)
    await store.put(moved, dirty=True)

    assert await store.take(7) == moved
    assert await store.take(7) is None
    assert await store.take_dirty(10) == []  # the write-behind does not write it again
    await store.mark_dirty([7])  # a failed write puts it back
    assert await store.take_dirty(10) == [moved]


@needs_redis
async def test_a_partial_live_hash_is_not_carried_over() -> None:
    store = RedisLiveStore()
    await store.put(LiveState(7, 1, "zone1", MOVED, 900.0), dirty=True)
    await async_redis().hdel(key("live", "char", 7), "x")  # type: ignore[misc]

    stored = await store.enter(selected())

    assert stored == selected()
    assert await store.get(7) == selected()
    await close_async_redis()


async def test_put_stores_the_state_and_marks_it_dirty_or_written(store: LiveStore) -> None:
    moved = LiveState(7, 1, "zone1", MOVED, 900.0, budget=4.5)
    await store.put(moved, dirty=True)
    assert await store.get(7) == moved
    assert await store.take_dirty(10) == [moved]

    await store.put(moved, dirty=True)
    await store.put(selected(), dirty=False)  # written meanwhile: no longer to be written
    assert await store.get(7) == selected()
    assert await store.take_dirty(10) == []
