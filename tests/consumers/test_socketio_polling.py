"""Engine.IO long-polling and the upgrade to WebSocket (PROTOCOL.md §1.2), on the full ASGI app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from realtime.fanout import rooms
from realtime.transport.app import app_runtime
from realtime.transport.polling import PollingSessions
from tests.conftest import WS_TIMEOUT, access_for, connect
from tests.consumers.polling import POLLING, Poller, http, payload
from tests.consumers.world import Player, next_event, play, seed_world

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://play.example.com"


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


async def a_user(make_user: Any) -> Any:
    return await database_sync_to_async(make_user)()


def engine_error(answer: Any, code: int) -> None:
    assert answer.status == 400, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["code"] == code and body["message"], body


# --- handshake ---------------------------------------------------------------------------


async def test_handshake_is_the_open_packet_alone_advertising_the_upgrade() -> None:
    answer = await http("GET", POLLING + "&t=4ykp7t4x")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain; charset=UTF-8"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.text.startswith("0{") and "\x1e" not in answer.text
    opened = json.loads(answer.text[1:])
    assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert opened["upgrades"] == ["websocket"]
    assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (
        25000,
        60000,
        65536,
    )


@override_settings(AETURNIS_NODE_ID="n7")
async def test_the_sid_is_node_dot_secret_and_not_the_public_socket_id(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    granted, initial = await poller.connect(user)
    node, _, secret = poller.sid.partition(".")
    assert node == "n7" and len(secret) >= 20
    assert granted["sid"] == initial["socketId"] != poller.sid
    assert poller.sid not in json.dumps(initial)


async def test_connect_events_and_acks_over_polling(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok('420["ping",{"probe":1}]', '42["ping",{"probe":2}]')
    acked, pong = await poller.receive(2)
    assert acked.startswith("430[") and json.loads(acked[3:])[0]["probe"] == 1
    name, data = json.loads(pong[2:])
    assert name == "pong" and data["probe"] == 2


async def test_a_get_is_held_until_something_is_sent(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    held = poller.get_later()
    await asyncio.sleep(0.2)
    assert not held.done()
    await poller.post_ok('421["ping",{}]')
    answer = await asyncio.wait_for(held, WS_TIMEOUT)
    assert answer.packets[0].startswith("431[")


@override_settings(AETURNIS_SIO_PING_INTERVAL_MS=150, AETURNIS_SIO_PING_TIMEOUT_MS=300)
async def test_heartbeat_over_polling_and_a_missed_pong_ends_the_session(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    assert await poller.get() == ["2"]
    await poller.post_ok("3")
    assert await poller.get() == ["2"]  # alive: pinged again
    answers = [await poller.get()]
    while answers[-1] == ["6"]:  # a held GET is answered a noop after pingInterval
        answers.append(await poller.get())
    assert answers[-1] == ["1"] and len(answers) <= 4  # no pong this time: closed
    engine_error(await http("GET", poller.path), 1)


async def test_a_get_answer_holds_at_most_16_packets(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok(*[f'42["ping",{{"n":{n}}}]' for n in range(20)])
    first, second = await poller.get(), await poller.get()
    assert (len(first), len(second)) == (16, 4)
    numbers = [json.loads(p[2:])[1]["n"] for p in first + second]
    assert numbers == list(range(20))


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "code"),
    [
        ("GET", "EIO=4&transport=abc", 0),
        ("GET", "EIO=4", 0),
        ("GET", "EIO=3&transport=polling", 5),
        ("GET", "transport=polling", 5),
        ("GET", "EIO=4&transport=websocket", 3),
        ("GET", "EIO=4&transport=polling&j=0", 3),
        ("POST", "EIO=4&transport=polling", 2),
        ("PUT", "EIO=4&transport=polling", 2),
        ("GET", "EIO=4&transport=polling&sid=nope", 1),
        ("POST", "EIO=4&transport=polling&sid=nope", 1),
    ],
)
async def test_bad_requests_get_engineio_errors_never_a_django_page(
    method: str, query: str, code: int
) -> None:
    engine_error(await http(method, f"/socket.io/?{query}", body=b"40"), code)


async def test_a_sid_issued_by_another_process_is_unknown_here() -> None:
    poller = Poller()
    await poller.open()
    _, _, secret = poller.sid.partition(".")
    engine_error(await http("GET", f"{POLLING}&sid=other-node.{secret}"), 1)


async def test_a_bad_packet_is_refused_and_ends_the_session() -> None:
    poller = Poller()
    await poller.open()
    engine_error(await http("POST", poller.path, body=b"9nine"), 3)
    engine_error(await http("GET", poller.path), 1)


@pytest.mark.parametrize("body", [b"", b"b!!!", b"\xff\xfe", b"40\x1e"])
async def test_empty_or_undecodable_bodies_are_refused(body: bytes) -> None:
    poller = Poller()
    await poller.open()
    engine_error(await http("POST", poller.path, body=body), 3)


@override_settings(AETURNIS_SIO_MAX_PAYLOAD_BYTES=1000)
async def test_a_post_over_max_payload_is_refused_and_ends_the_session(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    assert poller.opened["maxPayload"] == 1000
    big = '42["ping",{"pad":"' + "x" * 1000 + '"}]'
    engine_error(await poller.post(big), 3)
    engine_error(await http("GET", poller.path), 1)


async def test_a_second_concurrent_get_is_refused_and_closes_the_first(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    held = poller.get_later()
    await asyncio.sleep(0.1)
    engine_error(await http("GET", poller.path), 3)
    assert (await asyncio.wait_for(held, WS_TIMEOUT)).packets == ["1"]
    engine_error(await http("POST", poller.path, body=b"3"), 1)


async def test_other_methods_on_a_session_are_refused_and_keep_it() -> None:
    poller = Poller()
    await poller.open()
    engine_error(await http("DELETE", poller.path), 3)
    await poller.post_ok("3")


async def test_a_client_that_leaves_a_held_get_loses_nothing(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    gone = asyncio.Event()
    held = asyncio.get_running_loop().create_task(http("GET", poller.path, gone=gone))
    await asyncio.sleep(0.1)
    gone.set()
    assert (await asyncio.wait_for(held, WS_TIMEOUT)).status is None
    await poller.post_ok('421["ping",{}]')
    assert (await poller.get())[0].startswith("431[")


# --- closes --------------------------------------------------------------------------------


async def test_a_kick_over_polling_says_why_then_sends_the_close_packet(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await (await app_runtime()).broadcast.control(
        rooms.user_room(user.pk), "kick", reason="Be nice"
    )
    kicked, disconnect, close = await poller.receive(3)
    assert json.loads(kicked[2:]) == ["session:kicked", {"reason": "Be nice"}]
    assert (disconnect, close) == ("41", "1")
    engine_error(await http("GET", poller.path), 1)
    assert (await app_runtime()).get(PollingSessions).find(poller.sid) is None


async def test_shutdown_over_polling_sends_no_disconnect_packet(make_user: Any) -> None:
    from realtime.runtime.shutdown import close_all

    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    closing = asyncio.get_running_loop().create_task(close_all(await app_runtime()))
    shutdown, close = await poller.receive(2)
    await closing
    assert json.loads(shutdown[2:])[0] == "system:shutdown" and close == "1"
    answer = await http("GET", POLLING)
    engine_error(answer, 3)  # new sessions go to another process


@override_settings(AETURNIS_OUTBOUND_BUFFER_BYTES=2000)
async def test_a_polling_client_too_far_behind_gets_only_the_close(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok(*[f'42["ping",{{"pad":"{"x" * 100}"}}]' for _ in range(30)])
    assert await poller.get() == ["1"]
    engine_error(await http("GET", poller.path), 1)


@override_settings(AETURNIS_AUTH_FRAME_TIMEOUT_S=0.1, AETURNIS_CLOSE_GRACE_S=0.1)
async def test_a_session_that_never_connects_nor_polls_is_forgotten() -> None:
    poller = Poller()
    await poller.open()
    sessions = (await app_runtime()).get(PollingSessions)
    assert sessions.find(poller.sid) is not None
    for _ in range(50):
        await asyncio.sleep(0.02)
        if sessions.find(poller.sid) is None:
            break
    assert sessions.find(poller.sid) is None
    engine_error(await http("GET", poller.path), 1)


# --- namespaces ----------------------------------------------------------------------------


@pytest.mark.parametrize("connect_packet", ["40/admin", "40/admin,", '40/admin,{"token":"x"}'])
async def test_unknown_namespaces_get_connect_error_and_the_session_goes_on(
    make_user: Any, connect_packet: str
) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok(connect_packet, "41/admin,", '421["ping",{}]')
    refused, acked = await poller.receive(2)
    assert refused == '44/admin,{"message":"Invalid namespace"}'
    assert acked.startswith("431[")


async def test_disconnect_of_the_default_namespace_ends_the_engine_session(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok("41")
    assert await poller.get() == ["1"]
    engine_error(await http("POST", poller.path, body=b"1"), 1)


async def test_client_close_packet_after_disconnect_in_one_post(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok("41", "1")  # python-socketio's disconnect
    assert await poller.get() == ["1"]


# --- binary attachments --------------------------------------------------------------------


async def test_binary_in_an_event_is_invalid_payload_naming_the_field(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    header = '451-7["chat:message",{"channel":"zone","message":{"_placeholder":true,"num":0}}]'
    await poller.post_ok(header, b"\x01\x02\x03")
    (acked,) = await poller.receive(1)
    assert acked.startswith("437[")
    error = json.loads(acked[3:])[0]["error"]
    assert error["code"] == "INVALID_PAYLOAD" and list(error["fields"]) == ["message"]


async def test_binary_data_nested_or_whole_is_named_like_any_field(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    nested = (
        '452-1["ping",{"a":[{"_placeholder":true,"num":1},{"b":{"_placeholder":true,"num":0}}]}]'
    )
    whole = '451-2["ping",{"_placeholder":true,"num":0}]'
    await poller.post_ok(nested, b"\x00", b"\x01", whole, b"\x02")
    first, second = await poller.receive(2)
    assert set(json.loads(first[3:])[0]["error"]["fields"]) == {"a.0", "a.1.b"}
    assert json.loads(second[3:])[0]["error"]["fields"] == {
        "data": "Binary data is not accepted here"
    }


@pytest.mark.parametrize(
    ("packets", "message"),
    [
        (['451-3["ping",{"x":{"_placeholder":true,"num":1}}]', b"\x01"], "Placeholder"),
        (['451-3["ping",{"x":{"_placeholder":true,"num":"0"}}]', b"\x01"], "Placeholder"),
        (['452-3["ping",{"x":{"_placeholder":true,"num":0}}]', b"\x01", b"\x02"], "not referenced"),
        (['451-3["ping",{"x":{"_placeholder":true,"num":0}}]', '42["ping",{}]'], "missing"),
        (['4511-3["ping",{}]', *[b"\x01"] * 11], "1 to 10"),
    ],
)
async def test_a_malformed_binary_packet_is_one_bad_frame(
    make_user: Any, packets: list[Any], message: str
) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok(*packets, '424["ping",{}]')
    received = await poller.receive(2 if "missing" not in message else 3)
    refused = received[0]
    assert refused.startswith("433["), received
    error = json.loads(refused[3:])[0]["error"]
    assert error["code"] == "BAD_FRAME" and message in error["message"]
    assert received[-1].startswith("434[")
    assert not any('"BAD_FRAME"' in packet for packet in received[1:])


# --- CORS -----------------------------------------------------------------------------------


@override_settings(AETURNIS_ALLOWED_ORIGINS=[ORIGIN], DEBUG=False)
async def test_cors_for_an_allowed_origin_with_credentials() -> None:
    origin = [(b"origin", ORIGIN.encode())]
    preflight = await http(
        "OPTIONS",
        POLLING,
        headers=[
            *origin,
            (b"access-control-request-method", b"POST"),
            (b"access-control-request-headers", b"content-type, x-custom"),
        ],
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-custom"
    opened = await http("GET", POLLING, headers=origin)
    assert opened.status == 200
    assert opened.headers["access-control-allow-origin"] == ORIGIN
    assert opened.headers["access-control-allow-credentials"] == "true"
    refused = await http("GET", f"{POLLING}&sid=nope", headers=origin)
    assert refused.status == 400 and refused.headers["access-control-allow-origin"] == ORIGIN


@override_settings(AETURNIS_ALLOWED_ORIGINS=[ORIGIN], DEBUG=False)
async def test_other_browser_origins_are_refused_without_cors_headers() -> None:
    evil = [(b"origin", b"https://evil.example.net")]
    for answer in (
        await http("OPTIONS", POLLING, headers=[*evil, (b"access-control-request-method", b"GET")]),
        await http("GET", POLLING, headers=evil),
    ):
        engine_error(answer, 4)
        assert "access-control-allow-origin" not in answer.headers


@override_settings(AETURNIS_ALLOWED_ORIGINS=["*"], DEBUG=False)
async def test_any_origin_gets_a_wildcard_without_credentials() -> None:
    answer = await http("GET", POLLING, headers=[(b"origin", b"https://any.example.org")])
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


# --- upgrade ---------------------------------------------------------------------------------


async def upgraded(poller: Poller) -> Any:
    """Probe and switch a WebSocket for ``poller``'s session; returns the communicator."""
    ws = await connect(f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}")
    await ws.send_to(text_data="2probe")
    assert await ws.receive_from(timeout=WS_TIMEOUT) == "3probe"
    await ws.send_to(text_data="5")
    return ws


