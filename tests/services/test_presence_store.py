"""Presence storage: both backends, one behaviour, driven by an explicit fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from realtime.core.redis_client import async_redis, close_async_redis, key
from realtime.state.presence.backend import make_presence_store
from realtime.state.presence.store import (
    ConnEntry,
    LocalPresenceStore,
    PresenceStore,
    PutResult,
    Removal,
)
from realtime.state.presence.store_redis import RedisPresenceStore

T0 = 1_700_000_000_000
TTL = 90_000

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


def conn(
    socket_id: str,
    user_id: int = 1,
    *,
    character_id: int | None = None,
    zone: str | None = None,
    away: bool = False,
    guild_id: int | None = None,
    process: str = "p1",
) -> ConnEntry:
    return ConnEntry(
        socket_id=socket_id,
        user_id=user_id,
        character_id=character_id,
        character_name="" if character_id is None else f"Hero{character_id}",
        zone=zone,
        guild_id=guild_id,
        away=away,
        active_at=T0,
        process=process,
    )


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    if request.param == "local":
        yield LocalPresenceStore()
        return
    yield RedisPresenceStore()
    await close_async_redis()


@pytest.fixture
async def redis_pair() -> AsyncIterator[tuple[RedisPresenceStore, RedisPresenceStore]]:
    """Two stores, as two server processes would hold them."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    yield RedisPresenceStore(), RedisPresenceStore()
    await close_async_redis()


async def test_put_then_reads_return_the_entry(store: PresenceStore) -> None:
    entry = conn("s1", 7, character_id=70, zone="town", guild_id=3)

    result = await store.put(entry, now_ms=T0, ttl_ms=TTL)

    assert result == PutResult(previous=None, character_left=False)
    assert await store.entries_for_users([7], now_ms=T0 + 1) == {7: [entry]}
    assert await store.entries_in_zone("town", now_ms=T0 + 1) == [entry]
    assert await store.count_entries(now_ms=T0 + 1) == 1


async def test_entries_for_users_lists_every_asked_user_sorted_by_socket(
    store: PresenceStore,
) -> None:
    b, a, other = conn("s-b", 1), conn("s-a", 1), conn("s-c", 2)
    for entry in (b, a, other):
        await store.put(entry, now_ms=T0, ttl_ms=TTL)

    found = await store.entries_for_users([1, 2, 3, 1], now_ms=T0)

    assert found == {1: [a, b], 2: [other], 3: []}
    assert await store.entries_for_users([], now_ms=T0) == {}


async def test_zone_move_returns_previous_and_moves_zone_index(store: PresenceStore) -> None:
    first = conn("s1", character_id=10, zone="town")
    moved = conn("s1", character_id=10, zone="forest")
    await store.put(first, now_ms=T0, ttl_ms=TTL)

    result = await store.put(moved, now_ms=T0 + 10, ttl_ms=TTL)

    assert result == PutResult(previous=first, character_left=False)
    assert await store.entries_in_zone("town", now_ms=T0 + 10) == []
    assert await store.entries_in_zone("forest", now_ms=T0 + 10) == [moved]
    assert await store.count_entries(now_ms=T0 + 10) == 1


async def test_leaving_every_zone_removes_entry_from_zone_index(store: PresenceStore) -> None:
    await store.put(conn("s1", zone="town"), now_ms=T0, ttl_ms=TTL)

    await store.put(conn("s1", zone=None), now_ms=T0, ttl_ms=TTL)

    assert await store.entries_in_zone("town", now_ms=T0) == []


async def test_character_switch_reports_previous_character_left(store: PresenceStore) -> None:
    await store.put(conn("s1", character_id=10, zone="town"), now_ms=T0, ttl_ms=TTL)

    result = await store.put(conn("s1", character_id=11, zone="town"), now_ms=T0, ttl_ms=TTL)
    dropped = await store.put(conn("s1", character_id=None), now_ms=T0, ttl_ms=TTL)

    assert result.character_left is True
    assert result.previous is not None and result.previous.character_id == 10
    assert dropped.character_left is True


async def test_same_character_refresh_does_not_report_character_left(
    store: PresenceStore,
) -> None:
    await store.put(conn("s1", character_id=10), now_ms=T0, ttl_ms=TTL)

    result = await store.put(conn("s1", character_id=10, away=True), now_ms=T0, ttl_ms=TTL)

    assert result.character_left is False


