"""``character:*`` over the native transport (PROTOCOL.md §5.2), on the full ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from characters.models import Character, Zone
from tests.conftest import WS_TIMEOUT, connect_as
from tests.consumers.world import (
    Player,
    next_event,
    nothing_more,
    play,
    request,
    second_character,
    seed_world,
)

pytestmark = pytest.mark.django_db(transaction=True)

FAST = override_settings(AETURNIS_MAX_SPEED=100_000)


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def test_select_sends_the_character_and_announces_it_to_the_zone(world: Any) -> None:
    bob = await play(world["bob"])
    alice, _ = await connect_as(world["alice"].user)
    frame = await request(alice, "character:select", {"characterId": world["alice"].character_id})
    assert frame["event"] == "character:selected"
    character = frame["data"]["character"]
    assert character["id"] == world["alice"].character_id
    assert character["name"] == "Alice" and character["class"] == "warrior"
    assert character["level"] == 3 and character["zone"] == "starting_village"
    assert character["position"] == {"x": 0.0, "y": 0.0, "z": 0.0, "direction": 0.0}
    assert set(character["stats"]) == {"strength", "agility", "intelligence"}
    assert character["status"] == "idle" and character["guildId"] is not None
    assert character["maxHealth"] >= character["health"] > 0
    online = await next_event(bob, "character:online")
    assert online["characterId"] == world["alice"].character_id
    assert online["userId"] == world["alice"].user_id and online["name"] == "Alice"
    assert online["position"]["x"] == 0.0 and isinstance(online["timestamp"], int)
    await nothing_more(alice)
    await alice.disconnect()
    await bob.disconnect()


async def test_select_in_an_ack_answers_in_the_ack(world: Any) -> None:
    comm, _ = await connect_as(world["carol"].user)
    frame = await request(
        comm, "character:select", {"characterId": world["carol"].character_id}, ack=3
    )
    assert frame["ack"] == 3 and frame["data"]["ok"] is True
    assert frame["data"]["character"]["name"] == "Carol"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("character_id", "code"), [("999999", "CHARACTER_NOT_FOUND"), ("bob", "ACCESS_DENIED")]
)
async def test_select_refuses_unknown_and_other_peoples_characters(
    world: Any, character_id: str, code: str
) -> None:
    if character_id == "bob":
        character_id = world["bob"].character_id
    comm, _ = await connect_as(world["alice"].user)
    frame = await request(comm, "character:select", {"characterId": character_id})
    assert frame["event"] == "character:error"
    assert frame["data"]["code"] == code and frame["data"]["event"] == "character:select"
    await comm.disconnect()


async def test_select_with_a_non_numeric_id_is_an_invalid_payload(world: Any) -> None:
    comm, _ = await connect_as(world["alice"].user)
    frame = await request(comm, "character:select", {"characterId": "abc"})
    assert frame["event"] == "error" and frame["data"]["code"] == "INVALID_PAYLOAD"
    assert "characterId" in frame["data"]["fields"]
    await comm.disconnect()


@FAST
async def test_selecting_another_character_leaves_the_old_rooms(world: Any) -> None:
    alice_player = world["alice"]
    other = await database_sync_to_async(second_character)(alice_player, "Alys", "meadow_path")
    bob = await play(world["bob"])
    alice = await play(alice_player)
    await next_event(bob, "character:online")
    frame = await request(alice, "character:select", {"characterId": str(other.pk)})
    assert frame["data"]["character"]["zone"] == "meadow_path"
    offline = await next_event(bob, "character:offline")
    assert offline["characterId"] == alice_player.character_id
    # Bob's moves in the village no longer reach Alice.
    await bob.send_json_to({"event": "character:move", "data": {"x": 1, "y": 1}})
    await nothing_more(alice)
    await alice.disconnect()
    await bob.disconnect()


async def test_every_character_event_needs_a_selected_character(world: Any) -> None:
    comm, _ = await connect_as(world["alice"].user)
    cases = [
        ("character:move", {"x": 1, "y": 1}),
        ("character:change_zone", {"zone": "meadow_path"}),
        ("character:action", {"action": "gather"}),
        ("character:status_update", {"status": "afk"}),
    ]
    for event, data in cases:
        frame = await request(comm, event, data)
        assert frame["event"] == "character:error", frame
        assert frame["data"]["code"] == "NO_CHARACTER" and frame["data"]["event"] == event
    await comm.disconnect()


@FAST
async def test_accepted_move_reaches_the_zone_and_not_other_zones(world: Any) -> None:
    dave_char = world["dave"].character
    await database_sync_to_async(
        lambda: Character.objects.filter(pk=dave_char.pk).update(
            zone=Zone.objects.get(key="meadow_path")
        )
    )()
    bob = await play(world["bob"])
    dave = await play(world["dave"])
    alice = await play(world["alice"])
    await next_event(bob, "character:online")
    await alice.send_json_to({"event": "character:move", "data": {"x": 3, "y": 4, "direction": 90}})
    moved = await next_event(bob, "character:moved")
    assert moved["characterId"] == world["alice"].character_id
    assert moved["position"] == {"x": 3.0, "y": 4.0, "z": 0.0, "direction": 90.0}
    await nothing_more(alice)  # no reply on success
    await nothing_more(dave)
    for comm in (alice, bob, dave):
        await comm.disconnect()


@FAST
async def test_move_with_an_ack_is_acknowledged(world: Any) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "character:move", {"x": 1, "y": 2, "z": 3}, ack=8)
    assert frame == {"ack": 8, "data": {"ok": True}}
    await alice.disconnect()


@FAST
@pytest.mark.parametrize(
    ("target", "code"),
    [
        ({"x": 501, "y": 0}, "INVALID_MOVEMENT"),
        ({"x": 0, "y": -500.5}, "INVALID_MOVEMENT"),
        ({"x": 70, "y": 10}, "INVALID_MOVEMENT_SPEED"),
    ],
)
async def test_rejected_moves_carry_the_authoritative_position(
    world: Any, target: dict[str, Any], code: str
) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 10, "y": 10}, ack=1)
    frame = await request(alice, "character:move", target)
    assert frame["event"] == "character:error"
    assert frame["data"]["code"] == code
    assert frame["data"]["position"] == {"x": 10.0, "y": 10.0, "z": 0.0, "direction": 0.0}
    await alice.disconnect()


async def test_a_number_too_large_for_a_double_is_a_bad_frame(world: Any) -> None:
    alice = await play(world["alice"])
    await alice.send_to(text_data='{"event": "character:move", "data": {"x": 1e400, "y": 0}}')
    frame = await alice.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error" and frame["data"]["code"] == "BAD_FRAME"
    ok = await request(alice, "character:move", {"x": 0, "y": 0}, ack=1)
    assert ok["data"]["ok"] is True
    await alice.disconnect()


async def test_speed_is_measured_by_the_server_clock_since_the_selection(world: Any) -> None:
    alice = await play(world["alice"])  # AETURNIS_MAX_SPEED is 10 units/s
    frame = await request(alice, "character:move", {"x": 30, "y": 0})
    assert frame["data"]["code"] == "INVALID_MOVEMENT_SPEED"
    await asyncio.sleep(0.3)
    ok = await request(alice, "character:move", {"x": 2, "y": 0}, ack=2)
    assert ok["data"]["ok"] is True
    await alice.disconnect()


@FAST
async def test_only_accepted_moves_change_the_position(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 20, "y": 0}, ack=1)
    rejected = await request(alice, "character:move", {"x": 999, "y": 0})
    assert rejected["data"]["position"]["x"] == 20.0
    again = await request(alice, "character:move", {"x": 80, "y": 0})  # 60 from 20: teleport
    assert again["data"]["code"] == "INVALID_MOVEMENT_SPEED"
    assert again["data"]["position"]["x"] == 20.0
    await alice.disconnect()


@FAST
@override_settings(AETURNIS_MOVE_VIOLATIONS=3)
async def test_repeated_violations_end_the_connection_with_4003(world: Any) -> None:
    alice = await play(world["alice"])
    for _ in range(2):
        frame = await request(alice, "character:move", {"x": 900, "y": 0})
        assert frame["data"]["code"] == "INVALID_MOVEMENT"
    await alice.send_json_to({"event": "character:move", "data": {"x": 900, "y": 0}})
    kicked = await next_event(alice, "session:kicked")
    assert kicked["reason"]
    closed = await alice.receive_output(timeout=WS_TIMEOUT)
    while closed["type"] != "websocket.close":
        closed = await alice.receive_output(timeout=WS_TIMEOUT)
    assert closed["code"] == 4003 and closed["reason"] == "SUSPICIOUS_MOVEMENT"


@FAST
async def test_position_is_written_behind_when_the_connection_ends(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 12, "y": -7, "direction": 45}, ack=1)
    stored = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    assert (stored.pos_x, stored.pos_y) == (0.0, 0.0)  # not one write per move
    await alice.disconnect()
    stored = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    assert (stored.pos_x, stored.pos_y, stored.direction) == (12.0, -7.0, 45.0)


@FAST
async def test_a_connection_that_ends_without_a_move_writes_no_position(world: Any) -> None:
    alice = await play(world["alice"])
    character = world["alice"].character
    # Moved in the database meanwhile (an operator's fix): nothing live may overwrite it.
    await database_sync_to_async(Character.objects.filter(pk=character.pk).update)(
        pos_x=33.0, pos_y=44.0
    )
    await alice.disconnect()
    stored = await database_sync_to_async(Character.objects.get)(pk=character.pk)
    assert (stored.pos_x, stored.pos_y) == (33.0, 44.0)


@FAST
async def test_a_reconnect_that_does_not_move_writes_no_position(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 5, "y": 5}, ack=1)
    await alice.disconnect()  # the move is written here
    character = world["alice"].character
    stored = await database_sync_to_async(Character.objects.get)(pk=character.pk)
    assert (stored.pos_x, stored.pos_y) == (5.0, 5.0)
    # A change in the database from now on shows whether anything writes a position again.
    await database_sync_to_async(Character.objects.filter(pk=character.pk).update)(
        pos_x=33.0, pos_y=44.0
    )
    again = await play(world["alice"])  # the live position, already written, is carried
    await again.disconnect()
    stored = await database_sync_to_async(Character.objects.get)(pk=character.pk)
    assert (stored.pos_x, stored.pos_y) == (33.0, 44.0)


@FAST
async def test_reselecting_keeps_the_live_position(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 5, "y": 5}, ack=1)
    again = await connect_as(world["alice"].user)
    frame = await request(
        again[0], "character:select", {"characterId": world["alice"].character_id}
    )
    assert frame["data"]["character"]["position"]["x"] == 5.0
    await again[0].disconnect()
    await alice.disconnect()


async def test_change_zone_moves_rooms_and_tells_both_zones(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await next_event(alice, "character:online")
    frame = await request(bob, "character:change_zone", {"zone": "meadow_path"})
    assert frame["event"] == "character:zone_changed"
    assert frame["data"]["zone"] == "meadow_path"
    assert frame["data"]["position"]["x"] == -900.0  # meadow_path's spawn point
    left = await next_event(alice, "zone:character_left")
    assert left["characterId"] == world["bob"].character_id and left["zone"] == "starting_village"
    assert left["name"] == "Bob" and left["userId"] == world["bob"].user_id
    carol = await play(world["carol"])
    frame = await request(carol, "character:change_zone", {"zone": "meadow_path"})
    entered = await next_event(bob, "zone:character_entered")
    assert entered["characterId"] == world["carol"].character_id
    assert entered["zone"] == "meadow_path"
    stored = await database_sync_to_async(
        lambda: Character.objects.select_related("zone").get(pk=world["bob"].character.pk)
    )()
    assert stored.zone.key == "meadow_path" and stored.pos_x == -900.0
    for comm in (alice, bob, carol):
        await comm.disconnect()


@pytest.mark.parametrize(
    ("zone", "code"),
    [("dark_forest", "ZONE_NOT_ADJACENT"), ("nowhere", "ZONE_NOT_FOUND")],
)
async def test_change_zone_refusals(world: Any, zone: str, code: str) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "character:change_zone", {"zone": zone})
    assert frame["event"] == "character:error" and frame["data"]["code"] == code
    await alice.disconnect()


async def test_staff_may_change_to_any_zone(world: Any) -> None:
    def promote() -> None:
        world["alice"].user.is_staff = True
        world["alice"].user.save()

    await database_sync_to_async(promote)()
    alice = await play(world["alice"])
    frame = await request(alice, "character:change_zone", {"zone": "crystal_caves"})
    assert frame["event"] == "character:zone_changed"
    await alice.disconnect()


async def test_a_second_connection_of_the_character_follows_its_zone_change(world: Any) -> None:
    first = await play(world["alice"])
    second = await play(world["alice"])
    await request(first, "character:change_zone", {"zone": "meadow_path"}, ack=1)
    await asyncio.sleep(0.2)
    carol = await play(world["carol"])
    await request(carol, "character:change_zone", {"zone": "meadow_path"}, ack=1)
    # The second connection may also see its own character enter; Carol's entry must follow.
    names = [(await next_event(second, "zone:character_entered"))["name"]]
    if names[0] != "Carol":
        names.append((await next_event(second, "zone:character_entered"))["name"])
    assert names[-1] == "Carol" and set(names) <= {"Alice", "Carol"}
    for comm in (first, second, carol):
        await comm.disconnect()


async def test_action_result_broadcast_and_cooldown(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await next_event(alice, "character:online")
    frame = await request(
        alice, "character:action", {"action": "attack", "targetId": world["bob"].character_id}
    )
    assert frame["event"] == "character:action_result"
    assert frame["data"]["action"] == "attack"
    assert frame["data"]["result"]["targetId"] == world["bob"].character_id
    assert frame["data"]["result"]["distance"] == 0.0
    seen = await next_event(bob, "character:action_broadcast")
    assert seen["characterId"] == world["alice"].character_id and seen["action"] == "attack"
    again = await request(
        alice, "character:action", {"action": "attack", "targetId": world["bob"].character_id}
    )
    assert again["data"]["code"] == "ACTION_ON_COOLDOWN"
    assert isinstance(again["data"]["retryAfterMs"], int)
    assert 0 < again["data"]["retryAfterMs"] <= 1000
    # Cooldowns are per action.
    other = await request(alice, "character:action", {"action": "gather"})
    assert other["event"] == "character:action_result"
    await alice.disconnect()
    await bob.disconnect()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"action": "fly"}, None),
        ({"action": "attack"}, "TARGET_REQUIRED"),
        ({"action": "attack", "targetId": "999999"}, "TARGET_NOT_IN_ZONE"),
        ({"action": "use_item"}, "BAD_PARAMETERS"),
    ],
)
async def test_invalid_actions(world: Any, data: dict[str, Any], reason: str | None) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "character:action", data)
    assert frame["event"] == "character:error"
    assert frame["data"]["code"] == "INVALID_ACTION"
    assert frame["data"].get("reason") == reason
    await alice.disconnect()


async def test_cast_spell_spends_mana(world: Any) -> None:
    alice = await play(world["alice"])
    before = world["alice"].character.mana
    frame = await request(alice, "character:action", {"action": "cast_spell"})
    assert frame["data"]["result"]["mana"] == before - 10
    stored = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    assert stored.mana == before - 10
    await alice.disconnect()


async def test_status_update_reaches_the_zone_and_is_stored(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await next_event(alice, "character:online")
    frame = await request(
        alice, "character:status_update", {"status": "lfg", "message": " dungeon?\x07 "}, ack=5
    )
    assert frame == {"ack": 5, "data": {"ok": True}}
    changed = await next_event(bob, "character:status_changed")
    assert changed["status"] == "lfg" and changed["message"] == "dungeon?"
    assert changed["characterId"] == world["alice"].character_id
    stored = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    assert stored.status == "lfg"
    await alice.disconnect()
    await bob.disconnect()


@pytest.mark.parametrize("data", [{"status": "sleeping"}, {"status": "afk", "message": "x" * 101}])
async def test_invalid_status(world: Any, data: dict[str, Any]) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "character:status_update", data)
    assert frame["event"] == "character:error" and frame["data"]["code"] == "INVALID_STATUS"
    await alice.disconnect()


async def test_offline_only_when_the_last_connection_of_the_character_ends(world: Any) -> None:
    bob = await play(world["bob"])
    first = await play(world["alice"])
    second = await play(world["alice"])
    await next_event(bob, "character:online")
    await next_event(bob, "character:online")
    await first.disconnect()
    await nothing_more(bob)
    await second.disconnect()
    offline = await next_event(bob, "character:offline")
    assert offline["characterId"] == world["alice"].character_id
    assert offline["userId"] == world["alice"].user_id and isinstance(offline["timestamp"], int)
    await bob.disconnect()


@FAST
@override_settings(AETURNIS_POSITION_FLUSH_S=0.1)
async def test_positions_are_written_behind_periodically(world: Any) -> None:
    alice = await play(world["alice"])
    await request(alice, "character:move", {"x": 7, "y": 8}, ack=1)
    for _ in range(40):
        stored = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
        if (stored.pos_x, stored.pos_y) == (7.0, 8.0):
            break
        await asyncio.sleep(0.05)
    assert (stored.pos_x, stored.pos_y) == (7.0, 8.0)
    await alice.disconnect()


@FAST
async def test_graceful_shutdown_writes_every_live_position(world: Any) -> None:
    from realtime.runtime.shutdown import close_all
    from realtime.transport.app import app_runtime

    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await request(alice, "character:move", {"x": -3, "y": 4}, ack=1)
    await request(bob, "character:move", {"x": 6, "y": -2}, ack=1)
    await close_all(await app_runtime())
    rows = await database_sync_to_async(
        lambda: {c.name: (c.pos_x, c.pos_y) for c in Character.objects.all()}
    )()
    assert rows["Alice"] == (-3.0, 4.0) and rows["Bob"] == (6.0, -2.0)
    assert (await next_event(alice, "system:shutdown"))["reconnectAfterMs"] >= 0
