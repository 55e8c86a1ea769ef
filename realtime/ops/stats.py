"""Counts of every live server process, for ``GET /api/realtime/stats`` and ``realtime_stats``.

Each process writes its own counts to Redis (``realtime.runtime.report``) with an expiry, so a
process that died drops out on its own; this module adds them up. Without Redis there is one
process, and the counts are read from its runtime directly.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from realtime.core.redis_client import key, redis_enabled, sync_redis
from realtime.runtime.lookup import current_runtime


def live_processes() -> list[dict[str, Any]]:
    """The latest counts of every live process (sync: views and commands)."""
    if not redis_enabled():
        runtime = current_runtime()
        return [runtime.counts()] if runtime is not None else []
    client = sync_redis()
    names = list(client.scan_iter(match=key("process", "*"), count=500))
    reports = cast(list[bytes | None], client.mget(names)) if names else []
    return [orjson.loads(raw) for raw in reports if raw]


def gather_stats(processes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The contract's stats body, summed over every live process (``processes``: reports
    already read with ``live_processes``)."""
    if processes is None:
        processes = live_processes()
    rooms: Counter[str] = Counter()
    users: set[int] = set()
    for report in processes:
        rooms.update(report.get("rooms", {}))
        users.update(report.get("userIds", []))
    now = int(time.time() * 1000)
    oldest = min((p.get("startedAt", now) for p in processes), default=now)
    return {
        "connectedClients": sum(p.get("connections", 0) for p in processes),
        "connectedUsers": len(users),
        "processes": [
            {
                "process": p.get("process"),
                "host": p.get("host"),
                "pid": p.get("pid"),
                "connections": p.get("connections", 0),
                "users": len(p.get("userIds", [])),
                "rooms": len(p.get("rooms", {})),
                "reportedAt": p.get("reportedAt"),
            }
            for p in processes
        ],
        "rooms": [
            {"roomName": room, "clientCount": count} for room, count in sorted(rooms.items())
        ],
        "metrics": {"roomCount": len(rooms), "processCount": len(processes)},
        "uptime": max(0, (now - oldest) // 1000),
        "timestamp": now,
    }


def _datetime_of_ms(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int | float) else None


def process_details(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per process: its counts, its rooms (busiest first) and its times as datetimes, for the
    admin's "Online now" page."""
    details = []
    for p in sorted(processes, key=lambda p: (str(p.get("host")), int(p.get("pid") or 0))):
        rooms = sorted(p.get("rooms", {}).items(), key=lambda item: (-item[1], item[0]))
        details.append(
            {
                "process": p.get("process"),
                "host": p.get("host"),
                "pid": p.get("pid"),
                "connections": p.get("connections", 0),
                "users": len(p.get("userIds", [])),
                "rooms": rooms,
                "started": _datetime_of_ms(p.get("startedAt")),
                "reported": _datetime_of_ms(p.get("reportedAt")),
            }
        )
    return details
