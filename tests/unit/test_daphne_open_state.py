"""What a daphne connection keeps once it is open (``realtime.transport.daphne._settle_open``):
less, and read the same. Driven on autobahn's server protocol over an in-memory transport,
with a real opening handshake and masked client frames."""

from __future__ import annotations

import ast
import base64
import inspect
import os
import sys
import textwrap
from typing import Any

import autobahn.websocket.protocol as autobahn_protocol
import pytest
import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from realtime.transport.daphne import (
    _AT_REST,
    _HANDSHAKE_ONLY,
    _patch_at_rest,
    _SendQueue,
    _settle_open,
)


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


_patch_at_rest(Echo)


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (short payloads only)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, StringTransport, Clock]:
    """An ``Echo`` connection after a real opening handshake, with its transport and clock."""
    clock = Clock()
    monkeypatch.setattr(txaio.config, "loop", clock)
    factory = WebSocketServerFactory("ws://127.0.0.1:9000", reactor=clock)
    factory.protocol = Echo
    peer = IPv4Address("TCP", "127.0.0.1", 5555)
    protocol = factory.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 9000))
    protocol.makeConnection(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.dataReceived(
        (
            "GET /ws?token=secret HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert protocol.state == protocol.STATE_OPEN
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    transport.clear()
    return protocol, transport, clock


def test_an_open_connection_keeps_less(opened: tuple[Any, StringTransport, Clock]) -> None:
    protocol, _, _ = opened
    before = protocol.__dict__
    assert isinstance(protocol.send_queue, type(before["send_queue"]))  # autobahn's deque
    size_before, keys_before = sys.getsizeof(before), len(before)
    _settle_open(protocol)
    state = protocol.__dict__
    assert len(state) < keys_before - 30
    assert sys.getsizeof(state) < size_before
    assert not set(_HANDSHAKE_ONLY) & set(state)
    assert all(getattr(protocol, name) == value for name, value in _AT_REST.items())
    assert b"secret" not in repr(sorted(state.items(), key=str)).encode()
    assert isinstance(protocol.send_queue, _SendQueue)


def test_it_then_works_as_before(opened: tuple[Any, StringTransport, Clock]) -> None:
    protocol, transport, clock = opened
    _settle_open(protocol)
    protocol.dataReceived(_frame(b"hello"))
    assert transport.value() == b"\x81\x05hello"
    transport.clear()
    # Writes autobahn paces itself go through the send queue, in order, one per reactor turn.
    protocol.sendMessage(b"one", sync=True)
    protocol.sendMessage(b"two", sync=True)
    assert transport.value() == b"\x81\x03one"
    assert len(protocol.send_queue) == 1 and protocol.triggered
    clock.advance(1)
    clock.advance(1)
    assert transport.value() == b"\x81\x03one\x81\x03two"
    assert len(protocol.send_queue) == 0 and not protocol.triggered
    transport.clear()
    # The closing handshake sets its state on the connection; the class keeps the defaults.
    protocol.sendClose(4008, "slow")
    assert transport.value() == b"\x88\x06\x0f\xa8slow"
    assert protocol.closedByMe and protocol.localCloseCode == 4008
    assert Echo.closedByMe is False and Echo.localCloseCode is None


def test_the_send_queue_holds_a_deque_only_while_something_waits() -> None:
    queue = _SendQueue()
    assert len(queue) == 0 and queue._items is None
    queue.append((b"a", True))
    queue.append((b"b", True))
    assert len(queue) == 2
    assert queue.popleft() == (b"a", True)
    assert queue.popleft() == (b"b", True)
    assert len(queue) == 0 and queue._items is None
    with pytest.raises(IndexError):
        queue.popleft()


def test_autobahn_starts_every_connection_with_these_values() -> None:
    """The premise, checked on the installed autobahn's source: ``_connectionMade`` assigns
    each name of ``_AT_REST`` (but the handshake's) exactly the value listed. A new default
    there fails here first."""
    source = inspect.getsource(autobahn_protocol.WebSocketProtocol._connectionMade)
    assigned: dict[str, object] = {}
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                assigned.setdefault(target.attr, node.value.value)
    expected = {name: value for name, value in _AT_REST.items() if name not in _HANDSHAKE_ONLY}
    # The reading state of a frame and a message starts in the parser, not here.
    expected.pop("current_frame")
    expected.pop("inside_message")
    assert {name: assigned.get(name, "<not assigned>") for name in expected} == expected
