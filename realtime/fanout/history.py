"""Per-room history for resume (PROTOCOL.md §8): entries, and the pure rule of what to replay."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    offset: int
    ts: int
    event: str
    data_json: str
    exclude: str = ""
    sender: int = 0


@dataclass(frozen=True, slots=True)
class Replay:
    """What a room missed after ``after``: ``recovered`` is False when the gap is too old."""

    recovered: bool
    offset: int
    entries: list[HistoryEntry] = field(default_factory=list)


def replay_from(entries: list[HistoryEntry], current: int, after: int, now: int) -> Replay:
    """Pure rule of §8: recover when every offset after ``after`` is still in the history."""
    ttl_ms = int(settings.AETURNIS_HISTORY_TTL_S * 1000)
    live = [e for e in entries if now - e.ts <= ttl_ms]
    if after == current:
        return Replay(True, current)
    if after > current or after < 0:
        return Replay(False, current)
    missed = [e for e in live if e.offset > after]
    recovered = bool(missed) and missed[0].offset == after + 1 and missed[-1].offset == current
    return Replay(recovered, current, missed if recovered else [])
