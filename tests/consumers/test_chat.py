"""``chat:*`` over the native transport (PROTOCOL.md §5.3), on the full ASGI app."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings
from django.utils import timezone

from chat.models import Block, ChatMessage, Mute, ProfanityWord
from chat.services import message_delete
from tests.conftest import connect_as
from tests.consumers.world import (
    Player,
    ask,
    next_event,
    no_event,
    play,
    request,
    seed_world,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def say(comm: Any, channel: str, text: str, ack: int | None = None) -> dict[str, Any]:
    return await request(comm, "chat:message", {"channel": channel, "message": text}, ack)


async def test_zone_message_is_stored_then_delivered_to_the_zone(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    sent = await say(alice, "zone", "  hello\x07 village  ")
    assert sent["event"] == "chat:message_sent"
    assert sent["data"]["channel"] == "zone" and isinstance(sent["data"]["serverTimestamp"], int)
    got = await next_event(bob, "chat:message")
    assert got == {
        "id": sent["data"]["id"],
        "userId": world["alice"].user_id,
        "characterId": world["alice"].character_id,
        "characterName": "Alice",
        "channel": "zone",
        "message": "hello village",
        "serverTimestamp": sent["data"]["serverTimestamp"],
    }
    row = await database_sync_to_async(ChatMessage.objects.get)(pk=int(sent["data"]["id"]))
    assert row.text == "hello village" and row.channel == "zone" and row.zone_id is not None
    await no_event(alice, "chat:message")  # the sender gets no copy
    await alice.disconnect()
    await bob.disconnect()


async def test_global_reaches_other_zones_and_guild_only_members(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    carol = await play(world["carol"])
    await request(carol, "character:change_zone", {"zone": "meadow_path"}, ack=1)
    await say(alice, "global", "hi world", ack=2)
    assert (await next_event(carol, "chat:message"))["message"] == "hi world"
    await say(alice, "guild", "hi guild", ack=3)
    got = await next_event(bob, "chat:message")
    while got["channel"] != "guild":
        got = await next_event(bob, "chat:message")
    assert got["message"] == "hi guild"
    await no_event(carol, "chat:message")
    refused = await say(carol, "guild", "let me in")
    assert refused["event"] == "chat:error" and refused["data"]["code"] == "NOT_IN_GUILD"
    for comm in (alice, bob, carol):
        await comm.disconnect()


INVISIBLE = ["\u3164" * 20, "\u2800" * 20, "\u200b\u0300\ufe0f\U000e0041"]  # issue #19


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01", "x" * 501, *INVISIBLE])
async def test_invalid_messages_are_refused_and_not_stored(world: Any, text: str) -> None:
    alice = await play(world["alice"])
    frame = await say(alice, "zone", text)
    assert frame["event"] == "chat:error" and frame["data"]["code"] == "INVALID_MESSAGE"
    assert await database_sync_to_async(ChatMessage.objects.count)() == 0
    await alice.disconnect()


@pytest.mark.parametrize("text", ["   ", *INVISIBLE])
async def test_a_whisper_that_shows_as_nothing_is_refused_and_not_stored(
    world: Any, text: str
) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    frame = await request(alice, "chat:whisper", {"targetName": "Bob", "message": text})
    assert frame["event"] == "chat:error" and frame["data"]["code"] == "INVALID_MESSAGE"
    await no_event(bob, "chat:whisper_received")
    assert await database_sync_to_async(ChatMessage.objects.count)() == 0
    await alice.disconnect()
    await bob.disconnect()


async def test_messages_need_a_character(world: Any) -> None:
    comm, _ = await connect_as(world["alice"].user)
    frame = await say(comm, "global", "hello")
    assert frame["data"]["code"] == "NO_CHARACTER"
    await comm.disconnect()


async def test_profanity_is_masked_and_the_list_reloads_when_changed(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await say(alice, "zone", "what a grobble day", ack=1)
    assert (await next_event(bob, "chat:message"))["message"] == "what a grobble day"
    await database_sync_to_async(ProfanityWord.objects.create)(word="grobble")
    await asyncio.sleep(0.1)
    await say(alice, "zone", "what a GR0BBLE day", ack=2)
    assert (await next_event(bob, "chat:message"))["message"] == "what a ******* day"
    await alice.disconnect()
    await bob.disconnect()


async def test_moderators_keep_the_original_of_a_masked_message_players_never_see_it(
    world: Any,
) -> None:
    await database_sync_to_async(ProfanityWord.objects.create)(word="grobble")
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    sent = await say(alice, "zone", "  what a \x07GR0BBLE   day ", ack=1)
    assert (await next_event(bob, "chat:message"))["message"] == "what a ******* day"
    row = await database_sync_to_async(ChatMessage.objects.get)(pk=int(sent["data"]["id"]))
    # After hygiene (control character gone, spaces collapsed), before masking.
    assert row.text == "what a ******* day" and row.original_text == "what a GR0BBLE day"
    await say(alice, "zone", "a clean one", ack=2)
    clean = await database_sync_to_async(ChatMessage.objects.get)(text="a clean one")
    assert clean.original_text == ""  # nothing masked: nothing kept twice
    history = await request(bob, "chat:history", {"channel": "zone"}, ack=3)
    texts = [m["message"] for m in history["data"]["messages"]]
    assert texts[-2:] == ["what a ******* day", "a clean one"]
    assert "GR0BBLE" not in str(history)
    await alice.disconnect()
    await bob.disconnect()


@override_settings(AETURNIS_PROFANITY_MODE="reject")
async def test_profanity_is_refused_in_reject_mode(world: Any) -> None:
    await database_sync_to_async(ProfanityWord.objects.create)(word="grobble")
    alice = await play(world["alice"])
    frame = await say(alice, "zone", "grobble!")
    assert frame["data"]["code"] == "CONTENT_BLOCKED"
    assert await database_sync_to_async(ChatMessage.objects.count)() == 0
    await alice.disconnect()


async def test_a_muted_user_gets_muted_with_until(world: Any) -> None:
    alice = await play(world["alice"])
    until = timezone.now() + timedelta(minutes=5)
    await database_sync_to_async(Mute.objects.create)(user=world["alice"].user, until=until)
    await asyncio.sleep(0.1)
    frame = await say(alice, "zone", "can I talk?")
    assert frame["data"]["code"] == "MUTED"
    assert frame["data"]["until"] == int(until.timestamp() * 1000)
    later, _ = await connect_as(world["alice"].user)  # a new connection knows it too
    await request(later, "character:select", {"characterId": world["alice"].character_id})
    assert (await say(later, "global", "and now?"))["data"]["code"] == "MUTED"
    await database_sync_to_async(Mute.objects.all().delete)()
    await asyncio.sleep(0.1)
    assert (await say(alice, "zone", "free again", ack=9))["data"]["ok"] is True
    await alice.disconnect()
    await later.disconnect()


async def test_whisper_by_id_and_by_name_reaches_every_connection_of_the_target(
    world: Any,
) -> None:
    alice = await play(world["alice"])
    bob_one, _ = await connect_as(world["bob"].user)
    bob_two, _ = await connect_as(world["bob"].user)
    sent = await request(
        alice, "chat:whisper", {"targetUserId": world["bob"].user_id, "message": "psst"}
    )
    assert sent["event"] == "chat:whisper_sent"
    assert sent["data"]["targetUserId"] == world["bob"].user_id
    for comm in (bob_one, bob_two):
        got = await next_event(comm, "chat:whisper_received")
        assert got["id"] == sent["data"]["id"] and got["message"] == "psst"
        assert got["fromUserId"] == world["alice"].user_id and got["fromName"] == "Alice"
        assert got["toUserId"] == world["bob"].user_id
    by_name = await request(alice, "chat:whisper", {"targetName": "bOB", "message": "again"})
    assert by_name["data"]["targetUserId"] == world["bob"].user_id
    for comm in (alice, bob_one, bob_two):
        await comm.disconnect()


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ({"targetUserId": "999999"}, "USER_NOT_FOUND"),
        ({"targetName": "Nobody"}, "USER_NOT_FOUND"),
        ({"targetName": "Carol"}, "USER_OFFLINE"),
    ],
)
async def test_whisper_refusals(world: Any, target: dict[str, str], code: str) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "chat:whisper", {**target, "message": "hi"})
    assert frame["event"] == "chat:error" and frame["data"]["code"] == code
    await alice.disconnect()


async def test_whisper_to_a_user_who_blocked_you_fails_with_user_blocked(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    blocked = await request(bob, "chat:block", {"userId": world["alice"].user_id})
    assert blocked == {"event": "chat:blocked", "data": {"userId": world["alice"].user_id}}
    frame = await request(alice, "chat:whisper", {"targetName": "Bob", "message": "hey"})
    assert frame["data"]["code"] == "USER_BLOCKED"
    await no_event(bob, "chat:whisper_received")
    await alice.disconnect()
    await bob.disconnect()


async def test_blocked_users_messages_emotes_and_typing_never_arrive(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    bob_again = await play(world["bob"])
    carol = await play(world["carol"])
    await request(bob, "chat:block", {"userId": world["alice"].user_id}, ack=1)
    await asyncio.sleep(0.1)  # the other connection adopts the list through the bus
    await say(alice, "zone", "can you hear me", ack=2)
    await request(alice, "chat:emote", {"emote": "wave"}, ack=3)
    await request(alice, "chat:typing", {"channel": "zone", "typing": True}, ack=4)
    assert (await next_event(carol, "chat:message"))["message"] == "can you hear me"
    assert (await next_event(carol, "chat:emote"))["emote"] == "wave"
    assert (await next_event(carol, "chat:typing_status"))["typing"] is True
    for comm in (bob, bob_again):
        while not await comm.receive_nothing(timeout=0.3):
            frame = await comm.receive_json_from()
            if "room" in frame:
                assert frame["data"].get("userId") != world["alice"].user_id, frame
    listed = await request(bob, "chat:blocklist", {})
    assert listed == {"event": "chat:blocklist", "data": {"userIds": [world["alice"].user_id]}}
    unblocked = await request(bob, "chat:unblock", {"userId": world["alice"].user_id})
    assert unblocked["event"] == "chat:unblocked"
    await say(alice, "zone", "now?", ack=5)
    assert (await next_event(bob, "chat:message"))["message"] == "now?"
    for comm in (alice, bob, bob_again, carol):
        await comm.disconnect()


async def test_block_unknown_user_is_user_not_found(world: Any) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "chat:block", {"userId": "999999"})
    assert frame["event"] == "chat:error" and frame["data"]["code"] == "USER_NOT_FOUND"
    assert await database_sync_to_async(Block.objects.count)() == 0
    await alice.disconnect()


async def test_emote_reaches_the_zone_including_the_sender(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await alice.send_json_to({"event": "chat:emote", "data": {"emote": "bow", "target": "Bob"}})
    for comm in (alice, bob):
        got = await next_event(comm, "chat:emote")
        assert got["emote"] == "bow" and got["target"] == "Bob"
        assert got["characterName"] == "Alice" and got["userId"] == world["alice"].user_id
    bad = await request(alice, "chat:emote", {"emote": "moonwalk"})
    assert bad["data"]["code"] == "INVALID_EMOTE"
    await alice.disconnect()
    await bob.disconnect()


async def test_history_pages_backwards_with_a_cursor(world: Any) -> None:
    alice = await play(world["alice"])
    for i in range(7):
        await say(alice, "zone", f"line {i}", ack=i + 1)
    first = await ask(alice, "chat:history", {"channel": "zone", "limit": 3}, "chat:history")
    assert [m["message"] for m in first["messages"]] == ["line 4", "line 5", "line 6"]
    second = await ask(
        alice,
        "chat:history",
        {"channel": "zone", "limit": 3, "before": first["nextCursor"]},
        "chat:history",
    )
    assert [m["message"] for m in second["messages"]] == ["line 1", "line 2", "line 3"]
    third = await ask(
        alice,
        "chat:history",
        {"channel": "zone", "limit": 3, "before": second["nextCursor"]},
        "chat:history",
    )
    assert [m["message"] for m in third["messages"]] == ["line 0"]
    assert third["nextCursor"] is None
    await alice.disconnect()


@pytest.mark.parametrize(
    "data",
    [
        {"channel": "zone", "limit": 0},
        {"channel": "zone", "limit": 101},
        {"channel": "zone", "before": "not-a-cursor"},
    ],
)
async def test_history_refuses_bad_limits_and_cursors(world: Any, data: dict[str, Any]) -> None:
    alice = await play(world["alice"])
    frame = await request(alice, "chat:history", data)
    assert frame["event"] == "chat:error" and frame["data"]["code"] == "INVALID_REQUEST"
    await alice.disconnect()


async def test_whisper_history_between_two_users(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    await request(alice, "chat:whisper", {"targetName": "Bob", "message": "one"}, ack=1)
    await request(bob, "chat:whisper", {"targetName": "Alice", "message": "two"}, ack=2)
    page = await ask(
        alice,
        "chat:history",
        {"channel": "whisper", "withUserId": world["bob"].user_id},
        "chat:history",
    )
    assert [(m["message"], m["userId"]) for m in page["messages"]] == [
        ("one", world["alice"].user_id),
        ("two", world["bob"].user_id),
    ]
    await alice.disconnect()
    await bob.disconnect()


@override_settings(AETURNIS_TYPING_TIMEOUT_S=0.4)
async def test_typing_is_throttled_expires_and_clears_on_disconnect(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    for ack in (1, 2, 3):
        await request(alice, "chat:typing", {"channel": "zone", "typing": True}, ack=ack)
    first = await next_event(bob, "chat:typing_status")
    assert first["typing"] is True and first["userId"] == world["alice"].user_id
    assert first["channel"] == "zone" and first["characterId"] == world["alice"].character_id
    stopped = await next_event(bob, "chat:typing_status")  # no second true: throttled
    assert stopped["typing"] is False
    await request(alice, "chat:typing", {"channel": "zone", "typing": True}, ack=4)
    assert (await next_event(bob, "chat:typing_status"))["typing"] is True
    await alice.disconnect()
    assert (await next_event(bob, "chat:typing_status"))["typing"] is False
    await bob.disconnect()


async def test_a_deleted_message_is_announced_to_its_room(world: Any) -> None:
    alice = await play(world["alice"])
    bob = await play(world["bob"])
    sent = await say(alice, "zone", "oops", ack=1)
    await next_event(bob, "chat:message")
    await database_sync_to_async(message_delete)(message_id=int(sent["data"]["id"]), by_id=None)
    deleted = await next_event(bob, "chat:message_deleted")
    assert deleted == {"id": sent["data"]["id"], "channel": "zone"}
    page = await ask(bob, "chat:history", {"channel": "zone"}, "chat:history")
    assert page["messages"] == []
    await alice.disconnect()
    await bob.disconnect()
