"""The lean per-connection plumbing (``realtime.transport.inbox``, the uvicorn protocol's
parser reset, ``forget_handshake``): the same behaviour as what they replace, with less held
by an idle connection."""

from __future__ import annotations

import asyncio
import gc
import time

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from realtime.connection.session import forget_handshake
from realtime.core.constants import RX_KEY
from realtime.transport.inbox import Flag, Inbox
from realtime.transport.uvicorn import _forget_request


async def test_the_inbox_hands_messages_out_in_order_and_stamps_received_ones() -> None:
    inbox = Inbox()
    inbox.arrived = 123.5
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    inbox.put_nowait({"type": "websocket.receive", "text": "b"})
    assert inbox.qsize() == 3
    assert await inbox.get() == {"type": "websocket.connect"}
    assert await inbox.get() == {"type": "websocket.receive", "text": "a", RX_KEY: 123.5}
    assert not inbox.empty()
    assert (await inbox.get())["text"] == "b"
    assert inbox.empty() and inbox.qsize() == 0


def test_before_the_protocol_stamps_an_arrival_a_message_gets_the_time_of_its_put() -> None:
    inbox = Inbox()
    before = time.time()
    inbox.put_nowait({"type": "websocket.receive", "text": "early"})
    assert before <= inbox._items[0][RX_KEY] <= time.time()  # type: ignore[index]


async def test_a_reader_waits_for_the_next_message() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.disconnect", "code": 1000}


async def test_a_cancelled_read_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"type": "websocket.receive", "text": "kept"})
    reader.cancel()  # woken but not yet run: the message must stay for the next read
    await asyncio.gather(reader, return_exceptions=True)
    assert (await asyncio.wait_for(inbox.get(), 1))["text"] == "kept"


async def test_the_flag_releases_every_waiter_when_set() -> None:
    flag = Flag()
    assert flag.is_set()
    assert await flag.wait()  # set: no wait
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]


HANDSHAKE = (
    b"GET /ws/game/ HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bearer.secret-token\r\n\r\n"
)


def _client_frame(text: str) -> bytes:
    frame = Frame(Opcode.TEXT, text.encode())
    return frame.serialize(mask=True, extensions=[])


def _accepted() -> tuple[ServerProtocol, Request]:
    conn = ServerProtocol()
    conn.receive_data(HANDSHAKE)
    [request] = conn.events_received()
    assert isinstance(request, Request)
    conn.send_response(conn.accept(request))
    conn.data_to_send()
    return conn, request


def test_the_frame_parser_forgets_the_handshake_request_and_still_parses_frames() -> None:
    conn, request = _accepted()
    before = conn.parser
    _forget_request(conn)
    assert conn.parser is not before
    del before
    gc.collect()
    assert not [r for r in gc.get_referrers(request) if type(r).__name__ == "generator"]
    # Frames still parse, split across reads as a network delivers them.
    data = _client_frame("hello") + _client_frame("world")
    conn.receive_data(data[:3])
    conn.receive_data(data[3:])
    assert [f.data for f in conn.events_received()] == [b"hello", b"world"]


def test_the_parser_is_left_alone_in_the_middle_of_a_frame() -> None:
    conn, _request = _accepted()
    data = _client_frame("partial")
    conn.receive_data(data[:4])  # header consumed, payload awaited
    before = conn.parser
    _forget_request(conn)
    assert conn.parser is before
    conn.receive_data(data[4:])
    assert [f.data for f in conn.events_received()] == [b"partial"]


def test_an_admitted_connection_keeps_no_handshake_headers_or_token() -> None:
    headers = [(b"host", b"example"), (b"authorization", b"Bearer secret-token")]
    subprotocols = ["aeturnis.v1", "bearer.secret-token"]
    scope = {"type": "websocket", "headers": headers, "subprotocols": subprotocols}
    routed = dict(scope, url_route={})  # a middleware's copy shares the same lists
    forget_handshake(routed)
    assert scope["headers"] == [] and scope["subprotocols"] == []
    forget_handshake({"type": "websocket", "headers": ((b"host", b"x"),)})  # tuples: untouched
