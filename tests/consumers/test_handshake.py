"""Handshake on /ws/game/: every token source, every refusal code (PROTOCOL.md §2, §3)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from realtime.auth.tokens import TokenInfo, revoke_access_token
from tests.conftest import WS_TIMEOUT, access_for, connect

pytestmark = pytest.mark.django_db(transaction=True)


async def expect_refusal(comm: Any, code: str, message: str, close_code: int) -> None:
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame == {"event": "connect_error", "data": {"code": code, "message": message}}
    closing = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closing == {"type": "websocket.close", "code": close_code, "reason": code}


async def expect_initial(comm: Any, user: Any) -> dict[str, Any]:
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "sync:initial"
    assert frame["data"]["userId"] == str(user.pk)
    return dict(frame["data"])


async def test_query_string_token_is_accepted(make_user: Any) -> None:
    user = await make_user_async(make_user)
    comm = await connect(f"/ws/game/?token={access_for(user)}")
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_authorization_header_token_is_accepted(make_user: Any) -> None:
    user = await make_user_async(make_user)
    comm = await connect(headers=[(b"authorization", f"Bearer {access_for(user)}".encode())])
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_subprotocol_token_is_accepted_and_aeturnis_v1_selected(make_user: Any) -> None:
    user = await make_user_async(make_user)
    from channels.testing import WebsocketCommunicator

    from aeturnis.asgi import application

    comm = WebsocketCommunicator(
        application, "/ws/game/", subprotocols=["aeturnis.v1", f"bearer.{access_for(user)}"]
    )
    comm.scope["client"] = ["127.0.0.1", 40000]
    connected, subprotocol = await comm.connect(timeout=WS_TIMEOUT)
    assert connected
    assert subprotocol == "aeturnis.v1"
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_first_frame_auth_is_accepted(make_user: Any) -> None:
    user = await make_user_async(make_user)
    comm = await connect()
    await comm.send_json_to({"event": "auth", "data": {"token": access_for(user)}})
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_subprotocol_token_wins_over_a_bad_query_token(make_user: Any) -> None:
    user = await make_user_async(make_user)
    comm = await connect(
        "/ws/game/?token=garbage", subprotocols=["aeturnis.v1", f"bearer.{access_for(user)}"]
    )
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_first_frame_that_is_not_auth_is_refused_with_auth_required(db: Any) -> None:
    comm = await connect()
    await comm.send_json_to({"event": "ping", "data": {}})
    await expect_refusal(comm, "AUTH_REQUIRED", "Authentication required", 4001)


async def test_no_token_within_the_auth_window_is_refused(settings: Any, db: Any) -> None:
    settings.AETURNIS_AUTH_FRAME_TIMEOUT_S = 0.2
    comm = await connect()
    await expect_refusal(comm, "AUTH_REQUIRED", "Authentication required", 4001)


async def test_garbage_token_is_refused_with_token_invalid(db: Any) -> None:
    comm = await connect("/ws/game/?token=not.a.jwt")
    await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)


async def test_token_signed_with_another_key_is_invalid(make_user: Any) -> None:
    user = await make_user_async(make_user)
    import jwt

    forged = jwt.encode(
        {"token_type": "access", "user_id": user.pk, "jti": "x", "exp": int(time.time()) + 60},
        "not-the-server-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    comm = await connect(f"/ws/game/?token={forged}")
    await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)


async def test_refresh_token_is_not_accepted_as_access_token(make_user: Any) -> None:
    user = await make_user_async(make_user)
    from channels.db import database_sync_to_async
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = await database_sync_to_async(RefreshToken.for_user)(user)
    comm = await connect(f"/ws/game/?token={refresh}")
    await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)


async def test_expired_token_is_refused_with_token_expired(make_user: Any) -> None:
    user = await make_user_async(make_user)
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-10))
    comm = await connect(f"/ws/game/?token={token}")
    await expect_refusal(comm, "TOKEN_EXPIRED", "Token expired", 4001)


async def test_revoked_token_is_refused_with_token_revoked(make_user: Any) -> None:
    user = await make_user_async(make_user)
    token = AccessToken.for_user(user)
    await database_sync_to_async(revoke_access_token)(
        TokenInfo(user.pk, str(token["jti"]), float(token["exp"]))
    )
    comm = await connect(f"/ws/game/?token={token}")
    await expect_refusal(comm, "TOKEN_REVOKED", "Token has been revoked", 4001)


async def test_inactive_account_is_refused_as_banned_with_4003(make_user: Any) -> None:
    user = await make_user_async(make_user, is_active=False)
    comm = await connect(f"/ws/game/?token={access_for(user)}")
    await expect_refusal(comm, "USER_BANNED", "Account is banned", 4003)


async def test_five_failures_block_the_ip_even_for_a_valid_token(make_user: Any) -> None:
    user = await make_user_async(make_user)
    ip = ("10.1.2.3", 5555)
    for _ in range(5):
        comm = await connect("/ws/game/?token=bad", client=ip)
        await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)
    comm = await connect(f"/ws/game/?token={access_for(user)}", client=ip)
    await expect_refusal(comm, "AUTH_RATE_LIMITED", "Too many failed authentication attempts", 4029)
    # Another IP is not affected.
    other = await connect(f"/ws/game/?token={access_for(user)}", client=("10.9.9.9", 1))
    await expect_initial(other, user)
    await other.disconnect()


async def test_a_success_clears_the_failure_count(make_user: Any) -> None:
    user = await make_user_async(make_user)
    ip = ("10.1.2.4", 5555)
    for _ in range(4):
        comm = await connect("/ws/game/?token=bad", client=ip)
        await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)
    ok = await connect(f"/ws/game/?token={access_for(user)}", client=ip)
    await expect_initial(ok, user)
    await ok.disconnect()
    for _ in range(4):
        comm = await connect("/ws/game/?token=bad", client=ip)
        await expect_refusal(comm, "TOKEN_INVALID", "Invalid token", 4001)
    again = await connect(f"/ws/game/?token={access_for(user)}", client=ip)
    await expect_initial(again, user)
    await again.disconnect()


async def test_connections_over_the_per_ip_limit_are_refused(settings: Any, make_user: Any) -> None:
    settings.AETURNIS_RATE_LIMITS = {"connect": "3/60"}
    user = await make_user_async(make_user)
    ip = ("10.2.2.2", 1)
    comms = []
    for _ in range(3):
        comm = await connect(f"/ws/game/?token={access_for(user)}", client=ip)
        await expect_initial(comm, user)
        comms.append(comm)
    refused = await connect(f"/ws/game/?token={access_for(user)}", client=ip)
    await expect_refusal(refused, "CONNECTION_RATE_LIMITED", "Connection rate limit exceeded", 4029)
    for comm in comms:
        await comm.disconnect()


async def test_disallowed_browser_origin_is_refused_before_accept(settings: Any, db: Any) -> None:
    settings.AETURNIS_ALLOWED_ORIGINS = ["https://play.example.com"]
    from channels.testing import WebsocketCommunicator

    from aeturnis.asgi import application

    comm = WebsocketCommunicator(
        application, "/ws/game/", headers=[(b"origin", b"https://evil.example.net")]
    )
    connected, _ = await comm.connect(timeout=WS_TIMEOUT)
    assert not connected


async def test_allowed_browser_origin_is_accepted(settings: Any, make_user: Any) -> None:
    settings.AETURNIS_ALLOWED_ORIGINS = ["https://play.example.com"]
    user = await make_user_async(make_user)
    comm = await connect(
        f"/ws/game/?token={access_for(user)}", headers=[(b"origin", b"https://play.example.com")]
    )
    await expect_initial(comm, user)
    await comm.disconnect()


async def test_sync_initial_carries_the_contract_fields(make_user: Any) -> None:
    user = await make_user_async(make_user)
    comm = await connect(f"/ws/game/?token={access_for(user)}")
    data = await expect_initial(comm, user)
    assert set(data) >= {
        "userId",
        "socketId",
        "serverTime",
        "version",
        "rooms",
        "presence",
        "character",
        "combat",
    }
    assert data["rooms"] == sorted(["global:chat", "global:events", f"user:{user.pk}"])
    assert data["presence"] == {"status": "online"}
    assert data["character"] is None and data["combat"] is None
    assert isinstance(data["serverTime"], int)
    assert abs(data["serverTime"] - time.time() * 1000) < 60_000
    assert set(data["offsets"]) == set(data["rooms"])
    for position in data["offsets"].values():
        assert position["offset"] == 0 and isinstance(position["epoch"], str) and position["epoch"]
    await comm.disconnect()


async def make_user_async(make_user: Any, **extra: Any) -> Any:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(make_user)(**extra)
