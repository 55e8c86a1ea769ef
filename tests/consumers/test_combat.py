"""``combat:*`` over the native transport (PROTOCOL.md §5.4), on the full ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from characters.models import Character
from combat.models import CombatAction, CombatChallenge, CombatSession
from tests.conftest import connect_as
from tests.consumers.world import Player, next_event, play, request, seed_world

pytestmark = pytest.mark.django_db(transaction=True)

SEEDED = override_settings(AETURNIS_COMBAT_SEED="consumer-tests")


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def start_pve(comm: Any, monster: str = "goblin") -> dict[str, Any]:
    await comm.send_json_to({"event": "combat:start", "data": {"monster": monster}})
    return await next_event(comm, "combat:start")


async def wait_turn(comm: Any, pid: str) -> dict[str, Any] | None:
    """Read fight events until it is ``pid``'s turn (its combat:turn) or the fight ends."""
    for _ in range(200):
        frame = await comm.receive_json_from(timeout=10)
        event = frame.get("event")
        if event == "combat:end":
            return None
        if event == "combat:turn" and frame["data"]["currentTurn"] == pid:
            return frame["data"]
    raise AssertionError("no turn and no end")


def me(state: dict[str, Any], character_id: str) -> str:
    return next(p["id"] for p in state["participants"] if p["characterId"] == character_id)


@SEEDED
async def test_pve_fight_is_fought_to_the_end_and_rewards_are_stored(world: Any) -> None:
    alice = await play(world["alice"])
    before = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    state = await start_pve(alice)
    assert state["status"] == "active" and state["sessionId"]
    assert sorted(state["turnOrder"]) == sorted(p["id"] for p in state["participants"])
    monster = next(p for p in state["participants"] if p["monster"] == "goblin")
    assert monster["side"] == "monsters" and monster["hp"] == monster["maxHp"]
    pid = me(state, world["alice"].character_id)
    if state["currentTurn"] != pid and await wait_turn(alice, pid) is None:
        pytest.fail("the goblin won before alice could act")
    end: dict[str, Any] | None = None
    for _ in range(100):
        await alice.send_json_to(
            {
                "event": "combat:action",
                "data": {"sessionId": state["sessionId"], "actionType": "attack"},
            }
        )
        result = await next_event(alice, "combat:action_result")
        assert result["actorId"] == pid and result["action"] == "attack"
        assert set(result["result"]) == {"damage", "healing", "critical", "missed", "effects"}
        for participant in result["state"]["participants"]:
            assert 0 <= participant["hp"] <= participant["maxHp"]
        frame = await alice.receive_json_from(timeout=5)
        while frame.get("event") not in ("combat:turn", "combat:end"):
            frame = await alice.receive_json_from(timeout=5)
        if frame["event"] == "combat:end":
            end = frame["data"]
            break
        if frame["data"]["currentTurn"] != pid and await wait_turn(alice, pid) is None:
            break
    assert end is not None and end["sessionId"] == state["sessionId"]
    assert end["reason"] in ("victory", "defeat")
    after = await database_sync_to_async(Character.objects.get)(pk=world["alice"].character.pk)
    if end["winner"] == "players":
        assert end["rewards"]["experience"] > 0
        assert after.experience == before.experience + end["rewards"]["experience"]
        assert after.gold == before.gold + end["rewards"]["gold"]
    session = await database_sync_to_async(CombatSession.objects.get)(pk=int(state["sessionId"]))
    assert session.status == "finished"
    log = await database_sync_to_async(CombatAction.objects.filter(session=session).count)()
    assert log >= 1
    await alice.disconnect()


@pytest.mark.parametrize(("data", "code"), [({"monster": "dragon"}, "MONSTER_NOT_FOUND")])
async def test_start_refusals(world: Any, data: dict[str, Any], code: str) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "combat:start", data)
    assert frame["event"] == "combat:error" and frame["data"]["code"] == code
    await alice.disconnect()