async def test_upgrade_keeps_the_session_and_refuses_polling_after(world: Any) -> None:
    bob = world["bob"]
    poller = Poller()
    granted, _ = await poller.connect(bob.user)
    await poller.post_ok(
        '421["character:select",' + json.dumps({"characterId": bob.character_id}) + "]"
    )
    (selected,) = await poller.receive(1)
    assert selected.startswith("431[")
    held = poller.get_later()
    ws = await connect(f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}")
    await ws.send_to(text_data="2probe")
    assert await ws.receive_from(timeout=WS_TIMEOUT) == "3probe"
    assert (await asyncio.wait_for(held, WS_TIMEOUT)).packets == ["6"]  # released
    assert (await poller.get()) == ["6"]  # while upgrading: a noop at once
    # Sent while the client switches: waits for the switch, then goes first on the socket.
    await poller.post_ok('422["ping",{}]')
    await ws.send_to(text_data="5")
    assert (await ws.receive_from(timeout=WS_TIMEOUT)).startswith("432[")
    engine_error(await http("GET", poller.path), 3)
    engine_error(await http("POST", poller.path, body=b"3"), 3)
    # The same session: its rooms, its socket id, acks.
    native = await play(world["alice"])
    await native.send_json_to(
        {"event": "chat:message", "data": {"channel": "zone", "message": "after upgrade"}}
    )
    for _ in range(20):
        frame = await ws.receive_from(timeout=WS_TIMEOUT)
        if frame.startswith('42["chat:message"'):
            break
    args = json.loads(frame[2:])
    assert args[1]["message"] == "after upgrade" and args[2]["room"] == "zone:starting_village"
    await ws.send_to(text_data='423["ping",{}]')
    assert (await ws.receive_from(timeout=WS_TIMEOUT)).startswith("433[")
    await ws.send_to(text_data='42["chat:message",{"channel":"zone","message":"hi from ws"}]')
    assert (await next_event(native, "chat:message"))["message"] == "hi from ws"
    assert granted["sid"]
    await native.disconnect()
    await ws.disconnect()
    assert (await app_runtime()).get(PollingSessions).find(poller.sid) is None


