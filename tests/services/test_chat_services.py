"""Chat services against a real database: stored rows, history paging, blocks and mutes."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from django.core.management import call_command

from characters.models import Character
from chat import services
from chat.models import ChatMessage
from chat.services import HistoryQuery, NewMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Character]:
    call_command("seed_demo", verbosity=0)
    return {c.owner.username: c for c in Character.objects.select_related("owner", "zone")}


def new(character: Character, text: str, ms: int, **extra: Any) -> NewMessage:
    return NewMessage(
        channel=extra.pop("channel", "zone"),
        sender_id=character.owner_id,
        character_id=character.pk,
        sender_name=character.name,
        text=text,
        filtered=False,
        sent_ms=ms,
        zone_id=extra.pop("zone_id", character.zone_id),
        **extra,
    )


def test_a_batch_is_stored_in_order_with_its_ids(world: Any) -> None:
    alice = world["alice"]
    ids = services.chat_messages_store(messages=[new(alice, f"m{i}", 1_000 + i) for i in range(5)])
    assert len(ids) == 5 and ids == sorted(ids)
    rows = ChatMessage.objects.filter(pk__in=ids).order_by("pk")
    assert [r.text for r in rows] == [f"m{i}" for i in range(5)]
    assert all(r.sender_id == alice.owner_id and r.zone_id == alice.zone_id for r in rows)


def all_pages(query: HistoryQuery) -> list[int]:
    seen: list[int] = []
    before = None
    for _ in range(1000):
        page, before = services.chat_history(dataclasses.replace(query, before=before))
        assert [m.sent_ms for m in page] == sorted(m.sent_ms for m in page)  # oldest first
        seen = [m.id for m in page] + seen
        if before is None:
            return seen
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_history_never_skips_or_repeats_when_many_share_a_timestamp(world: Any, limit: int) -> None:
    alice, bob = world["alice"], world["bob"]
    rng = random.Random(limit)
    # 120 messages over only 5 distinct milliseconds, stored in shuffled batches.
    messages = [
        new(rng.choice((alice, bob)), f"t{i}", 5_000 + rng.randrange(5)) for i in range(120)
    ]
    rng.shuffle(messages)
    for start in range(0, len(messages), 17):
        services.chat_messages_store(messages=messages[start : start + 17])
    ids = all_pages(
        HistoryQuery(user_id=alice.owner_id, channel="zone", zone_id=alice.zone_id, limit=limit)
    )
    expected = list(ChatMessage.objects.order_by("sent_ms", "id").values_list("pk", flat=True))
    assert ids == expected and len(set(ids)) == 120


def test_history_leaves_out_blocked_senders_deleted_messages_and_other_zones(world: Any) -> None:
    alice, bob, carol = world["alice"], world["bob"], world["carol"]
    ids = services.chat_messages_store(
        messages=[
            new(alice, "from alice", 1),
            new(bob, "from bob", 2),
            new(carol, "from carol", 3),
            new(carol, "elsewhere", 4, zone_id=None),
        ]
    )
    services.message_delete(message_id=ids[2], by_id=None)
    page, cursor = services.chat_history(
        HistoryQuery(
            user_id=alice.owner_id,
            channel="zone",
            zone_id=alice.zone_id,
            blocked=frozenset({bob.owner_id}),
        )
    )
    assert [m.text for m in page] == ["from alice"] and cursor is None


def test_whisper_history_is_the_conversation_of_the_pair(world: Any) -> None:
    alice, bob, carol = world["alice"], world["bob"], world["carol"]
    services.chat_messages_store(
        messages=[
            new(alice, "a→b", 1, channel="whisper", zone_id=None, recipient_id=bob.owner_id),
            new(bob, "b→a", 2, channel="whisper", zone_id=None, recipient_id=alice.owner_id),
            new(carol, "c→a", 3, channel="whisper", zone_id=None, recipient_id=alice.owner_id),
        ]
    )
    pair, _ = services.chat_history(
        HistoryQuery(user_id=alice.owner_id, channel="whisper", with_user_id=bob.owner_id)
    )
    assert [m.text for m in pair] == ["a→b", "b→a"]
    everything, _ = services.chat_history(HistoryQuery(user_id=alice.owner_id, channel="whisper"))
    assert [m.text for m in everything] == ["a→b", "b→a", "c→a"]
    bobs, _ = services.chat_history(HistoryQuery(user_id=bob.owner_id, channel="whisper"))
    assert [m.text for m in bobs] == ["a→b", "b→a"]


def test_blocks_are_idempotent_and_refuse_self_and_unknown_users(world: Any) -> None:
    alice, bob = world["alice"], world["bob"]
    assert services.block_add(owner_id=alice.owner_id, blocked_id=bob.owner_id) == [bob.owner_id]
    assert services.block_add(owner_id=alice.owner_id, blocked_id=bob.owner_id) == [bob.owner_id]
    assert services.is_blocked_by(owner_id=alice.owner_id, user_id=bob.owner_id)
    assert not services.is_blocked_by(owner_id=bob.owner_id, user_id=alice.owner_id)
    with pytest.raises(services.ChatError):
        services.block_add(owner_id=alice.owner_id, blocked_id=alice.owner_id)
    with pytest.raises(services.UserNotFound):
        services.block_add(owner_id=alice.owner_id, blocked_id=10**9)
    assert services.block_remove(owner_id=alice.owner_id, blocked_id=bob.owner_id) == []


def test_mute_until_is_the_longest_running_mute(world: Any) -> None:
    alice = world["alice"]
    assert services.mute_until(alice.owner_id) is None
    short = services.mute_set(user_id=alice.owner_id, minutes=5, reason="", by_id=None)
    long = services.mute_set(user_id=alice.owner_id, minutes=60, reason="spam", by_id=None)
    assert services.mute_until(alice.owner_id) == long.until
    long.delete()
    assert services.mute_until(alice.owner_id) == short.until


def test_deleting_twice_reports_nothing_the_second_time(world: Any) -> None:
    (message_id,) = services.chat_messages_store(messages=[new(world["alice"], "x", 1)])
    assert services.message_delete(message_id=message_id, by_id=None) is not None
    assert services.message_delete(message_id=message_id, by_id=None) is None
