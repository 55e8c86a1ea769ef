"""Counts of every live server process, for ``GET /api/realtime/stats`` and ``realtime_stats``.

Each process writes its own counts to Redis every few seconds with an expiry of three
intervals, so a process that died drops out on its own; the reader adds them up. Without Redis
there is one process, and the counts are read from its runtime directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from typing import Any, cast

import orjson
from django.conf import settings

from realtime.redis_client import async_redis, key, redis_enabled, sync_redis
from realtime.runtime import Runtime, current_runtime, start_hooks

logger = logging.getLogger(__name__)


def report_interval_s() -> float:
    return max(0.5, min(5.0, float(settings.AETURNIS_PRESENCE_REFRESH_S)))


def process_counts(runtime: Runtime) -> dict[str, Any]:
    """This process's connections, users and rooms with their local member counts."""
    members = list(runtime.hub.members.values())
    users = {getattr(m, "user_id", 0) for m in members} - {0}
    return {
        "process": runtime.presence.process,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "startedAt": int((time.time() - (runtime.loop.time() - runtime.started_at)) * 1000),
        "connections": len(members),
        "userIds": sorted(users),
        "rooms": runtime.hub.room_counts(),
        "reportedAt": int(time.time() * 1000),
    }


async def report_loop(runtime: Runtime) -> None:
    if not redis_enabled():
        return
    while True:
        try:
            interval = report_interval_s()
            await async_redis().set(
                key("process", runtime.presence.process),
                orjson.dumps(process_counts(runtime)),
                px=int(interval * 3000),
            )
        except Exception:
            logger.exception("reporting process counts failed")
        await asyncio.sleep(report_interval_s())


def live_processes() -> list[dict[str, Any]]:
    """The latest counts of every live process (sync: views and commands)."""
    if not redis_enabled():
        runtime = current_runtime()
        return [process_counts(runtime)] if runtime is not None else []
    client = sync_redis()
    names = list(client.scan_iter(match=key("process", "*"), count=500))
    reports = cast(list[bytes | None], client.mget(names)) if names else []
    return [orjson.loads(raw) for raw in reports if raw]


def gather_stats() -> dict[str, Any]:
    """The contract's stats body, summed over every live process."""
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


start_hooks.append(report_loop)
