"""One runtime per process and loop, however many connections arrive at once."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from realtime.fanout.bus import LocalBus
from realtime.transport.app import app_runtime


@override_settings(REDIS_URL="")
async def test_concurrent_first_callers_share_one_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    started = 0
    original = LocalBus.start

    async def slow_start(self: LocalBus) -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(0.05)  # like connecting to Redis: the first caller waits here
        await original(self)

    monkeypatch.setattr(LocalBus, "start", slow_start)
    runtimes = await asyncio.gather(*(app_runtime() for _ in range(20)))
    assert len({id(r) for r in runtimes}) == 1
    assert started == 1