async def test_character_switch_not_left_while_another_live_entry_has_it(
    store: PresenceStore,
) -> None:
    await store.put(conn("s1", character_id=10), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("s2", character_id=10), now_ms=T0, ttl_ms=TTL)

    result = await store.put(conn("s1", character_id=11), now_ms=T0 + 5, ttl_ms=TTL)

    assert result.character_left is False


async def test_character_switch_left_when_other_entry_with_it_expired(
    store: PresenceStore,
) -> None:
    await store.put(conn("s1", character_id=10), now_ms=T0, ttl_ms=TTL * 3)
    await store.put(conn("s2", character_id=10), now_ms=T0, ttl_ms=TTL)

    result = await store.put(conn("s1", character_id=11), now_ms=T0 + TTL, ttl_ms=TTL)

    assert result.character_left is True


async def test_remove_claims_exactly_once(store: PresenceStore) -> None:
    entry = conn("s1", character_id=10, zone="town")
    await store.put(entry, now_ms=T0, ttl_ms=TTL)

    first = await store.remove("s1", now_ms=T0 + 1)
    second = await store.remove("s1", now_ms=T0 + 1)

    assert first == Removal(entry=entry, character_left=True)
    assert second is None
    assert await store.remove("never-seen", now_ms=T0) is None


async def test_remove_drops_entry_from_every_index(store: PresenceStore) -> None:
    await store.put(conn("s1", 1, character_id=10, zone="town"), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("s2", 1, character_id=10, zone="town"), now_ms=T0, ttl_ms=TTL)

    removal = await store.remove("s1", now_ms=T0)

    assert removal is not None and removal.character_left is False
    assert [e.socket_id for e in await store.entries_in_zone("town", now_ms=T0)] == ["s2"]
    assert [e.socket_id for e in (await store.entries_for_users([1], now_ms=T0))[1]] == ["s2"]
    assert await store.expired(now_ms=T0 + TTL) == ["s2"]
    last = await store.remove("s2", now_ms=T0)
    assert last is not None and last.character_left is True
    assert await store.user_status(1, now_ms=T0) == ("offline", "offline")


async def test_remove_after_expiry_returns_entry_and_character_left(
    store: PresenceStore,
) -> None:
    entry = conn("s1", character_id=10, zone="town")
    await store.put(entry, now_ms=T0, ttl_ms=TTL)

    removal = await store.remove("s1", now_ms=T0 + TTL + 30_000)

    assert removal == Removal(entry=entry, character_left=True)
    assert await store.expired(now_ms=T0 + TTL + 30_000) == []


async def test_expired_entries_are_invisible_to_every_read(store: PresenceStore) -> None:
    await store.put(conn("s1", 1, character_id=10, zone="town"), now_ms=T0, ttl_ms=TTL)
    await store.user_status(1, now_ms=T0)
    at_expiry = T0 + TTL

    assert len((await store.entries_for_users([1], now_ms=at_expiry - 1))[1]) == 1
    assert await store.entries_for_users([1], now_ms=at_expiry) == {1: []}
    assert await store.entries_in_zone("town", now_ms=at_expiry) == []
    assert await store.count_entries(now_ms=at_expiry) == 0
    assert await store.user_status(1, now_ms=at_expiry) == ("online", "offline")


async def test_expired_lists_only_expired_oldest_first_without_removing(
    store: PresenceStore,
) -> None:
    await store.put(conn("late"), now_ms=T0 + 20, ttl_ms=TTL)
    await store.put(conn("early"), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("live"), now_ms=T0 + 5_000, ttl_ms=TTL)

    assert await store.expired(now_ms=T0 + TTL - 1) == []
    assert await store.expired(now_ms=T0 + TTL + 20) == ["early", "late"]
    assert await store.expired(now_ms=T0 + TTL + 20, limit=1) == ["early"]
    assert await store.expired(now_ms=T0 + TTL + 20) == ["early", "late"]


