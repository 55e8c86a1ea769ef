"""Limiter maths: parsing, retry-after rounding, rejected calls not counted (PROTOCOL.md §6)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from realtime.state.ratelimit import (
    RateLimiter,
    configured_limits,
    parse_limit,
    retry_after_seconds,
)


def test_parse_limit_reads_count_per_seconds() -> None:
    item = parse_limit("10/60")
    assert item.amount == 10 and item.get_expiry() == 60


@pytest.mark.parametrize("spec", ["10", "a/b", "0/60", "5/0", "-1/5"])
def test_bad_limit_specs_are_refused(spec: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_limit(spec)


@override_settings(AETURNIS_RATE_LIMITS={"chat:message": "3/10"})
def test_settings_override_single_limits() -> None:
    limits = configured_limits()
    assert limits["chat:message"].amount == 3
    assert limits["chat:whisper"].amount == 5


@pytest.mark.parametrize(
    ("reset", "now", "expected"),
    [(100.0, 99.2, 1), (100.0, 90.0, 10), (100.0, 90.5, 10), (5, 5, 1)],
)
def test_retry_after_rounds_up_to_whole_seconds(reset: float, now: float, expected: int) -> None:
    assert retry_after_seconds(reset, now) == expected


@override_settings(REDIS_URL="", AETURNIS_RATE_LIMITS={"ping": "2/60"})
async def test_rejected_calls_do_not_count_against_the_window() -> None:
    limiter = RateLimiter()
    assert (await limiter.hit("ping", "u1")).allowed
    assert (await limiter.hit("ping", "u1")).allowed
    for _ in range(5):
        verdict = await limiter.hit("ping", "u1")
        assert not verdict.allowed and 1 <= verdict.retry_after <= 60
    assert await limiter.count("ping", "u1") == 2
    assert (await limiter.hit("ping", "u2")).allowed


@override_settings(REDIS_URL="")
async def test_events_without_a_limit_always_pass() -> None:
    assert (await RateLimiter().hit("not:limited", "u")).allowed


class FakeClock:
    """Stands in for ``time.time`` in the limiter and its in-memory storage."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    import limits.aio.storage.memory as memory_storage

    from realtime.state import ratelimit

    fake = FakeClock()
    monkeypatch.setattr(memory_storage.time, "time", fake.time)
    monkeypatch.setattr(ratelimit.time, "time", fake.time)
    return fake


@override_settings(REDIS_URL="", AETURNIS_RATE_LIMITS={"chat:message": "3/10"})
async def test_moving_window_with_a_fake_clock(clock: FakeClock) -> None:
    limiter = RateLimiter()
    for offset in (0.0, 2.0, 4.0):  # three calls at t=0, 2, 4
        clock.now = 1_000_000.0 + offset
        assert (await limiter.hit("chat:message", "u")).allowed
    clock.now = 1_000_000.0 + 9.5
    verdict = await limiter.hit("chat:message", "u")
    # The oldest call (t=0) leaves the window at t=10: 0.5 s away, rounded up to 1.
    assert not verdict.allowed and verdict.retry_after == 1
    clock.now = 1_000_000.0 + 10.01
    assert (await limiter.hit("chat:message", "u")).allowed  # t=0 left; t=2, 4, 10 now count
    clock.now = 1_000_000.0 + 10.5
    verdict = await limiter.hit("chat:message", "u")
    # Next to leave is t=2, at t=12: 1.5 s away → 2.
    assert not verdict.allowed and verdict.retry_after == 2


@override_settings(REDIS_URL="", AETURNIS_RATE_LIMITS={"ping": "2/60"})
async def test_retry_after_is_the_true_wait_even_after_many_rejections(clock: FakeClock) -> None:
    limiter = RateLimiter()
    await limiter.hit("ping", "u")
    clock.now += 30
    await limiter.hit("ping", "u")
    for step in range(1, 20):  # hammering does not push the window forward
        clock.now += 1
        verdict = await limiter.hit("ping", "u")
        assert not verdict.allowed and verdict.retry_after == 30 - step


@override_settings(REDIS_URL="", AETURNIS_RATE_LIMITS={"ping": "2/60"})
async def test_peek_says_whether_a_hit_would_pass_without_recording_one() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        assert (await limiter.peek("ping", "u1")).allowed
    assert await limiter.count("ping", "u1") == 0
    await limiter.hit("ping", "u1")
    await limiter.hit("ping", "u1")
    verdict = await limiter.peek("ping", "u1")
    assert not verdict.allowed and 1 <= verdict.retry_after <= 60
    assert (await limiter.peek("not:limited", "u1")).allowed
