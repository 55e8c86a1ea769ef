"""The Socket.IO v4 endpoint (PROTOCOL.md §1.2) on the full ASGI app, frame by frame."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from realtime.fanout import rooms
from realtime.transport.app import app_runtime
from tests.conftest import WS_TIMEOUT, access_for, connect
from tests.consumers.polling import http
from tests.consumers.world import Player, next_event, play, seed_world

pytestmark = pytest.mark.django_db(transaction=True)

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def sio_open(path: str = SIO_PATH) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    comm = await connect(path)
    frame = await comm.receive_from(timeout=WS_TIMEOUT)
    assert frame.startswith("0"), frame
    return comm, json.loads(frame[1:])


async def sio_connected(user: Any) -> WebsocketCommunicator:
    """Open, CONNECT with the auth object, and read the CONNECT answer and sync:initial."""
    comm, _ = await sio_open()
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    answer = await comm.receive_from(timeout=WS_TIMEOUT)
    assert answer.startswith("40{"), answer
    initial = await comm.receive_from(timeout=WS_TIMEOUT)
    assert initial.startswith('42["sync:initial"'), initial
    return comm


def event_of(frame: str) -> tuple[str, Any, Any]:
    assert frame.startswith("42["), frame
    args = json.loads(frame[2:])
    return args[0], args[1], args[2] if len(args) > 2 else None


async def next_sio_event(comm: WebsocketCommunicator, event: str) -> tuple[Any, Any]:
    for _ in range(50):
        frame = await comm.receive_from(timeout=WS_TIMEOUT)
        if frame.startswith("42["):
            name, data, meta = event_of(frame)
            if name == event:
                return data, meta
    raise AssertionError(f"no {event}")


async def test_open_packet_advertises_the_contracts_settings() -> None:
    comm, opened = await sio_open()
    assert opened["upgrades"] == [] and isinstance(opened["sid"], str)
    assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (
        25000,
        60000,
        65536,
    )
    await comm.disconnect()


async def test_connect_with_the_auth_object_then_events_and_acks(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm, _ = await sio_open()
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    answer = await comm.receive_from(timeout=WS_TIMEOUT)
    assert json.loads(answer[2:])["sid"]
    name, initial, _ = event_of(await comm.receive_from(timeout=WS_TIMEOUT))
    assert name == "sync:initial" and initial["userId"] == str(user.pk)
    await comm.send_to(text_data='420["ping",{"probe":1}]')
    acked = await comm.receive_from(timeout=WS_TIMEOUT)
    assert acked.startswith("430[")
    body = json.loads(acked[3:])[0]
    assert body["ok"] is True and body["probe"] == 1 and isinstance(body["serverTime"], int)
    await comm.send_to(text_data='42["ping",{"probe":2}]')
    name, pong, _ = event_of(await comm.receive_from(timeout=WS_TIMEOUT))
    assert name == "pong" and pong["probe"] == 2
    await comm.disconnect()


async def test_query_token_works_without_an_auth_object(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm, _ = await sio_open(f"{SIO_PATH}&token={access_for(user)}")
    await comm.send_to(text_data="40")
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("40{")
    await comm.disconnect()


async def test_a_bad_token_gets_connect_error_with_the_code_and_may_retry(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm, _ = await sio_open()
    await comm.send_to(text_data='40{"token":"not-a-jwt"}')
    refused = await comm.receive_from(timeout=WS_TIMEOUT)
    assert refused.startswith("44")
    assert json.loads(refused[2:]) == {
        "message": "Invalid token",
        "data": {"code": "TOKEN_INVALID"},
    }
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("40{")
    await comm.disconnect()


async def test_no_token_at_all_is_auth_required() -> None:
    comm, _ = await sio_open()
    await comm.send_to(text_data="40")
    refused = json.loads((await comm.receive_from(timeout=WS_TIMEOUT))[2:])
    assert refused["data"]["code"] == "AUTH_REQUIRED"
    await comm.disconnect()


async def test_other_namespaces_are_refused_cleanly(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await comm.send_to(text_data='40/admin,{"token":"x"}')
    refused = await comm.receive_from(timeout=WS_TIMEOUT)
    assert refused.startswith("44/admin,")
    assert json.loads(refused[len("44/admin,") :])["message"] == "Invalid namespace"
    await comm.send_to(text_data='420["ping",{}]')
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("430[")
    await comm.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        "4garbage",
        '42["only-args-but-no-name"',
        "42[1,2]",
        "9",
        '451-["x",{"_placeholder":true,"num":7}]',
    ],
)
async def test_malformed_and_binary_packets_are_answered_and_the_socket_survives(
    make_user: Any, frame: str
) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await comm.send_to(text_data=frame)
    if frame.startswith("45"):
        await comm.send_to(bytes_data=b"\x01")  # its attachment
    name, error, _ = event_of(await comm.receive_from(timeout=WS_TIMEOUT))
    assert name == "error" and error["code"] == "BAD_FRAME" and error["message"]
    await comm.send_to(bytes_data=b"\x04binary")  # no binary packet announced it
    name, error, _ = event_of(await comm.receive_from(timeout=WS_TIMEOUT))
    assert error["code"] == "BAD_FRAME"
    await comm.send_to(text_data='421["ping",{}]')
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("431[")
    await comm.disconnect()


async def test_unknown_events_and_invalid_payloads_are_answered_in_the_ack(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await comm.send_to(text_data='427["room:join",{"room":"zone:x"}]')
    body = json.loads((await comm.receive_from(timeout=WS_TIMEOUT))[3:])[0]
    assert body["ok"] is False and body["error"]["code"] == "UNKNOWN_EVENT"
    await comm.send_to(text_data='428["character:move",{"x":"far"}]')
    body = json.loads((await comm.receive_from(timeout=WS_TIMEOUT))[3:])[0]
    assert body["error"]["code"] == "INVALID_PAYLOAD"
    assert set(body["error"]["fields"]) == {"x", "y"}
    await comm.disconnect()


@override_settings(AETURNIS_SIO_PING_INTERVAL_MS=100, AETURNIS_SIO_PING_TIMEOUT_MS=200)
async def test_server_pings_and_closes_a_client_that_does_not_pong(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    assert await comm.receive_from(timeout=WS_TIMEOUT) == "2"
    await comm.send_to(text_data="3")
    assert await comm.receive_from(timeout=WS_TIMEOUT) == "2"  # still alive: pinged again
    closed = await comm.receive_output(timeout=WS_TIMEOUT)  # no pong this time
    assert closed["type"] == "websocket.close" and closed["reason"] == "PING_TIMEOUT"


async def test_native_and_socketio_clients_share_rooms(world: Any) -> None:
    sio = await sio_connected(world["bob"].user)
    await sio.send_to(
        text_data='421["character:select",'
        + json.dumps({"characterId": world["bob"].character_id})
        + "]"
    )
    selected = await sio.receive_from(timeout=WS_TIMEOUT)
    assert selected.startswith("431[") and json.loads(selected[3:])[0]["character"]["name"] == "Bob"
    native = await play(world["alice"])
    await native.send_json_to(
        {"event": "chat:message", "data": {"channel": "zone", "message": "hi sio"}}
    )
    data, meta = await next_sio_event(sio, "chat:message")
    assert data["message"] == "hi sio" and data["characterName"] == "Alice"
    assert meta["room"] == "zone:starting_village" and isinstance(meta["offset"], int)
    await sio.send_to(text_data='42["chat:message",{"channel":"zone","message":"hi native"}]')
    assert (await next_event(native, "chat:message"))["message"] == "hi native"
    await sio.disconnect()
    await native.disconnect()


async def test_a_kick_says_why_then_disconnects_the_socketio_client(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await (await app_runtime()).broadcast.control(
        rooms.user_room(user.pk), "kick", reason="Be nice"
    )
    data, _ = await next_sio_event(comm, "session:kicked")
    assert data == {"reason": "Be nice"}
    assert await comm.receive_from(timeout=WS_TIMEOUT) == "41"
    closed = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closed["code"] == 4003 and closed["reason"] == "KICKED"


async def test_shutdown_closes_1012_without_a_disconnect_packet(make_user: Any) -> None:
    from realtime.runtime.shutdown import close_all
    from realtime.transport.app import app_runtime

    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await close_all(await app_runtime())
    data, _ = await next_sio_event(comm, "system:shutdown")
    assert data["reconnectAfterMs"] >= 0
    closed = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closed["type"] == "websocket.close" and closed["code"] == 1012  # so clients reconnect


async def test_binary_attachments_over_websocket_are_validated_like_any_payload(
    make_user: Any,
) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await comm.send_to(
        text_data='452-5["chat:message",{"channel":{"_placeholder":true,"num":1},'
        '"message":{"_placeholder":true,"num":0}}]'
    )
    await comm.send_to(bytes_data=b"\x01\x02")
    await comm.send_to(text_data="bAwQ=")  # a base64 attachment (forceBase64 clients)
    answer = await comm.receive_from(timeout=WS_TIMEOUT)
    assert answer.startswith("435["), answer
    error = json.loads(answer[3:])[0]["error"]
    assert error["code"] == "INVALID_PAYLOAD"
    refused = "Binary data is not accepted here"
    assert error["fields"]["message"] == error["fields"]["channel"] == refused
    await comm.send_to(text_data='421["ping",{}]')
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("431[")
    await comm.disconnect()


async def test_the_engine_sid_is_secret_and_not_the_public_socket_id(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm, opened = await sio_open()
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    granted = json.loads((await comm.receive_from(timeout=WS_TIMEOUT))[2:])
    _, initial, _ = event_of(await comm.receive_from(timeout=WS_TIMEOUT))
    assert granted["sid"] == initial["socketId"] != opened["sid"]
    await comm.disconnect()


async def test_disconnect_packet_ends_the_session_and_the_socket(make_user: Any) -> None:
    user = await database_sync_to_async(make_user)()
    comm = await sio_connected(user)
    await comm.send_to(text_data="41/admin,")  # a namespace never joined: nothing ends
    await comm.send_to(text_data='421["ping",{}]')
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("431[")
    await comm.send_to(text_data="41")
    closed = await comm.receive_output(timeout=WS_TIMEOUT)
    assert closed["type"] == "websocket.close" and closed["code"] == 1000


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=4&transport=abc", 0),
        ("EIO=3&transport=polling", 5),
        ("EIO=4&transport=websocket", 3),
    ],
)
async def test_http_requests_get_an_engineio_error(query: str, code: int) -> None:
    answer = await http("GET", f"/socket.io/?{query}")
    assert answer.status == 400
    assert answer.json()["code"] == code and answer.json()["message"]


async def test_an_old_engineio_version_is_refused_at_the_handshake() -> None:
    from aeturnis.asgi import application

    comm = WebsocketCommunicator(application, "/socket.io/?EIO=3&transport=websocket")
    connected, _ = await comm.connect(timeout=WS_TIMEOUT)
    assert not connected


async def test_connections_arriving_during_shutdown_are_sent_elsewhere(make_user: Any) -> None:
    from aeturnis.asgi import application
    from realtime.runtime.shutdown import close_all
    from realtime.transport.app import app_runtime

    user = await database_sync_to_async(make_user)()
    await close_all(await app_runtime())
    sio = WebsocketCommunicator(application, SIO_PATH)
    refused, _ = await sio.connect(timeout=WS_TIMEOUT)
    assert not refused  # a transport error: socket.io-client tries again later
    native = await connect(f"/ws/game/?token={access_for(user)}")
    frame = await native.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "system:shutdown"
    closed = await native.receive_output(timeout=WS_TIMEOUT)
    assert closed["code"] == 1012 and closed["reason"] == "SERVER_RESTART"