async def test_user_status_reports_each_transition_once(store: PresenceStore) -> None:
    uid = 5

    assert await store.user_status(uid, now_ms=T0) == ("offline", "offline")
    await store.put(conn("s1", uid), now_ms=T0, ttl_ms=TTL)
    assert await store.user_status(uid, now_ms=T0) == ("offline", "online")
    assert await store.user_status(uid, now_ms=T0) == ("online", "online")

    await store.put(conn("s1", uid, away=True), now_ms=T0 + 1, ttl_ms=TTL)
    assert await store.user_status(uid, now_ms=T0 + 1) == ("online", "away")
    assert await store.user_status(uid, now_ms=T0 + 1) == ("away", "away")

    await store.put(conn("s2", uid), now_ms=T0 + 2, ttl_ms=TTL)
    assert await store.user_status(uid, now_ms=T0 + 2) == ("away", "online")

    await store.remove("s2", now_ms=T0 + 3)
    assert await store.user_status(uid, now_ms=T0 + 3) == ("online", "away")
    await store.remove("s1", now_ms=T0 + 4)
    assert await store.user_status(uid, now_ms=T0 + 4) == ("away", "offline")
    assert await store.user_status(uid, now_ms=T0 + 4) == ("offline", "offline")


async def test_put_connected_puts_the_entry_and_reports_the_status(store: PresenceStore) -> None:
    uid = 6
    entry = conn("s1", uid, zone="town")

    assert await store.put_connected(entry, now_ms=T0, ttl_ms=TTL) == ("offline", "online")
    assert await store.put_connected(conn("s2", uid), now_ms=T0 + 1, ttl_ms=TTL) == (
        "online",
        "online",
    )

    assert await store.entries_in_zone("town", now_ms=T0 + 2) == [entry]
    found = (await store.entries_for_users([uid], now_ms=T0 + 2))[uid]
    assert [e.socket_id for e in found] == ["s1", "s2"]
    assert await store.expired(now_ms=T0 + TTL) == ["s1"]


async def test_user_left_keeps_last_seen_and_reports_the_status(store: PresenceStore) -> None:
    uid = 8
    await store.put(conn("s1", uid), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("s2", uid), now_ms=T0, ttl_ms=TTL)
    assert await store.user_status(uid, now_ms=T0) == ("offline", "online")

    await store.remove("s1", now_ms=T0 + 1)
    assert await store.user_left(uid, T0 + 1, now_ms=T0 + 1) == ("online", "online")
    await store.remove("s2", now_ms=T0 + 2)
    assert await store.user_left(uid, T0 + 2, now_ms=T0 + 2) == ("online", "offline")
    assert await store.last_seen([uid]) == {uid: T0 + 2}


async def test_disconnect_removes_the_entry_then_keeps_last_seen_and_reports_the_status(
    store: PresenceStore,
) -> None:
    uid = 9
    first = replace(conn("s1", uid, character_id=90, zone="town"), active_at=T0 - 500)
    second = replace(conn("s2", uid, character_id=90, zone="town"), active_at=T0 - 100)
    await store.put_connected(first, now_ms=T0, ttl_ms=TTL)
    await store.put_connected(second, now_ms=T0, ttl_ms=TTL)

    assert await store.disconnect("s1", now_ms=T0 + 1) == (
        Removal(entry=first, character_left=False),
        ("online", "online"),
    )
    assert await store.last_seen([uid]) == {uid: T0 - 500}
    assert await store.disconnect("s1", now_ms=T0 + 1) is None
    assert await store.disconnect("s2", now_ms=T0 + 2) == (
        Removal(entry=second, character_left=True),
        ("online", "offline"),
    )
    assert await store.last_seen([uid]) == {uid: T0 - 100}
    assert await store.entries_for_users([uid], now_ms=T0 + 3) == {uid: []}
    assert await store.disconnect("never-seen", now_ms=T0) is None


async def test_push_activities_keeps_each_users_in_order(store: PresenceStore) -> None:
    items = [(11, {"n": n}) for n in range(3)] + [(12, {"n": 9}), (11, {"n": 3})]

    await store.push_activities(items)
    await store.push_activities([])

    assert await store.activities(11) == [{"n": 3}, {"n": 2}, {"n": 1}, {"n": 0}]
    assert await store.activities(12) == [{"n": 9}]


async def test_push_activities_keep_each_users_newest_100_across_batches(
    store: PresenceStore,
) -> None:
    items = [(20 + n % 2, {"n": n}) for n in range(1_101)]  # more than one batch of 500

    await store.push_activities(items)

    assert [a["n"] for a in await store.activities(20)] == list(range(1_100, 900, -2))
    assert [a["n"] for a in await store.activities(21)] == list(range(1_099, 899, -2))


