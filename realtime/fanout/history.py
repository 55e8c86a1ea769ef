"""Room streams: positions, per-room history for resume, and the pure rule of what to replay.

Every room event has a position in its room's stream: an ``offset`` (1, 2, 3, … per room) in
an ``epoch`` (a short random string, PROTOCOL.md §8). The epoch changes when the stream's
history is lost — a Redis restart without persistence, or a new process in the embedded
default — so a client that resumes with an offset of another epoch is told ``recovered:
false`` instead of being handed events it cannot place. Every event also carries ``seq``, a
number that grows with every event published anywhere (one counter per bus), which orders the
events of all rooms as every process receives them (the Socket.IO recovery offset).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.conf import settings


def new_epoch() -> str:
    """A fresh epoch: 8 characters, unlikely ever to repeat."""
    return secrets.token_urlsafe(6)


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
