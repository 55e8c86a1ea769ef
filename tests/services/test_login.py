"""``POST /api/auth/token/``: simplejwt's answers, failure limits checked before the password
hash, and the per-process bound on password checks (issues #13, #19)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext
from channels.db import database_sync_to_async
from django.test import AsyncClient
from rest_framework_simplejwt.tokens import AccessToken

from realtime.auth import login as login_module
from realtime.core.redis_client import close_async_redis
from tests.conftest import DEMO_PASSWORD, WS_TIMEOUT, access_for, connect

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = "/api/auth/token/"
NO_ACCOUNT = {
    "detail": "No active account found with the given credentials",
    "code": "no_active_account",
}


@pytest.fixture(autouse=True)
def fast_hashes(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Usernames whose password was checked (Django's ``authenticate`` was called)."""
    checked: list[str] = []
    real = login_module.authenticate

    def counting(request: Any, **credentials: Any) -> Any:
        checked.append(credentials["username"])
        return real(request, **credentials)

    monkeypatch.setattr(login_module, "authenticate", counting)
    return checked


@pytest.fixture
async def player(make_user: Callable[..., Any]) -> Any:
    return await database_sync_to_async(make_user)("player")


class ClientAt(AsyncClient):
    """An ASGI test client whose requests come from ``ip``."""

    def __init__(self, ip: str) -> None:
        super().__init__()
        self.ip = ip

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["client"] = [self.ip, 40000]
        return scope


def from_ip(ip: str) -> AsyncClient:
    return ClientAt(ip)


async def post_login(
    client: AsyncClient, username: str, password: str = "wrong", forwarded_for: str = ""
) -> Any:
    return await client.post(
        TOKEN_URL,
        {"username": username, "password": password},
        content_type="application/json",
        headers={"X-Forwarded-For": forwarded_for} if forwarded_for else None,
    )


def assert_throttled(response: Any, code: str = "login_throttled", most: int = 300) -> int:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == code and body["detail"]
    retry_after = int(response["Retry-After"])
    assert body["retryAfter"] == retry_after and 1 <= retry_after <= most
    return retry_after


# --- simplejwt's answers -------------------------------------------------------------------


