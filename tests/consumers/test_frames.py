"""Frames after the handshake: routing errors, acks vs reply events, limits, token life, resume."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from realtime.ops.announcements import Priority, announcement_payload
from realtime.transport.app import app_runtime
from tests.conftest import WS_TIMEOUT, access_for, connect, connect_as

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def user(make_user: Any) -> Any:
    return await database_sync_to_async(make_user)()


async def still_alive(comm: Any) -> None:
    """The connection answers a ping after whatever came before."""
    await comm.send_json_to({"event": "ping", "data": {"probe": 1}, "ack": 999})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["ack"] == 999 and frame["data"]["ok"] is True


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1, 2]", '"a string"', "42", '{"event": 5}', '{"data": {}}', '{"event": ""}'],
)
async def test_unroutable_frames_get_bad_frame_and_keep_the_connection(user: Any, raw: str) -> None:
    comm, _ = await connect_as(user)
    await comm.send_to(text_data=raw)
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error"
    assert frame["data"]["code"] == "BAD_FRAME"
    assert frame["data"]["message"]
    await still_alive(comm)
    await comm.disconnect()


async def test_binary_garbage_gets_bad_frame(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_to(bytes_data=b"\xff\xfe\x00garbage")
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["data"]["code"] == "BAD_FRAME"
    await still_alive(comm)
    await comm.disconnect()


@pytest.mark.parametrize("ack", [0, -1, "7", 1.5, True])
async def test_an_ack_that_is_not_a_positive_integer_is_a_bad_frame(user: Any, ack: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "ping", "data": {}, "ack": ack})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error" and frame["data"]["code"] == "BAD_FRAME"
    await comm.disconnect()


async def test_unknown_envelope_key_is_answered_in_the_ack(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "ping", "data": {}, "ack": 4, "room": "zone:x"})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame == {
        "ack": 4,
        "data": {
            "ok": False,
            "error": {"code": "BAD_FRAME", "message": "Unknown frame keys: room"},
        },
    }
    await comm.disconnect()


async def test_unknown_event_gets_unknown_event_error(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "room:join", "data": {"room": "zone:x"}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error"
    assert frame["data"]["code"] == "UNKNOWN_EVENT"
    assert frame["data"]["event"] == "room:join"
    await still_alive(comm)
    await comm.disconnect()


async def test_unknown_event_with_ack_is_answered_in_the_ack_only(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "nope:nope", "data": {}, "ack": 3})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["ack"] == 3
    assert frame["data"]["ok"] is False
    assert frame["data"]["error"]["code"] == "UNKNOWN_EVENT"
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_schema_violation_is_invalid_payload_with_fields(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "auth:refresh", "data": {"token": 5, "extra": True}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error"
    assert frame["data"]["code"] == "INVALID_PAYLOAD"
    assert frame["data"]["event"] == "auth:refresh"
    assert set(frame["data"]["fields"]) == {"token", "extra"}
    await still_alive(comm)
    await comm.disconnect()


async def test_ping_without_ack_gets_pong_echoing_the_payload(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "ping", "data": {"n": 7, "s": "x"}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "pong"
    assert frame["data"]["n"] == 7 and frame["data"]["s"] == "x"
    assert isinstance(frame["data"]["serverTime"], int)
    await comm.disconnect()


async def test_ping_with_ack_gets_only_the_ack(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "ping", "data": {"n": 1}, "ack": 12})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["ack"] == 12
    assert frame["data"]["ok"] is True and frame["data"]["n"] == 1
    assert "serverTime" in frame["data"]
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_frame_over_64_kib_closes_with_1009(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_to(text_data='{"event":"ping","data":"' + "x" * (64 * 1024) + '"}')
    closing = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closing == {"type": "websocket.close", "code": 1009, "reason": "MESSAGE_TOO_BIG"}


async def test_frame_just_under_64_kib_is_handled(user: Any) -> None:
    comm, _ = await connect_as(user)
    body = '{"event":"ping","data":{"p":"' + "x" * (60 * 1024) + '"}}'
    await comm.send_to(text_data=body)
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "pong"
    await comm.disconnect()


async def test_rate_limited_event_is_not_handled_and_reports_retry_after(
    settings: Any, user: Any
) -> None:
    settings.AETURNIS_RATE_LIMITS = {"ping": "2/60"}
    comm, _ = await connect_as(user)
    for _ in range(2):
        await comm.send_json_to({"event": "ping", "data": {}})
        assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "pong"
    await comm.send_json_to({"event": "ping", "data": {}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "error"
    data = frame["data"]
    assert data["type"] == "RATE_LIMIT_EXCEEDED" and data["code"] == "RATE_LIMITED"
    assert data["event"] == "ping"
    assert data["message"] == "Rate limit exceeded for ping"
    assert isinstance(data["retryAfter"], int) and 1 <= data["retryAfter"] <= 60
    await comm.disconnect()


async def test_token_expiry_sends_auth_expired_then_closes_4001(user: Any) -> None:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    comm = await connect(f"/ws/game/?token={token}")
    assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "sync:initial"
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame == {"event": "auth:expired", "data": {"code": "TOKEN_EXPIRED"}}
    closing = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closing == {"type": "websocket.close", "code": 4001, "reason": "TOKEN_EXPIRED"}


async def test_auth_refresh_with_a_newer_token_keeps_the_connection(user: Any) -> None:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    comm = await connect(f"/ws/game/?token={token}")
    assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "sync:initial"
    newer = AccessToken.for_user(user)
    await comm.send_json_to({"event": "auth:refresh", "data": {"token": str(newer)}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame == {"event": "auth:refreshed", "data": {"expiresAt": int(newer["exp"]) * 1000}}
    await asyncio.sleep(1.3)
    await comm.send_json_to({"event": "ping", "data": {}})
    assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "pong"
    await comm.disconnect()


async def test_auth_refresh_with_another_users_token_fails(user: Any, make_user: Any) -> None:
    other = await database_sync_to_async(make_user)()
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "auth:refresh", "data": {"token": access_for(other)}})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "auth:error"
    assert frame["data"]["code"] == "TOKEN_INVALID"
    assert frame["data"]["event"] == "auth:refresh"
    await comm.disconnect()


async def test_auth_refresh_with_an_invalid_token_fails_in_the_ack(user: Any) -> None:
    comm, _ = await connect_as(user)
    await comm.send_json_to({"event": "auth:refresh", "data": {"token": "junk"}, "ack": 2})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["ack"] == 2
    assert frame["data"]["ok"] is False
    assert frame["data"]["error"] == {"code": "TOKEN_INVALID", "message": "Invalid token"}
    await comm.disconnect()


async def test_room_broadcast_reaches_members_with_room_and_increasing_offsets(
    user: Any, make_user: Any
) -> None:
    other = await database_sync_to_async(make_user)()
    a, initial = await connect_as(user)
    b, _ = await connect_as(other)
    epoch = initial["offsets"]["global:events"]["epoch"]
    # Real announcements: every frame a consumer test receives must match the AsyncAPI document.
    one_data = announcement_payload("one", Priority.LOW)
    two_data = announcement_payload("two", Priority.LOW)
    first = await (await app_runtime()).broadcast.to_room(
        "global:events", "system:announcement", one_data
    )
    second = await (await app_runtime()).broadcast.to_room(
        "global:events", "system:announcement", two_data
    )
    assert second == first + 1
    for comm in (a, b):
        one = await comm.receive_json_from(timeout=WS_TIMEOUT)
        two = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert one == {
            "event": "system:announcement",
            "data": one_data,
            "room": "global:events",
            "offset": first,
            "epoch": epoch,
        }
        assert two["offset"] == second and two["data"] == two_data
    await a.disconnect()
    await b.disconnect()


async def test_user_room_event_reaches_every_connection_of_that_user_only(
    user: Any, make_user: Any
) -> None:
    other = await database_sync_to_async(make_user)()
    a1, _ = await connect_as(user)
    a2, _ = await connect_as(user)
    b, _ = await connect_as(other)
    await (await app_runtime()).broadcast.to_user(user.pk, "quest:update", {"step": 2})
    for comm in (a1, a2):
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert frame["event"] == "quest:update" and frame["room"] == f"user:{user.pk}"
    assert await b.receive_nothing(timeout=0.3)
    for comm in (a1, a2, b):
        await comm.disconnect()


async def test_excluded_socket_does_not_receive_its_own_broadcast(
    user: Any, make_user: Any
) -> None:
    other = await database_sync_to_async(make_user)()
    a, initial_a = await connect_as(user)
    b, _ = await connect_as(other)
    await (await app_runtime()).broadcast.to_room(
        "global:chat", "test:probe", {"m": 1}, exclude=initial_a["socketId"]
    )
    assert (await b.receive_json_from(timeout=WS_TIMEOUT))["data"] == {"m": 1}
    assert await a.receive_nothing(timeout=0.3)
    await a.disconnect()
    await b.disconnect()


async def test_resume_replays_missed_events_in_order_then_reports(user: Any) -> None:
    comm, initial = await connect_as(user)
    start = initial["offsets"]["global:events"]["offset"]
    epoch = initial["offsets"]["global:events"]["epoch"]
    await comm.disconnect()
    for n in range(3):
        await (await app_runtime()).broadcast.to_room("global:events", "test:probe", {"n": n})
    comm, _ = await connect_as(user)
    await comm.send_json_to(
        {
            "event": "sync:resume",
            "data": {
                "rooms": {"global:events": start, "zone:nowhere": 4},
                "epochs": {"global:events": epoch},
            },
        }
    )
    replayed = [await comm.receive_json_from(timeout=WS_TIMEOUT) for _ in range(3)]
    assert [f["data"]["n"] for f in replayed] == [0, 1, 2]
    assert [f["offset"] for f in replayed] == [start + 1, start + 2, start + 3]
    assert {f["epoch"] for f in replayed} == {epoch}
    report = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert report == {
        "event": "sync:resumed",
        "data": {
            "rooms": {
                "global:events": {"recovered": True, "offset": start + 3, "epoch": epoch},
                "zone:nowhere": {"recovered": False, "offset": 0, "epoch": None},
            }
        },
    }
    await comm.disconnect()


async def test_resume_past_the_history_says_not_recovered(settings: Any, user: Any) -> None:
    settings.AETURNIS_HISTORY_SIZE = 2
    comm, _ = await connect_as(user)
    for n in range(5):
        await (await app_runtime()).broadcast.to_room("global:events", "test:probe", {"n": n})
    for _ in range(5):
        await comm.receive_json_from(timeout=WS_TIMEOUT)
    await comm.send_json_to({"event": "sync:resume", "data": {"rooms": {"global:events": 0}}})
    report = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert report["event"] == "sync:resumed"
    assert report["data"]["rooms"]["global:events"] == {
        "recovered": False,
        "offset": 5,
        "epoch": report["data"]["rooms"]["global:events"]["epoch"],
    }
    assert isinstance(report["data"]["rooms"]["global:events"]["epoch"], str)
    await comm.disconnect()


async def test_revoke_control_closes_only_sockets_using_that_token(user: Any) -> None:
    token_a = AccessToken.for_user(user)
    token_b = AccessToken.for_user(user)
    a = await connect(f"/ws/game/?token={token_a}")
    b = await connect(f"/ws/game/?token={token_b}")
    for comm in (a, b):
        assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "sync:initial"
    await (await app_runtime()).broadcast.control(
        f"user:{user.pk}", "revoke", jti=str(token_a["jti"])
    )
    assert await a.receive_json_from(timeout=WS_TIMEOUT) == {
        "event": "auth:expired",
        "data": {"code": "TOKEN_REVOKED"},
    }
    closing = await a.receive_output(timeout=WS_TIMEOUT)
    assert closing["code"] == 4001 and closing["reason"] == "TOKEN_REVOKED"
    await still_alive(b)
    await b.disconnect()


async def test_kick_control_sends_session_kicked_then_4003(user: Any) -> None:
    comm, _ = await connect_as(user)
    await (await app_runtime()).broadcast.control(f"user:{user.pk}", "kick", reason="spamming")
    assert await comm.receive_json_from(timeout=WS_TIMEOUT) == {
        "event": "session:kicked",
        "data": {"reason": "spamming"},
    }
    closing = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closing == {"type": "websocket.close", "code": 4003, "reason": "KICKED"}


async def test_graceful_shutdown_announces_and_closes_with_1012(user: Any) -> None:
    from realtime.runtime.shutdown import close_all
    from realtime.transport.app import app_runtime

    comm, _ = await connect_as(user)
    await close_all(await app_runtime())
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "system:shutdown"
    assert isinstance(frame["data"]["reconnectAfterMs"], int)
    closing = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closing == {"type": "websocket.close", "code": 1012, "reason": "SERVER_RESTART"}
