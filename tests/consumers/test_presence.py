"""``presence:*`` and connection presence (PROTOCOL.md §5.5) on the full ASGI app."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from realtime.state.presence.store import ConnEntry
from realtime.transport.app import app_runtime
from tests.conftest import connect_as
from tests.consumers.world import Player, ask, next_event, nothing_more, play, request, seed_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def test_presence_get_answers_every_id(world: Any) -> None:
    alice = await play(world["alice"])
    bob, _ = await connect_as(world["bob"].user)
    ids = [world["alice"].user_id, world["bob"].user_id, world["carol"].user_id, "999999"]
    frame = await request(bob, "presence:get", {"userIds": ids})
    assert frame["event"] == "presence:state"
    users = frame["data"]["users"]
    assert set(users) == set(ids)
    assert users[world["alice"].user_id]["status"] == "online"
    assert users[world["alice"].user_id]["characterId"] == world["alice"].character_id
    assert users[world["alice"].user_id]["zone"] == "starting_village"
    assert isinstance(users[world["alice"].user_id]["lastSeen"], int)
    assert users[world["bob"].user_id]["status"] == "online"
    assert users[world["bob"].user_id]["characterId"] is None
    assert users["999999"] == {
        "status": "offline",
        "lastSeen": None,
        "characterId": None,
        "zone": None,
    }
    await alice.disconnect()
    frame = await request(bob, "presence:get", {"userIds": [world["alice"].user_id]})
    gone = frame["data"]["users"][world["alice"].user_id]
    assert gone["status"] == "offline" and gone["lastSeen"] is not None
    await bob.disconnect()


async def test_presence_get_limits_the_number_of_ids(world: Any) -> None:
    bob, _ = await connect_as(world["bob"].user)
    frame = await request(bob, "presence:get", {"userIds": [str(i) for i in range(1, 102)]})
    assert frame["event"] == "presence:error" and frame["data"]["code"] == "INVALID_REQUEST"
    await bob.disconnect()


async def test_presence_zone_lists_characters_once_each(world: Any) -> None:
    alice = await play(world["alice"])
    alice_again = await play(world["alice"])
    bob = await play(world["bob"])
    await request(bob, "character:change_zone", {"zone": "meadow_path"}, ack=1)
    listing = await ask(alice_again, "presence:zone", {}, "presence:zone")
    assert listing["zone"] == "starting_village"
    assert listing["count"] == 1
    assert listing["characters"] == [
        {
            "characterId": world["alice"].character_id,
            "name": "Alice",
            "userId": world["alice"].user_id,
            "status": "online",
        }
    ]
    for comm in (alice, alice_again, bob):
        await comm.disconnect()


async def test_presence_zone_needs_a_character(world: Any) -> None:
    comm, _ = await connect_as(world["alice"].user)
    frame = await request(comm, "presence:zone", {})
    assert frame["event"] == "presence:error" and frame["data"]["code"] == "NO_CHARACTER"
    await comm.disconnect()


@override_settings(AETURNIS_AWAY_AFTER_S=0.6, AETURNIS_PRESENCE_REFRESH_S=0.1)
async def test_idle_user_turns_away_pings_do_not_count_and_an_event_wakes(world: Any) -> None:
    bob = await play(world["bob"])
    alice = await play(world["alice"])  # both in Dawnguard
    started = time.monotonic()
    for _ in range(6):
        await alice.send_json_to({"event": "ping", "data": {}})
        await asyncio.sleep(0.15)
    changed = await alice_changed(bob, world, "away")
    assert changed == {
        "userId": world["alice"].user_id,
        "characterId": world["alice"].character_id,
        "status": "away",
        "timestamp": changed["timestamp"],
    }
    assert time.monotonic() - started >= 0.6
    state = await ask(bob, "presence:get", {"userIds": [world["alice"].user_id]}, "presence:state")
    assert state["users"][world["alice"].user_id]["status"] == "away"
    await alice.send_json_to({"event": "character:status_update", "data": {"status": "idle"}})
    back = await alice_changed(bob, world, "online")
    assert back["status"] == "online" and back["userId"] == world["alice"].user_id
    await alice.disconnect()
    await bob.disconnect()


async def alice_changed(comm: Any, world: Any, status: str) -> dict[str, Any]:
    for _ in range(20):
        changed = await next_event(comm, "presence:changed")
        if changed["userId"] == world["alice"].user_id and changed["status"] == status:
            return changed
    raise AssertionError(f"no presence:changed to {status} for alice")


async def test_guild_hears_a_member_arrive_and_go_offline(world: Any) -> None:
    bob = await play(world["bob"])
    alice = await play(world["alice"])
    arrived = await alice_changed(bob, world, "online")
    assert arrived["characterId"] == world["alice"].character_id
    await alice.disconnect()
    await alice_changed(bob, world, "offline")
    await bob.disconnect()


async def test_a_character_that_joins_a_guild_while_played_joins_its_room(world: Any) -> None:
    from characters.models import Guild, GuildMembership
    from realtime.fanout import rooms

    carol = await play(world["carol"])
    guild = await database_sync_to_async(Guild.objects.get)(name="Dawnguard")
    await database_sync_to_async(GuildMembership.objects.create)(
        guild=guild, character=world["carol"].character
    )
    for _ in range(50):
        runtime = await app_runtime()
        if rooms.guild_room(guild.pk) in runtime.hub.rooms and any(
            getattr(m, "playing", None) and m.playing.name == "Carol"
            for m in runtime.hub.local_members(rooms.guild_room(guild.pk))
        ):
            break
        await asyncio.sleep(0.05)
    await (await app_runtime()).broadcast.to_room(
        rooms.guild_room(guild.pk), "test:probe", {"text": "welcome"}
    )
    assert (await next_event(carol, "test:probe")) == {"text": "welcome"}
    await database_sync_to_async(
        GuildMembership.objects.filter(character=world["carol"].character).delete
    )()
    for _ in range(50):
        if "guild:" + str(guild.pk) not in {r for r in (await app_runtime()).hub.rooms}:
            break
        await asyncio.sleep(0.05)
    await (await app_runtime()).broadcast.to_room(
        rooms.guild_room(guild.pk), "test:probe", {"text": "bye"}
    )
    await nothing_more(carol)
    await carol.disconnect()


async def test_non_guild_members_hear_no_presence_changes(world: Any) -> None:
    carol = await play(world["carol"])
    alice = await play(world["alice"])
    await next_event(carol, "character:online")
    await alice.disconnect()
    assert (await next_event(carol, "character:offline"))["characterId"] == world[
        "alice"
    ].character_id
    await nothing_more(carol)
    await carol.disconnect()


@override_settings(AETURNIS_PRESENCE_REFRESH_S=0.1, AETURNIS_PRESENCE_TTL_S=0.5)
async def test_entries_of_a_dead_process_expire_and_their_zone_hears_offline(world: Any) -> None:
    bob = await play(world["bob"])
    runtime = await app_runtime()
    ghost = ConnEntry(
        socket_id="ghost-socket",
        user_id=world["dave"].user.pk,
        character_id=world["dave"].character.pk,
        character_name="Dave",
        zone="starting_village",
        guild_id=None,
        away=False,
        active_at=int(time.time() * 1000),
        process="killed-process",
    )
    await runtime.presence.store.put(ghost, now_ms=int(time.time() * 1000), ttl_ms=500)
    frame = await request(bob, "presence:get", {"userIds": [world["dave"].user_id]})
    assert frame["data"]["users"][world["dave"].user_id]["status"] == "online"
    offline = await next_event(bob, "character:offline")
    assert offline["characterId"] == world["dave"].character_id
    frame = await request(bob, "presence:get", {"userIds": [world["dave"].user_id]})
    assert frame["data"]["users"][world["dave"].user_id]["status"] == "offline"
    await bob.disconnect()


@override_settings(AETURNIS_PRESENCE_REFRESH_S=0.1, AETURNIS_PRESENCE_TTL_S=0.5)
async def test_live_connections_are_refreshed_and_never_expire(world: Any) -> None:
    bob = await play(world["bob"])
    alice = await play(world["alice"])
    await asyncio.sleep(1.2)  # more than two TTLs
    state = await ask(bob, "presence:get", {"userIds": [world["alice"].user_id]}, "presence:state")
    assert state["users"][world["alice"].user_id]["status"] == "online"
    await alice.disconnect()
    await bob.disconnect()


async def test_recent_activity_is_kept_for_moderators(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:change_zone", {"zone": "nowhere"})
    runtime = await app_runtime()
    activities = await runtime.presence.activities(world["alice"].user.pk)
    events = [a["event"] for a in activities]
    assert events[:3] == ["character:change_zone", "character:select", "connect"]
    assert activities[0]["detail"] == {"ok": False, "code": "ZONE_NOT_FOUND"}
    assert activities[1]["detail"]["characterId"] == world["alice"].character_id
    assert all(isinstance(a["at"], int) for a in activities)
    await alice.disconnect()


async def test_activities_are_written_behind_within_a_moment(world: Any) -> None:
    """``record`` only buffers; the runtime's writer puts them in the store shortly after,
    oldest first, with no read asking for them."""
    alice = await play(world["alice"])
    store = (await app_runtime()).presence.store
    events: list[str] = []
    for _ in range(40):
        events = [a["event"] for a in await store.activities(world["alice"].user.pk)]
        if events:
            break
        await asyncio.sleep(0.05)
    assert events[:2] == ["character:select", "connect"], events
    await alice.disconnect()
