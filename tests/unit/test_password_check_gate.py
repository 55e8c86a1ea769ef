"""The per-process bound on password checks (issue #19): how many run, who waits, who is refused."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from realtime.auth.login import PasswordCheckGate, PasswordChecksBusy, username_key


async def test_at_most_concurrency_checks_run_at_once() -> None:
    gate = PasswordCheckGate(2, wait_s=5)
    running, most = 0, 0
    lock = threading.Lock()

    def check() -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.03)
        with lock:
            running -= 1
        return 1

    results = await asyncio.gather(*(gate.run(check) for _ in range(8)))
    assert results == [1] * 8 and most == 2


async def test_a_check_without_a_slot_within_the_wait_is_refused_with_whole_seconds() -> None:
    gate = PasswordCheckGate(1, wait_s=0.05)
    release = threading.Event()
    holder = asyncio.create_task(gate.run(lambda: release.wait(5)))
    await asyncio.sleep(0.01)
    try:
        with pytest.raises(PasswordChecksBusy) as refused:
            await gate.run(lambda: True)
        assert refused.value.retry_after == 1
    finally:
        release.set()
    assert await holder is True
    assert await gate.run(lambda: "free again") == "free again"


async def test_a_caller_that_stops_waiting_keeps_its_slot_until_its_check_ends() -> None:
    gate = PasswordCheckGate(1, wait_s=0.05)
    started, release = threading.Event(), threading.Event()

    def stuck() -> None:
        started.set()
        release.wait(5)

    abandoned = asyncio.create_task(gate.run(stuck))
    assert await asyncio.to_thread(started.wait, 5)
    abandoned.cancel()
    try:
        with pytest.raises(PasswordChecksBusy):  # the hash still runs: no second one starts
            await gate.run(lambda: True)
    finally:
        release.set()
    await asyncio.sleep(0.05)
    assert await gate.run(lambda: True) is True


async def test_what_runs_first_may_refuse_and_frees_the_slot() -> None:
    gate = PasswordCheckGate(1, wait_s=0.05)

    async def refuse() -> None:
        raise LookupError("over the limit")

    with pytest.raises(LookupError):
        await gate.run(lambda: True, first=refuse)
    assert await gate.run(lambda: True) is True


def test_username_keys_are_short_exact_and_accept_any_string() -> None:
    assert username_key("alice") != username_key("Alice")
    assert len(username_key("x" * 100_000)) == 32
    assert username_key("\ud800") == username_key("\ud800")
