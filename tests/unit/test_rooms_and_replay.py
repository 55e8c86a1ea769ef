"""Room → group mapping and the resume rule (PROTOCOL.md §4, §8)."""

from __future__ import annotations

import re

from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from realtime.fanout.bus import HistoryEntry, replay_from
from realtime.fanout.rooms import group_name

VALID_GROUP = re.compile(r"^[A-Za-z0-9_\-.]{1,99}$")


def test_simple_room_maps_readably() -> None:
    assert group_name("zone:starting_village") == "room.zone.starting_village"


@given(st.text(min_size=1, max_size=300))
def test_every_room_maps_to_a_valid_group_name(room: str) -> None:
    assert VALID_GROUP.match(group_name(room))


def test_rooms_differing_only_in_replaced_characters_get_different_groups() -> None:
    assert group_name("zone:a b") != group_name("zone:a*b")
    assert group_name("x" * 200) != group_name("x" * 201)


def entries(offsets: range, ts: int = 1_000_000) -> list[HistoryEntry]:
    return [HistoryEntry(o, ts, "e", "{}") for o in offsets]


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_replay_returns_everything_after_the_clients_offset() -> None:
    replay = replay_from(entries(range(1, 11)), 10, 7, 1_000_000)
    assert replay.recovered and [e.offset for e in replay.entries] == [8, 9, 10]


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_up_to_date_client_recovers_with_nothing_to_replay() -> None:
    replay = replay_from(entries(range(1, 11)), 10, 10, 1_000_000)
    assert replay.recovered and replay.entries == []


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_gap_older_than_the_history_is_not_recovered() -> None:
    replay = replay_from(entries(range(6, 11)), 10, 3, 1_000_000)
    assert not replay.recovered and replay.entries == []


@override_settings(AETURNIS_HISTORY_TTL_S=600)
def test_offset_from_the_future_is_not_recovered() -> None:
    assert not replay_from(entries(range(1, 4)), 3, 9, 1_000_000).recovered


@override_settings(AETURNIS_HISTORY_TTL_S=1)
def test_entries_older_than_the_ttl_do_not_count() -> None:
    replay = replay_from(entries(range(1, 4), ts=0), 3, 1, 10_000)
    assert not replay.recovered