async def test_an_upgrade_right_after_the_handshake_like_python_clients(make_user: Any) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.open()
    ws = await upgraded(poller)
    await ws.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    assert (await ws.receive_from(timeout=WS_TIMEOUT)).startswith("40{")
    assert (await ws.receive_from(timeout=WS_TIMEOUT)).startswith('42["sync:initial"')
    await ws.disconnect()


async def test_a_websocket_naming_an_unknown_sid_is_refused() -> None:
    from channels.testing import WebsocketCommunicator

    from aeturnis.asgi import application

    for sid in ("nope", "n1.unknown"):
        comm = WebsocketCommunicator(
            application, f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
        )
        connected, _ = await comm.connect(timeout=WS_TIMEOUT)
        assert not connected


async def test_a_second_websocket_for_one_session_is_refused() -> None:
    from channels.testing import WebsocketCommunicator

    from aeturnis.asgi import application

    poller = Poller()
    await poller.open()
    first = await connect(f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}")
    second = WebsocketCommunicator(
        application, f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}"
    )
    connected, _ = await second.connect(timeout=WS_TIMEOUT)
    assert not connected
    await first.disconnect()


async def test_a_probe_that_sends_anything_else_is_closed_and_polling_goes_on(
    make_user: Any,
) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    ws = await connect(f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}")
    await ws.send_to(text_data="2probe")
    assert await ws.receive_from(timeout=WS_TIMEOUT) == "3probe"
    await ws.send_to(text_data="4hello")
    closed = await ws.receive_output(timeout=WS_TIMEOUT)
    assert closed["type"] == "websocket.close"
    await ws.disconnect()
    await poller.post_ok('421["ping",{}]')
    assert (await poller.receive(1))[0].startswith("431[")


