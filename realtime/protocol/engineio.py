"""Engine.IO v4 framing (PROTOCOL.md §1.2): the transport layer under Socket.IO.

A packet is a type character (``0`` open … ``6`` noop) followed by its payload. Over WebSocket
every text frame is one packet and every binary frame one binary message. Over HTTP
long-polling a body carries several packets separated by the record separator ``\\x1e``, and a
binary message travels as ``b`` + base64 (Engine.IO v4 always base64-encodes over polling).

This module is pure: it parses and builds packets and payloads and raises ``FrameError`` for
anything malformed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from realtime.protocol.base import FrameError, dumps_str

EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = (
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
)
PROBE = "probe"  # payload of the upgrade probe: "2probe" from the client, "3probe" back
SEPARATOR = "\x1e"
BINARY_PREFIX = "b"

WEBSOCKET = "websocket"
POLLING = "polling"
TRANSPORTS = frozenset({WEBSOCKET, POLLING})

# Error answers of an Engine.IO server to HTTP requests: ``{"code": N, "message": ...}``.
TRANSPORT_UNKNOWN = (0, "Transport unknown")
SESSION_ID_UNKNOWN = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
FORBIDDEN = (4, "Forbidden")
UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version")

_EIO_TYPES = frozenset("0123456")


def decode_engine(text: str) -> tuple[str, str]:
    """Split an Engine.IO text packet into (type char, payload).

    Raises FrameError for an empty or unknown type.
    """
    if not text:
        raise FrameError("Empty Engine.IO packet")
    kind = text[0]
    if kind not in _EIO_TYPES:
        raise FrameError(f"Unknown Engine.IO packet type {kind!r}")
    return kind, text[1:]


def open_packet(
    sid: str,
    *,
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
    upgrades: Sequence[str] = (),
) -> str:
    """The Engine.IO handshake: ``0{"sid":...,"upgrades":[...],"pingInterval":...,...}``.

    Exactly the five keys clients expect; ``upgrades`` is ``["websocket"]`` on a polling
    handshake and empty on a WebSocket one.
    """
    handshake = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return EIO_OPEN + dumps_str(handshake)


def encode_payload(packets: Sequence[str]) -> bytes:
    """A long-polling response body: text packets joined by the record separator."""
    return SEPARATOR.join(packets).encode("utf-8")


def decode_payload(body: bytes) -> list[str | bytes]:
    """A long-polling request body → its packets, in order: ``str`` for a text packet (its
    type checked), ``bytes`` for a binary message (``b<base64>``).

    Raises FrameError for a body that is empty or not UTF-8, an empty or unknown packet, or
    invalid base64; nothing of a refused body is to be processed.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("Payload is not UTF-8") from None
    if not text:
        raise FrameError("Empty payload")
    packets: list[str | bytes] = []
    for packet in text.split(SEPARATOR):
        if packet.startswith(BINARY_PREFIX):
            packets.append(binary_from_text(packet))
        else:
            decode_engine(packet)
            packets.append(packet)
    return packets


def binary_from_text(packet: str) -> bytes:
    """A binary message sent as text, ``b<base64>`` (always over polling; over WebSocket from
    clients with ``forceBase64``)."""
    try:
        return base64.b64decode(packet[len(BINARY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise FrameError("Binary packet is not valid base64") from None