async def test_put_many_refreshes_expiry_of_every_entry(store: PresenceStore) -> None:
    a, b = conn("a", 1, zone="town"), conn("b", 2, zone="town")
    await store.put(a, now_ms=T0, ttl_ms=TTL)
    await store.put(b, now_ms=T0, ttl_ms=TTL)

    await store.put_many([a, b], now_ms=T0 + 30_000, ttl_ms=TTL)
    await store.put_many([], now_ms=T0 + 30_000, ttl_ms=TTL)

    after_first_expiry = T0 + TTL + 1
    assert await store.expired(now_ms=after_first_expiry) == []
    assert await store.entries_in_zone("town", now_ms=after_first_expiry) == [a, b]
    assert await store.count_entries(now_ms=after_first_expiry) == 2
    assert await store.expired(now_ms=T0 + 30_000 + TTL) == ["a", "b"]


async def test_activities_keep_newest_100_newest_first(store: PresenceStore) -> None:
    for n in range(105):
        await store.push_activity(9, {"event": "chat:message", "n": n})

    kept = await store.activities(9)

    assert [a["n"] for a in kept] == list(range(104, 4, -1))
    assert kept[0] == {"event": "chat:message", "n": 104}
    assert await store.activities(10) == []


async def test_activities_honour_a_smaller_keep(store: PresenceStore) -> None:
    for n in range(5):
        await store.push_activity(9, {"n": n}, keep=2, ttl_s=60)

    assert await store.activities(9) == [{"n": 4}, {"n": 3}]


async def test_last_seen_returns_only_users_with_a_stored_value(store: PresenceStore) -> None:
    await store.set_last_seen(1, T0)
    await store.set_last_seen(2, T0 + 1)
    await store.set_last_seen(1, T0 + 2)

    assert await store.last_seen([1, 2, 3]) == {1: T0 + 2, 2: T0 + 1}
    assert await store.last_seen([]) == {}


async def test_redis_two_processes_racing_remove_get_exactly_one_removal(
    redis_pair: tuple[RedisPresenceStore, RedisPresenceStore],
) -> None:
    one, two = redis_pair
    for n in range(20):
        await one.put(conn(f"s{n}", n, character_id=n), now_ms=T0, ttl_ms=TTL)

    for n in range(20):
        results = await asyncio.gather(
            one.remove(f"s{n}", now_ms=T0 + TTL), two.remove(f"s{n}", now_ms=T0 + TTL)
        )
        claimed = [r for r in results if r is not None]
        assert len(claimed) == 1
        assert claimed[0].entry.socket_id == f"s{n}" and claimed[0].character_left


async def test_redis_two_processes_racing_user_status_see_transition_once(
    redis_pair: tuple[RedisPresenceStore, RedisPresenceStore],
) -> None:
    one, two = redis_pair
    await one.put(conn("s1", 4), now_ms=T0, ttl_ms=TTL)

    results = await asyncio.gather(one.user_status(4, now_ms=T0), two.user_status(4, now_ms=T0))

    assert sorted(results) == [("offline", "online"), ("online", "online")]


async def test_redis_every_presence_key_has_an_expiry(
    redis_pair: tuple[RedisPresenceStore, RedisPresenceStore],
) -> None:
    store, _ = redis_pair
    await store.put(conn("s1", 1, character_id=10, zone="town"), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("s2", 1, character_id=11, zone="forest"), now_ms=T0, ttl_ms=TTL)
    await store.put(conn("s2", 1, character_id=12, zone="cave", away=True), now_ms=T0, ttl_ms=TTL)
    await store.put_many([conn("s3", 2, zone="town")], now_ms=T0, ttl_ms=TTL)
    await store.user_status(1, now_ms=T0)
    await store.remove("s1", now_ms=T0)
    await store.set_last_seen(1, T0)
    await store.push_activity(1, {"event": "ping"})

    client = async_redis()
    names = [name async for name in client.scan_iter(match=key("presence", "*"))]
    ttls: dict[Any, int] = {name: await client.pttl(name) for name in names}

    assert len(names) >= 8
    assert all(ttl > 0 for ttl in ttls.values()), ttls


async def test_make_presence_store_follows_redis_url() -> None:
    with override_settings(REDIS_URL=""):
        assert isinstance(make_presence_store(), LocalPresenceStore)
    with override_settings(REDIS_URL="redis://127.0.0.1:6379/0"):
        assert isinstance(make_presence_store(), RedisPresenceStore)