async def test_a_session_closed_during_the_upgrade_closes_on_the_socket_with_its_code(
    make_user: Any,
) -> None:
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    ws = await connect(f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}")
    await ws.send_to(text_data="2probe")
    assert await ws.receive_from(timeout=WS_TIMEOUT) == "3probe"
    await (await app_runtime()).broadcast.control(rooms.user_room(user.pk), "kick", reason="Bye")
    await asyncio.sleep(0.05)
    await ws.send_to(text_data="5")
    assert json.loads((await ws.receive_from(timeout=WS_TIMEOUT))[2:])[0] == "session:kicked"
    assert await ws.receive_from(timeout=WS_TIMEOUT) == "41"
    closed = await ws.receive_output(timeout=WS_TIMEOUT)
    assert (closed["code"], closed["reason"]) == (4003, "KICKED")


async def test_a_binary_post_body_uses_base64_like_the_clients() -> None:
    assert payload('451-["a",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04") == (
        b'451-["a",{"_placeholder":true,"num":0}]\x1ebAQIDBA=='
    )


async def test_an_event_that_takes_binary_data_gets_the_bytes(
    make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import TypeAdapter

    from realtime.handlers import dispatch
    from realtime.handlers.reply import Reply

    async def upload(session: Any, payload: dict[str, bytes]) -> Reply:
        return Reply("test:uploaded", {"sizes": {k: len(v) for k, v in payload.items()}})

    route = dispatch.Route(TypeAdapter(dict[str, bytes]), upload, None, binary=True)
    monkeypatch.setitem(dispatch.ROUTES, "test:upload", route)
    user = await a_user(make_user)
    poller = Poller()
    await poller.connect(user)
    await poller.post_ok(
        '452-9["test:upload",{"a":{"_placeholder":true,"num":0},"b":{"_placeholder":true,"num":1}}]',
        b"\x00\x01\x02",
        b"",
    )
    (acked,) = await poller.receive(1)
    assert json.loads(acked[3:]) == [{"ok": True, "sizes": {"a": 3, "b": 0}}]