async def test_right_password_returns_simplejwt_token_pair(player: Any) -> None:
    response = await post_login(from_ip("10.0.0.1"), "player", DEMO_PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert AccessToken(body["access"])["user_id"] == str(player.pk)


async def test_form_encoded_credentials_are_accepted(player: Any) -> None:
    response = await from_ip("10.0.0.1").post(
        TOKEN_URL, {"username": "player", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200 and "access" in response.json()


async def test_wrong_password_is_401_no_active_account_with_simplejwt_challenge(
    player: Any,
) -> None:
    response = await post_login(from_ip("10.0.0.1"), "player")
    assert response.status_code == 401
    assert response.json() == NO_ACCOUNT
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


async def test_inactive_account_is_refused_like_a_wrong_password(make_user: Any) -> None:
    await database_sync_to_async(make_user)("sleeper", is_active=False)
    response = await post_login(from_ip("10.0.0.1"), "sleeper", DEMO_PASSWORD)
    assert response.status_code == 401 and response.json() == NO_ACCOUNT


async def test_other_methods_are_405_with_a_body() -> None:
    response = await from_ip("10.0.0.1").get(TOKEN_URL)
    assert response.status_code == 405 and response["Allow"] == "POST, OPTIONS"
    assert response.json()["code"] == "method_not_allowed"


async def test_missing_fields_are_400_field_errors_and_check_no_password(
    hashes: list[str],
) -> None:
    response = await from_ip("10.0.0.1").post(TOKEN_URL, {}, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}
    assert hashes == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "parse_error"),
        ("username=a", "text/plain", 415, "unsupported_media_type"),
    ],
)
async def test_unreadable_bodies_are_refused_with_detail_and_code(
    body: str, content_type: str, status: int, code: str
) -> None:
    response = await from_ip("10.0.0.1").post(TOKEN_URL, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["detail"]


# --- failure limits --------------------------------------------------------------------------


async def test_username_over_its_limit_is_refused_before_the_hash_even_with_the_right_password(
    player: Any, hashes: list[str]
) -> None:
    for n in range(5):  # login_failures_user: 5/300, from five addresses
        assert (await post_login(from_ip(f"10.0.1.{n}"), "player")).status_code == 401
    refused = await post_login(from_ip("10.0.1.99"), "player", DEMO_PASSWORD)
    assert_throttled(refused)
    assert hashes == ["player"] * 5
    # Another username from the same address is not affected.
    assert (await post_login(from_ip("10.0.1.99"), "someone")).status_code == 401


async def test_ip_over_its_limit_is_refused_for_any_username(
    player: Any, hashes: list[str]
) -> None:
    client = from_ip("10.0.2.1")
    for n in range(10):  # login_failures_ip: 10/300, ten usernames
        assert (await post_login(client, f"guess{n}")).status_code == 401
    assert_throttled(await post_login(client, "player", DEMO_PASSWORD))
    assert len(hashes) == 10
    assert (await post_login(from_ip("10.0.2.2"), "player", DEMO_PASSWORD)).status_code == 200


async def test_success_clears_the_usernames_count(player: Any) -> None:
    for n in range(4):
        assert (await post_login(from_ip(f"10.0.3.{n}"), "player")).status_code == 401
    assert (await post_login(from_ip("10.0.3.50"), "player", DEMO_PASSWORD)).status_code == 200
    for n in range(4):  # 8 failures within the window, but only 4 since the success
        assert (await post_login(from_ip(f"10.0.3.{100 + n}"), "player")).status_code == 401
    assert (await post_login(from_ip("10.0.3.200"), "player", DEMO_PASSWORD)).status_code == 200


async def test_success_does_not_clear_the_ips_count(player: Any) -> None:
    client = from_ip("10.0.4.1")
    for n in range(9):
        assert (await post_login(client, f"guess{n}")).status_code == 401
    assert (await post_login(client, "player", DEMO_PASSWORD)).status_code == 200
    assert (await post_login(client, "guess9")).status_code == 401
    assert_throttled(await post_login(client, "guess10"))


async def test_browsers_of_allowed_origins_may_read_retry_after(settings: Any) -> None:
    settings.CORS_ALLOW_ALL_ORIGINS = True
    client = from_ip("10.0.4.9")
    for n in range(10):
        assert (await post_login(client, f"guess{n}")).status_code == 401
    refused = await client.post(
        TOKEN_URL,
        {"username": "guess10", "password": "wrong"},
        content_type="application/json",
        headers={"Origin": "https://play.example.com"},
    )
    assert_throttled(refused)
    assert refused["Access-Control-Expose-Headers"] == "Retry-After"


async def test_limits_come_from_aeturnis_rate_limits(settings: Any, player: Any) -> None:
    settings.AETURNIS_RATE_LIMITS = {"login_failures_user": "2/60"}
    for n in range(2):
        assert (await post_login(from_ip(f"10.0.5.{n}"), "player")).status_code == 401
    assert_throttled(await post_login(from_ip("10.0.5.9"), "player"), most=60)


async def test_forwarded_for_is_believed_from_trusted_proxies_only(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    proxy = from_ip("127.0.0.1")
    for n in range(10):
        response = await post_login(proxy, f"guess{n}", forwarded_for="203.0.113.7")
        assert response.status_code == 401
    assert_throttled(await post_login(proxy, "guess10", forwarded_for="203.0.113.7"))
    assert (await post_login(proxy, "guess10", forwarded_for="203.0.113.8")).status_code == 401
    # A client that is not a trusted proxy cannot pick its address.
    direct = from_ip("198.51.100.1")
    for n in range(10):
        response = await post_login(direct, f"guess{n}", forwarded_for=f"192.0.2.{n}")
        assert response.status_code == 401
    assert_throttled(await post_login(direct, "guess10", forwarded_for="192.0.2.99"))


async def test_http_and_websocket_failure_counters_are_separate(player: Any) -> None:
    client = from_ip("127.0.0.1")
    for n in range(10):
        assert (await post_login(client, f"guess{n}")).status_code == 401
    assert_throttled(await post_login(client, "guess10"))
    # The same address still opens sockets with a valid token ...
    comm = await connect(f"/ws/game/?token={access_for(player)}")
    assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "sync:initial"
    await comm.disconnect()
    # ... and an address blocked on the socket path (5 bad tokens) still logs in over HTTP.
    for _ in range(5):
        bad = await connect("/ws/game/?token=garbage", client=("10.0.6.1", 40000))
        await bad.receive_json_from(timeout=WS_TIMEOUT)
        await bad.disconnect()
    blocked = await connect(f"/ws/game/?token={access_for(player)}", client=("10.0.6.1", 40000))
    assert (await blocked.receive_json_from(timeout=WS_TIMEOUT))["data"]["code"] == (
        "AUTH_RATE_LIMITED"
    )
    await blocked.disconnect()
    assert (await post_login(from_ip("10.0.6.1"), "player", DEMO_PASSWORD)).status_code == 200


async def test_limits_fall_back_to_this_process_while_redis_is_unreachable(
    settings: Any,
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        throttle = login_module.LoginThrottle()
        for n in range(5):
            await throttle.check(ip=f"10.0.7.{n}", username="player")
            await throttle.failed(ip=f"10.0.7.{n}", username="player")
        with pytest.raises(login_module.LoginThrottled):
            await throttle.check(ip="10.0.7.99", username="player")
    finally:
        await close_async_redis()


# --- the bound on password checks ------------------------------------------------------------


async def test_login_finding_every_password_check_busy_is_429_login_busy(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AETURNIS_PASSWORD_HASH_WAIT_S = 0.2
    started, release = threading.Event(), threading.Event()

    def slow_check(request: Any, username: str, password: str) -> None:
        started.set()
        release.wait(10)
        return None

    async def own_thread(username: str) -> Any:
        # As Django's ASGIHandler does per request (the test client does not): the sync
        # middleware of concurrent requests must not queue on one thread.
        async with ThreadSensitiveContext():
            return await post_login(from_ip("10.0.8.1"), username)

    monkeypatch.setattr(login_module, "check_password_and_issue", slow_check)
    first = asyncio.create_task(own_thread("slow"))
    try:
        assert await asyncio.to_thread(started.wait, 5)
        assert_throttled(await own_thread("other"), "login_busy", most=1)
    finally:
        release.set()
    assert (await first).status_code == 401


async def test_a_client_that_hangs_up_during_the_check_still_has_its_failure_counted(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AETURNIS_RATE_LIMITS = {"login_failures_user": "1/60"}
    started, release = threading.Event(), threading.Event()

    def slow_wrong(request: Any, username: str, password: str) -> None:
        started.set()
        release.wait(10)
        return None

    monkeypatch.setattr(login_module, "check_password_and_issue", slow_wrong)
    hung_up = asyncio.create_task(post_login(from_ip("10.0.9.1"), "player"))
    try:
        assert await asyncio.to_thread(started.wait, 5)
        hung_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung_up
    finally:
        release.set()
    for _ in range(100):
        if not login_module._settling:
            break
        await asyncio.sleep(0.02)
    assert_throttled(await post_login(from_ip("10.0.9.2"), "player"), most=60)
