"""Liveness and readiness probes (PROTOCOL.md §7).

``/readyz`` answers within about a second whatever the dependencies do: it opens a connection
of its own to the database (never the pool's, which may be stuck) and pings Redis, each with a
one-second timeout. A failed check is reported to the dependency's health (one WARNING per
outage) rather than logged per probe, and the 503 is not logged as a server error: being
unready is its answer, not a fault.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from realtime.core.db import database_failed, probe_database
from realtime.core.health import REDIS
from realtime.core.redis_client import REDIS_ERRORS, redis_enabled, sync_redis


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        probe_database()
        checks["database"] = "ok"
    except Exception as exc:
        database_failed("readiness", exc)
        checks["database"] = "unreachable"
    if redis_enabled():
        try:
            sync_redis().ping()
            checks["redis"] = "ok"
        except REDIS_ERRORS as exc:
            REDIS.failed("readiness", exc)
            checks["redis"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
    # Django's request logger writes every 5xx as an ERROR; this one is an expected answer.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
