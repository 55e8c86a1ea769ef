"""Which rooms travel on shard channels, and the resume rule with epochs (PROTOCOL.md §4, §8)."""

from __future__ import annotations

from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from realtime.fanout.bus import SHARDS, room_channel, shard_channels
from realtime.fanout.history import HistoryEntry, StreamPosition, new_epoch, replay_from
from realtime.fanout.rooms import is_sharded

EPOCH = "e1"


def test_account_and_character_rooms_travel_on_shard_channels() -> None:
    assert is_sharded("user:12") and is_sharded("character:7")
    for room in ("zone:starting_village", "guild:3", "combat:9", "global:chat"):
        assert not is_sharded(room)


@given(st.integers(min_value=1, max_value=10**12))
def test_every_user_room_maps_to_one_of_the_shard_channels(user_id: int) -> None:
    assert room_channel(f"user:{user_id}") in shard_channels()
    assert len(shard_channels()) == SHARDS


def test_other_rooms_have_a_channel_of_their_own() -> None:
    assert room_channel("zone:a") != room_channel("zone:b")
    assert room_channel("zone:a") not in shard_channels()


def test_epochs_are_short_and_do_not_repeat() -> None:
    epochs = {new_epoch() for _ in range(1000)}
    assert len(epochs) == 1000 and all(len(e) == 8 for e in epochs)


def at(offset: int, epoch: str = EPOCH) -> StreamPosition:
    return StreamPosition(offset, epoch)


def entries(offsets: range, ts: int = 1_000_000) -> list[HistoryEntry]:
    return [HistoryEntry(o, ts, "e", "{}") for o in offsets]


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_replay_returns_everything_after_the_clients_offset() -> None:
    replay = replay_from(entries(range(1, 11)), at(10), 7, 1_000_000)
    assert replay.recovered and [e.offset for e in replay.entries] == [8, 9, 10]


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_up_to_date_client_recovers_with_nothing_to_replay() -> None:
    replay = replay_from(entries(range(1, 11)), at(10), 10, 1_000_000)
    assert replay.recovered and replay.entries == []


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_gap_older_than_the_history_is_not_recovered() -> None:
    replay = replay_from(entries(range(6, 11)), at(10), 3, 1_000_000)
    assert not replay.recovered and replay.entries == []


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_offset_from_the_future_is_not_recovered() -> None:
    assert not replay_from(entries(range(1, 4)), at(3), 9, 1_000_000).recovered


@override_settings(AETURNIS_HISTORY_TTL_S=1)
def test_entries_older_than_the_ttl_do_not_count() -> None:
    replay = replay_from(entries(range(1, 4), ts=0), at(3), 1, 10_000)
    assert not replay.recovered


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_an_offset_of_the_same_epoch_is_recovered() -> None:
    replay = replay_from(entries(range(1, 11)), at(10), 7, 1_000_000, epoch=EPOCH)
    assert replay.recovered and replay.epoch == EPOCH


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_an_offset_of_another_epoch_is_not_recovered_even_if_it_looks_covered() -> None:
    # After a Redis restart the stream starts again at 1 in a new epoch: offset 3 of the old
    # epoch says nothing about what the client has of the new one.
    replay = replay_from(entries(range(1, 11)), at(10, "new"), 3, 1_000_000, epoch="old")
    assert not replay.recovered and replay.entries == []
    assert (replay.offset, replay.epoch) == (10, "new")


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_a_client_that_saw_nothing_recovers_in_any_epoch() -> None:
    replay = replay_from(entries(range(1, 4)), at(3, "any"), 0, 1_000_000)
    assert replay.recovered and [e.offset for e in replay.entries] == [1, 2, 3]
