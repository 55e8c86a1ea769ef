"""Socket.IO connection state recovery, the pure parts: which events a connection missed given
the last seq it saw (merge order, floors, epochs, history coverage), what a CONNECT asks for,
which ends are recoverable, and the records (PROTOCOL.md §1.2)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.connection.session import recoverable_end
from realtime.core.constants import CloseCode, CloseReason
from realtime.fanout.history import (
    HistoryEntry,
    RoomStream,
    StreamPosition,
    missed_since,
    seq_base,
)
from realtime.handlers.recovery import RecoveryRequest, recovery_request
from realtime.state.recovery import LocalRecoveryStore, RecoveryRecord

E = "ep0ch"


def entry(offset: int, seq: int, **extra: object) -> HistoryEntry:
    return HistoryEntry(offset, 0, "ev", "{}", seq=seq, **extra)  # type: ignore[arg-type]


def stream(*pairs: tuple[int, int], offset: int | None = None, epoch: str = E) -> RoomStream:
    """A room stream holding (offset, seq) entries; its position is the last offset."""
    entries = [entry(o, s) for o, s in pairs]
    last = offset if offset is not None else (entries[-1].offset if entries else 0)
    last_seq = entries[-1].seq if entries and entries[-1].offset == last else 0
    return RoomStream(StreamPosition(last, epoch), last_seq, entries)


def at(offset: int, epoch: str = E) -> StreamPosition:
    return StreamPosition(offset, epoch)


def seqs(missed: list[tuple[str, HistoryEntry]] | None) -> list[tuple[str, int]]:
    assert missed is not None
    return [(room, e.seq) for room, e in missed]


def test_missed_events_of_several_rooms_are_merged_in_seq_order() -> None:
    streams = {
        "zone:a": stream((1, 10), (2, 12), (3, 15), (4, 17)),
        "user:1": stream((1, 11), (2, 16)),
        "global:chat": stream((1, 13), (2, 14)),
    }
    floors = {"zone:a": at(0), "user:1": at(0), "global:chat": at(0)}
    # The client saw seq 12 last: of every room, what came after it.
    assert seqs(missed_since(12, floors, streams)) == [
        ("global:chat", 13),
        ("global:chat", 14),
        ("zone:a", 15),
        ("user:1", 16),
        ("zone:a", 17),
    ]


def test_events_at_or_below_a_rooms_floor_are_never_replayed() -> None:
    streams = {"zone:a": stream((1, 10), (2, 12), (3, 15))}
    # Joined at offset 2: 1 and 2 were published before the connection was in the room.
    assert seqs(missed_since(0, {"zone:a": at(2)}, streams)) == [("zone:a", 15)]


def test_nothing_missed_is_an_empty_replay() -> None:
    streams = {"zone:a": stream((1, 10), (2, 12)), "user:1": stream(offset=0)}
    assert missed_since(12, {"zone:a": at(0), "user:1": at(0)}, streams) == []


def test_a_quiet_room_whose_history_expired_is_fine_when_its_last_seq_was_seen() -> None:
    quiet = RoomStream(at(5), 40, [])  # five events long ago, the history gone
    assert missed_since(41, {"guild:1": at(1)}, {"guild:1": quiet}) == []
    # Unless the client's last seq is older than the room's last event: it cannot be known.
    assert missed_since(39, {"guild:1": at(1)}, {"guild:1": quiet}) is None


def test_a_history_that_no_longer_reaches_back_is_not_recovered() -> None:
    trimmed = {"zone:a": stream((5, 50), (6, 60))}  # 3 and 4 are gone
    assert missed_since(25, {"zone:a": at(2)}, trimmed) is None
    # ... unless what is gone was seen: the oldest kept event is older than the client's seq.
    assert seqs(missed_since(55, {"zone:a": at(2)}, trimmed)) == [("zone:a", 60)]
    # ... or the history still starts right after the floor.
    assert seqs(missed_since(25, {"zone:a": at(4)}, trimmed)) == [("zone:a", 50), ("zone:a", 60)]


def test_a_changed_epoch_or_an_unknown_floor_is_not_recovered() -> None:
    streams = {"zone:a": stream((1, 10), epoch="new")}
    assert missed_since(0, {"zone:a": at(0, "old")}, streams) is None
    assert missed_since(0, {"zone:a": None}, {"zone:a": stream((1, 10))}) is None
    assert missed_since(0, {"zone:a": at(0)}, {}) is None


def test_a_floor_beyond_the_stream_or_a_history_with_holes_is_not_recovered() -> None:
    assert missed_since(0, {"zone:a": at(9)}, {"zone:a": stream((1, 10))}) is None
    holes = {"zone:a": RoomStream(at(3), 30, [entry(1, 10), entry(3, 30)])}
    assert missed_since(0, {"zone:a": at(0)}, holes) is None
    stale = {"zone:a": RoomStream(at(4), 0, [entry(1, 10), entry(2, 20)])}  # not current
    assert missed_since(0, {"zone:a": at(0)}, stale) is None


@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=40),
)
def test_replay_after_any_seq_is_exactly_the_later_events_of_every_room(
    publishes: list[str], seen: int
) -> None:
    """Events published to rooms in some order (seq 1, 2, …): the replay after seq ``seen`` is
    every later event, in publishing order, whatever the interleaving."""
    offsets: dict[str, int] = {}
    per_room: dict[str, list[HistoryEntry]] = {"a": [], "b": [], "c": []}
    for seq, room in enumerate(publishes, start=1):
        offsets[room] = offsets.get(room, 0) + 1
        per_room[room].append(entry(offsets[room], seq))
    streams = {
        room: RoomStream(at(offsets.get(room, 0)), es[-1].seq if es else 0, es)
        for room, es in per_room.items()
    }
    missed = missed_since(seen, dict.fromkeys(per_room, at(0)), streams)
    expected = [(room, seq) for seq, room in enumerate(publishes, start=1) if seq > seen]
    assert seqs(missed) == expected


def test_seqs_start_at_the_clocks_microseconds() -> None:
    before = int(time.time() * 1_000_000)
    assert before - 1_000_000 <= seq_base() < 2**53


@pytest.mark.parametrize(
    ("auth", "request_"),
    [
        (
            {"pid": "p1", "offset": "1767225700000123", "token": "t"},
            RecoveryRequest("p1", 1767225700000123),
        ),
        ({"pid": "p1"}, RecoveryRequest("p1", 0)),  # never got a room event
        ({"pid": "p1", "offset": "Q91h5M7"}, None),  # another server's offset
        ({"pid": "p1", "offset": 12}, None),
        ({"pid": "p1", "offset": "١٢"}, None),  # digits, but not ASCII ones
        ({"pid": "p1", "offset": "9" * 20}, None),
        ({"pid": "", "offset": "1"}, None),
        ({"pid": "p" * 65}, None),
        ({"pid": 5}, None),
        ({"token": "t"}, None),
    ],
)
def test_what_a_connect_payload_asks_to_recover(
    auth: dict[str, object], request_: RecoveryRequest | None
) -> None:
    assert recovery_request(auth) == request_


@pytest.mark.parametrize(
    ("code", "reason", "recoverable"),
    [
        (None, None, True),  # the transport went away
        (CloseCode.SERVICE_RESTART, CloseReason.SERVER_RESTART, True),
        (CloseCode.SLOW_CONSUMER, CloseReason.SLOW_CONSUMER, True),
        (CloseCode.NORMAL, CloseReason.PING_TIMEOUT, True),
        (CloseCode.NORMAL, "CLIENT_CLOSE", True),  # engine close: the client reconnects
        (CloseCode.INTERNAL_ERROR, CloseReason.SEND_FAILED, True),
        (CloseCode.NORMAL, CloseReason.CLIENT_DISCONNECT, False),  # Socket.IO DISCONNECT
        (CloseCode.UNAUTHENTICATED, CloseReason.TOKEN_REVOKED, False),
        (CloseCode.FORBIDDEN, CloseReason.KICKED, False),
        (CloseCode.RATE_LIMITED, "CONNECTION_RATE_LIMITED", False),
    ],
)
def test_which_ends_are_recovered(code: int | None, reason: str | None, recoverable: bool) -> None:
    assert recoverable_end(code, reason) is recoverable


def record(socket_id: str = "s1") -> RecoveryRecord:
    return RecoveryRecord(
        user_id=7,
        socket_id=socket_id,
        rooms={"user:7": at(3), "zone:a": StreamPosition(0, "x"), "guild:1": None},
        character_id=12,
    )


def test_records_round_trip_and_malformed_ones_are_none() -> None:
    assert RecoveryRecord.decode(record().encode()) == record()
    for raw in (
        b"",
        b"[]",
        b'{"u":1}',
        b'{"u":"x","s":"s","r":{}}',
        b'{"u":1,"s":"s","r":{"a":[1]}}',
    ):
        assert RecoveryRecord.decode(raw) is None


def test_a_record_taken_over_refuses_the_old_connections_writes() -> None:
    async def scenario() -> None:
        store = LocalRecoveryStore()
        assert await store.save("p", record("old"), 10)
        assert await store.save("p", record("old"), 10)  # its own, again
        assert await store.save("p", record("new"), 10, claim=True)  # recovered elsewhere
        assert not await store.save("p", record("old"), 10)
        await store.discard("p", "old")  # not its record any more
        loaded = await store.load("p")
        assert loaded is not None and loaded.socket_id == "new"
        await store.discard("p", "new")
        assert await store.load("p") is None

    asyncio.run(scenario())


def test_records_expire_and_can_be_given_more_time() -> None:
    async def scenario() -> None:
        store = LocalRecoveryStore()
        await store.save("p", record(), 0.05)
        await store.expire(["p", "unknown"], 5)
        await asyncio.sleep(0.1)
        assert await store.load("p") is not None
        await store.expire(["p"], 0.01)
        await asyncio.sleep(0.05)
        assert await store.load("p") is None

    asyncio.run(scenario())
