"""Room streams: positions, per-room history for resume, and the pure rule of what to replay.

Every room event has a position in its room's stream: an ``offset`` (1, 2, 3, … per room) in
an ``epoch`` (a short random string, PROTOCOL.md §8). The epoch changes when the stream's
history is lost — a Redis restart without persistence, or a new process in the embedded
default — so a client that resumes with an offset of another epoch is told ``recovered:
false`` instead of being handed events it cannot place. Every event also carries ``seq``, a
number that grows with every event published anywhere (one counter per bus), which orders the
events of all rooms as every process receives them (the Socket.IO recovery offset). It starts
at the microseconds of the clock when its counter is created, so it grows across restarts too.

``missed_since`` is the pure rule of Socket.IO connection state recovery: which events of a
connection's rooms came after the last one it saw, given only that one's ``seq``.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field

from django.conf import settings


def new_epoch() -> str:
    """A fresh epoch: 8 characters, unlikely ever to repeat."""
    return secrets.token_urlsafe(6)


def seq_base() -> int:
    """Where a new bus-wide seq counter starts: the clock's microseconds (below 2**53 until
    the year 2255), so seqs keep growing when a counter is lost and made again."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a room's stream is: its last offset (0 before any event) and its epoch."""

    offset: int
    epoch: str

    def wire(self) -> dict[str, int | str]:
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    offset: int
    ts: int
    event: str
    data_json: str
    exclude: str = ""
    sender: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Replay:
    """What a room missed after ``after``: ``recovered`` is False when the gap is too old or
    the epoch is not the client's."""

    recovered: bool
    offset: int
    epoch: str
    entries: list[HistoryEntry] = field(default_factory=list)


def replay_from(
    entries: list[HistoryEntry],
    current: StreamPosition,
    after: int,
    now: int,
    epoch: str | None = None,
) -> Replay:
    """Pure rule of §8: recover when the client's epoch is the stream's (or the client saw
    nothing yet: offset 0 without an epoch) and every offset after ``after`` is still in the
    history."""
    offset = current.offset
    if epoch is not None and epoch != current.epoch:
        return Replay(False, offset, current.epoch)
    if after == offset:
        return Replay(True, offset, current.epoch)
    if after > offset or after < 0:
        return Replay(False, offset, current.epoch)
    ttl_ms = int(settings.AETURNIS_HISTORY_TTL_S * 1000)
    missed = [e for e in entries if e.offset > after and now - e.ts <= ttl_ms]
    recovered = bool(missed) and missed[0].offset == after + 1 and missed[-1].offset == offset
    return Replay(recovered, offset, current.epoch, missed if recovered else [])


@dataclass(frozen=True, slots=True)
class RoomStream:
    """A room's stream at one instant: its position, the ``seq`` of its last event (0 when
    unknown or none) and the events its history still holds, oldest first."""

    position: StreamPosition
    last_seq: int
    entries: list[HistoryEntry]


def missed_since(
    after_seq: int,
    floors: dict[str, StreamPosition | None],
    streams: dict[str, RoomStream],
) -> list[tuple[str, HistoryEntry]] | None:
    """What a connection missed in its rooms after the event ``after_seq``, merged in seq
    order; None when some of it is no longer known.

    ``floors`` holds, per room of the connection, the room's position when it joined (or when a
    resume last covered it): events at or below it were never to be sent. Above it, a room's
    events went out in seq order, the rooms interleaved as the bus delivered them, so the
    connection had every one with a seq up to ``after_seq`` and none after. A room is known
    when its epoch is still the floor's and either nothing came after ``after_seq`` (its last
    seq) or its history reaches back to the floor or to an event at or before ``after_seq``.
    Events the connection skipped (its own, blocked senders) are the caller's to leave out.
    """
    missed: list[tuple[str, HistoryEntry]] = []
    for room, floor in floors.items():
        stream = streams.get(room)
        if stream is None or floor is None:
            return None
        position, entries = stream.position, stream.entries
        if floor.epoch != position.epoch or floor.offset > position.offset:
            return None
        if floor.offset == position.offset:
            continue
        last_seq = stream.last_seq
        if not last_seq and entries and entries[-1].offset == position.offset:
            last_seq = entries[-1].seq
        if last_seq and last_seq <= after_seq:
            continue
        if not entries or entries[-1].offset != position.offset:
            return None
        if any(b.offset != a.offset + 1 for a, b in itertools.pairwise(entries)):
            return None
        oldest = entries[0]
        if oldest.offset > floor.offset + 1 and oldest.seq > after_seq:
            return None
        missed.extend((room, e) for e in entries if e.offset > floor.offset and e.seq > after_seq)
    missed.sort(key=lambda item: item[1].seq)
    return missed