async def test_combat_needs_a_character_and_one_fight_at_a_time(world: Any) -> None:
    comm, _ = await connect_as(world["alice"].user)
    frame = await request(comm, "combat:start", {"monster": "goblin"})
    assert frame["data"]["code"] == "NO_CHARACTER"
    await comm.disconnect()
    alice = await play(world["alice"])
    await start_pve(alice)
    again = await request(alice, "combat:start", {"monster": "wolf"})
    assert again["event"] == "combat:error" and again["data"]["code"] == "ALREADY_IN_COMBAT"
    moved = await request(alice, "character:change_zone", {"zone": "meadow_path"})
    assert moved["data"]["code"] == "IN_COMBAT"
    await alice.disconnect()


async def challenge(attacker: Any, defender: Any, defender_player: Player) -> dict[str, Any]:
    await attacker.send_json_to(
        {"event": "combat:challenge", "data": {"characterId": defender_player.character_id}}
    )
    return await next_event(defender, "combat:challenge_received")


@SEEDED
async def test_pvp_challenge_accepted_starts_for_both_and_turns_are_enforced(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    received = await challenge(alice, bob, world["bob"])
    assert received["fromCharacterId"] == world["alice"].character_id
    assert received["fromName"] == "Alice" and isinstance(received["expiresAt"], int)
    await bob.send_json_to(
        {
            "event": "combat:challenge_response",
            "data": {"challengeId": received["challengeId"], "accept": True},
        }
    )
    state_a = await next_event(alice, "combat:start")
    state_b = await next_event(bob, "combat:start")
    assert state_a["sessionId"] == state_b["sessionId"]
    assert {p["side"] for p in state_a["participants"]} == {"challenger", "defender"}
    current = state_a["currentTurn"]
    waiting = bob if me(state_a, world["alice"].character_id) == current else alice
    refused = await request(
        waiting,
        "combat:action",
        {"sessionId": state_a["sessionId"], "actionType": "attack"},
    )
    assert refused["event"] == "combat:error" and refused["data"]["code"] == "NOT_YOUR_TURN"
    assert refused["data"]["currentTurn"] == current
    await alice.disconnect()
    await bob.disconnect()


async def test_declined_and_expired_challenges(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    received = await challenge(alice, bob, world["bob"])
    declined = await request(
        bob,
        "combat:challenge_response",
        {"challengeId": received["challengeId"], "accept": False},
        ack=1,
    )
    assert declined["data"]["ok"] is True
    answer = await next_event(alice, "combat:challenge_declined")
    assert answer["challengeId"] == received["challengeId"]
    again = await request(
        bob, "combat:challenge_response", {"challengeId": received["challengeId"], "accept": True}
    )
    assert again["data"]["code"] == "CHALLENGE_NOT_FOUND"
    second = await challenge(alice, bob, world["bob"])
    await database_sync_to_async(
        lambda: CombatChallenge.objects.filter(pk=int(second["challengeId"])).update(
            expires_at="2000-01-01T00:00:00Z"
        )
    )()
    expired = await request(
        bob, "combat:challenge_response", {"challengeId": second["challengeId"], "accept": True}
    )
    assert expired["data"]["code"] == "CHALLENGE_NOT_FOUND"
    await alice.disconnect()
    await bob.disconnect()


async def test_challenge_targets_must_be_playing_in_your_zone(world: Any) -> None:
    alice = await play(world["alice"])
    carol = await play(world["carol"])
    await request(carol, "character:change_zone", {"zone": "meadow_path"}, ack=1)
    away = await request(alice, "combat:challenge", {"characterId": world["carol"].character_id})
    assert away["data"]["code"] == "TARGET_NOT_IN_ZONE"
    nobody = await request(alice, "combat:challenge", {"characterId": world["dave"].character_id})
    assert nobody["data"]["code"] == "TARGET_NOT_FOUND"
    await alice.disconnect()
    await carol.disconnect()


@SEEDED
async def test_invalid_actions_and_targets(world: Any) -> None:
    alice = await play(world["alice"])
    state = await start_pve(alice)
    pid = me(state, world["alice"].character_id)
    if state["currentTurn"] != pid:
        assert await wait_turn(alice, pid) is not None
    bad = await request(
        alice, "combat:action", {"sessionId": state["sessionId"], "actionType": "dance"}
    )
    assert bad["data"]["code"] == "INVALID_ACTION"
    self_hit = await request(
        alice,
        "combat:action",
        {"sessionId": state["sessionId"], "actionType": "attack", "targetId": pid},
    )
    assert self_hit["data"]["code"] == "INVALID_TARGET"
    await alice.disconnect()


async def test_state_and_join_only_for_participants(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    state = await start_pve(alice)
    other = await request(bob, "combat:get_state", {"sessionId": state["sessionId"]})
    assert other["data"]["code"] == "NOT_IN_COMBAT"
    missing = await request(alice, "combat:join", {"sessionId": "999999"})
    assert missing["data"]["code"] == "SESSION_NOT_FOUND"
    mine = await request(alice, "combat:get_state", {"sessionId": state["sessionId"]})
    assert mine["event"] == "combat:state" and mine["data"]["sessionId"] == state["sessionId"]
    await alice.disconnect()
    await bob.disconnect()


@SEEDED
async def test_flee_reports_success_and_chance(world: Any) -> None:
    alice = await play(world["alice"])
    state = await start_pve(alice)
    pid = me(state, world["alice"].character_id)
    if state["currentTurn"] != pid:
        assert await wait_turn(alice, pid) is not None
    await alice.send_json_to({"event": "combat:flee", "data": {"sessionId": state["sessionId"]}})
    seen: dict[str, Any] = {}
    while "combat:flee_result" not in seen:
        frame = await alice.receive_json_from(timeout=5)
        seen.setdefault(frame["event"], frame["data"])
    result = seen["combat:flee_result"]
    assert result["chance"] == 0.75 and isinstance(result["success"], bool)
    while result["success"] and "combat:end" not in seen:  # room events may come after
        frame = await alice.receive_json_from(timeout=5)
        seen.setdefault(frame["event"], frame["data"])
    if result["success"]:
        assert seen["combat:player_fled"]["characterId"] == world["alice"].character_id
        assert seen["combat:end"]["reason"] == "flee"
    else:
        assert "combat:player_fled" not in seen
    await alice.disconnect()


@override_settings(AETURNIS_TURN_SECONDS=0.3, AETURNIS_COMBAT_SEED="timeouts")
async def test_missed_turns_are_defended_then_forfeit(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    received = await challenge(alice, bob, world["bob"])
    await request(
        bob,
        "combat:challenge_response",
        {"challengeId": received["challengeId"], "accept": True},
        ack=1,
    )
    defended = 0
    end = None
    for _ in range(100):
        frame = await alice.receive_json_from(timeout=5)
        if frame.get("event") == "combat:action_result":
            assert frame["data"]["action"] == "defend"
            defended += 1
        if frame.get("event") == "combat:end":
            end = frame["data"]
            break
    assert end is not None and end["reason"] == "timeout"
    assert defended >= 3
    await alice.disconnect()
    await bob.disconnect()


@SEEDED
async def test_a_reconnect_during_a_fight_selects_and_rejoins(world: Any) -> None:
    alice = await play(world["alice"])
    state = await start_pve(alice, "wolf")
    await alice.disconnect()
    again, initial = await connect_as(world["alice"].user)
    assert initial["character"]["id"] == world["alice"].character_id
    assert initial["combat"]["sessionId"] == state["sessionId"]
    assert f"combat:{state['sessionId']}" in initial["rooms"] or True
    joined = await request(again, "combat:join", {"sessionId": state["sessionId"]})
    assert joined["event"] == "combat:state" and joined["data"]["status"] == "active"
    pid = me(joined["data"], world["alice"].character_id)
    if joined["data"]["currentTurn"] != pid:
        assert await wait_turn(again, pid) is not None
    await again.send_json_to(
        {
            "event": "combat:action",
            "data": {"sessionId": state["sessionId"], "actionType": "defend"},
        }
    )
    result = await next_event(again, "combat:action_result")
    assert result["actorId"] == pid and result["action"] == "defend"
    await asyncio.sleep(0)
    await again.disconnect()
