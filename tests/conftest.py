"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

# Tests drive the server's signal handling explicitly; never replace pytest's own handlers.
os.environ.setdefault("AETURNIS_NO_SIGNAL_HANDLERS", "1")

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime.core.redis_client import key, redis_enabled, sync_redis
from realtime.runtime import lookup as runtime_module

DEMO_PASSWORD = "aeturnis-demo"
WS_TIMEOUT = 5


@pytest.fixture(scope="session", autouse=True)
def _close_db_pools(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """Close psycopg pools before the test database is dropped (pooled sessions block DROP)."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        connections.close_all()
        # Connections opened by database_sync_to_async live in asgiref's executor thread.
        from asgiref.sync import SyncToAsync

        SyncToAsync.single_thread_executor.submit(connections.close_all).result()
        for conn in connections.all():
            close_pool = getattr(conn, "close_pool", None)
            if close_pool is not None:
                close_pool()


@pytest.fixture(autouse=True)
async def _fresh_runtime() -> Any:
    """Every test starts with no runtime, no limiter state and (with Redis) no app keys."""
    runtime_module._runtime = None
    runtime_module._lock = None
    from realtime.core.health import DATABASE, REDIS
    from realtime.state import stores

    stores._local = stores._LocalExpiring()
    REDIS.reset()
    DATABASE.reset()
    if redis_enabled():
        client = sync_redis()
        for k in client.scan_iter(match=key("*"), count=1000):
            client.delete(k)
    yield
    await runtime_module.stop_runtime()
    runtime_module._runtime = None


@pytest.fixture
def make_user(db: Any) -> Callable[..., Any]:
    counter = {"n": 0}

    def make(username: str | None = None, **extra: Any) -> Any:
        counter["n"] += 1
        name = username or f"user{counter['n']}"
        return get_user_model().objects.create_user(username=name, password=DEMO_PASSWORD, **extra)

    return make


def access_for(user: Any) -> str:
    return str(AccessToken.for_user(user))


def tokens_for(user: Any) -> tuple[str, str]:
    refresh = RefreshToken.for_user(user)
    return str(refresh.access_token), str(refresh)


async def connect(
    path: str = "/ws/game/",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    client: tuple[str, int] = ("127.0.0.1", 40000),
) -> WebsocketCommunicator:
    """A communicator on the full ASGI application (middleware included), connected."""
    from aeturnis.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)
    comm.scope["client"] = list(client)
    connected, _ = await comm.connect(timeout=WS_TIMEOUT)
    assert connected
    return comm


async def connect_as(user: Any, **kwargs: Any) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Connect with a query-string token and return the communicator and ``sync:initial``."""
    comm = await connect(f"/ws/game/?token={access_for(user)}", **kwargs)
    initial = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert initial["event"] == "sync:initial", initial
    return comm, initial["data"]


@pytest.fixture
async def ws_cleanup() -> AsyncIterator[list[WebsocketCommunicator]]:
    """Register communicators here to have them disconnected after the test."""
    comms: list[WebsocketCommunicator] = []
    yield comms
    for comm in comms:
        with contextlib.suppress(Exception):
            await comm.disconnect(timeout=WS_TIMEOUT)
