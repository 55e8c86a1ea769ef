"""Socket.IO transport codec (PROTOCOL.md §1.2): Socket.IO v5 inside Engine.IO v4 messages.

Socket.IO protocol 5 rides inside Engine.IO ``message`` packets (``4``, see
``realtime.protocol.engineio``) with the encoding
``<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]``, so a client event is
``42["chat:message",{...}]`` and its acknowledgement ``43<id>[{...}]``. A binary packet
(``5``/``6``) names its attachments with placeholders ``{"_placeholder":true,"num":i}``; the
``n`` binary messages that follow it replace them (``attach_binary``).

This module is pure: it parses and builds packet strings and raises ``FrameError`` for anything
malformed. Outbound frames splice event data that was JSON-encoded once (``encode_data``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from realtime.protocol.base import MAX_NESTING, FrameError, Inbound, dumps_str, nesting_too_deep
from realtime.protocol.engineio import EIO_MESSAGE, decode_engine

# Socket.IO v5 packet types
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

_SIO_TYPES = {str(code): code for code in range(7)}
_BINARY_TYPES = frozenset({BINARY_EVENT, BINARY_ACK})
_EVENT_TYPES = frozenset({EVENT, BINARY_EVENT})
_ACK_TYPES = frozenset({ACK, BINARY_ACK})
_ASCII_DIGITS = frozenset("0123456789")
# Ack ids above 2**53 cannot be represented exactly by a JavaScript client.
_MAX_ID = 2**53
_MAX_ID_DIGITS = len(str(_MAX_ID))
_DEFAULT_NAMESPACE = "/"


@dataclass(frozen=True, slots=True)
class SioPacket:
    """One Socket.IO packet (without the Engine.IO ``4`` message prefix)."""

    type: int
    namespace: str = "/"
    data: Any = None  # decoded JSON payload (None when absent)
    id: int | None = None  # ack id (may be 0: socket.io-client numbers acks from 0)
    attachments: int = 0  # binary packets only


def _digits_at(text: str, start: int) -> int:
    """Index just past the run of ASCII digits starting at ``start``."""
    end = start
    while end < len(text) and text[end] in _ASCII_DIGITS:
        end += 1
    return end


def _bounded_int(digits: str, what: str) -> int:
    # Checking the length first keeps int() away from Python's huge-integer guard.
    if len(digits) > _MAX_ID_DIGITS or int(digits) > _MAX_ID:
        raise FrameError(f"{what} is too large (maximum {_MAX_ID})")
    return int(digits)


def _read_attachments(payload: str, pos: int) -> tuple[int, int]:
    end = _digits_at(payload, pos)
    if end == pos or end >= len(payload) or payload[end] != "-":
        raise FrameError("Binary packet needs an attachment count followed by '-'")
    return _bounded_int(payload[pos:end], "Attachment count"), end + 1


def _read_namespace(payload: str, pos: int) -> tuple[str, int]:
    """A namespace runs from ``/`` to the first ``,`` or to the end of the packet (``40/ns``
    and ``40/ns,`` are the same CONNECT, as in the reference parser)."""
    if pos >= len(payload) or payload[pos] != "/":
        return _DEFAULT_NAMESPACE, pos
    comma = payload.find(",", pos)
    if comma < 0:
        return payload[pos:], len(payload)
    return payload[pos:comma], comma + 1


def _read_id(payload: str, pos: int) -> tuple[int | None, int]:
    end = _digits_at(payload, pos)
    if end == pos:
        return None, pos
    return _bounded_int(payload[pos:end], "Ack id"), end


def _parse_json(raw: str) -> Any:
    if nesting_too_deep(raw):
        raise FrameError(f"Packet payload nests deeper than {MAX_NESTING} levels")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson reports "unexpected content after document" (older releases: "trailing ...").
        if "after document" in exc.msg or "trailing" in exc.msg:
            raise FrameError("Unexpected trailing characters after the packet payload") from None
        raise FrameError(f"Packet payload is not valid JSON: {exc.msg}") from None


def _check_packet(kind: int, data: Any, has_data: bool, ack_id: int | None) -> None:
    """Payload and ack-id rules of the Socket.IO v5 packet types."""
    if ack_id is not None and kind not in _EVENT_TYPES and kind not in _ACK_TYPES:
        raise FrameError("Only EVENT and ACK packets may carry an ack id")
    if kind == CONNECT:
        if has_data and not isinstance(data, dict):
            raise FrameError("CONNECT payload must be a JSON object")
    elif kind == DISCONNECT:
        if has_data:
            raise FrameError("DISCONNECT packet must not carry a payload")
    elif kind == CONNECT_ERROR:
        if not isinstance(data, dict):
            raise FrameError("CONNECT_ERROR payload must be a JSON object")
    elif kind in _EVENT_TYPES:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise FrameError(
                "EVENT payload must be a non-empty JSON array starting with the event name"
            )
    elif not isinstance(data, list):
        raise FrameError("ACK payload must be a JSON array")
    elif ack_id is None:
        raise FrameError("ACK packet must carry an ack id")


def decode_socketio(payload: str) -> SioPacket:
    """Parse a Socket.IO packet string (the part after the Engine.IO '4').

    Format: ``<type>[<attachments>-][<namespace>,][<id>][<JSON data>]``. Raises ``FrameError``
    for anything malformed and never anything else.
    """
    if not payload:
        raise FrameError("Empty Socket.IO packet")
    kind = _SIO_TYPES.get(payload[0])
    if kind is None:
        raise FrameError(f"Unknown Socket.IO packet type {payload[0]!r}")
    pos = 1
    attachments = 0
    if kind in _BINARY_TYPES:
        attachments, pos = _read_attachments(payload, pos)
    namespace, pos = _read_namespace(payload, pos)
    ack_id, pos = _read_id(payload, pos)
    has_data = pos < len(payload)
    if kind == DISCONNECT and has_data:
        raise FrameError("DISCONNECT packet must not carry a payload")
    data = _parse_json(payload[pos:]) if has_data else None
    _check_packet(kind, data, has_data, ack_id)
    return SioPacket(kind, namespace, data, ack_id, attachments)


# At most this many attachments per binary packet (socket.io-parser's own cap).
MAX_ATTACHMENTS = 10
# Where a binary value sits in a packet's data: keys and indexes from the top.
BinaryPath = tuple[str | int, ...]


def attach_binary(data: Any, attachments: list[bytes]) -> tuple[Any, list[BinaryPath]]:
    """Replace the placeholders in a binary packet's ``data`` by its ``attachments``.

    Returns the data (lists and objects are changed in place) and where each binary value now
    sits. Raises ``FrameError`` for a placeholder whose ``num`` is not an integer index of an
    attachment, and for an attachment that no placeholder names. The walk is iterative: data
    may be nested as deep as the JSON decoder allows.
    """
    used = [False] * len(attachments)
    paths: list[BinaryPath] = []

    def resolve(placeholder: dict[str, Any], path: BinaryPath) -> bytes:
        num = placeholder.get("num")
        if type(num) is not int or not 0 <= num < len(attachments):
            raise FrameError(f"Placeholder 'num' must name one of {len(attachments)} attachments")
        used[num] = True
        paths.append(path)
        return attachments[num]

    if _is_placeholder(data):
        data = resolve(data, ())
    stack: list[tuple[Any, BinaryPath]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        items = (
            enumerate(node)
            if isinstance(node, list)
            else node.items()
            if isinstance(node, dict)
            else ()
        )
        for key, value in items:
            if _is_placeholder(value):
                node[key] = resolve(value, (*path, key))
            elif isinstance(value, list | dict):
                stack.append((value, (*path, key)))
    if not all(used):
        raise FrameError(f"Attachment {used.index(False)} is not referenced by a placeholder")
    return data, paths


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, dict) and value.get("_placeholder") is True


def encode_socketio(packet: SioPacket) -> str:
    """The inverse of ``decode_socketio`` (without the Engine.IO '4' prefix).

    The default namespace "/" is omitted. Raises ``ValueError`` for a packet that
    ``decode_socketio`` would refuse.
    """
    if packet.type not in range(7):
        raise ValueError(f"Unknown Socket.IO packet type {packet.type}")
    if not packet.namespace.startswith("/") or "," in packet.namespace:
        raise ValueError(f"Invalid namespace {packet.namespace!r}")
    if packet.id is not None and not 0 <= packet.id <= _MAX_ID:
        raise ValueError(f"Invalid ack id {packet.id}")
    if packet.type in _BINARY_TYPES and not 0 <= packet.attachments <= _MAX_ID:
        raise ValueError(f"Invalid attachment count {packet.attachments}")
    try:
        _check_packet(packet.type, packet.data, packet.data is not None, packet.id)
    except FrameError as exc:
        raise ValueError(exc.message) from None
    parts = [str(packet.type)]
    if packet.type in _BINARY_TYPES:
        parts.append(f"{packet.attachments}-")
    if packet.namespace != _DEFAULT_NAMESPACE:
        parts.append(f"{packet.namespace},")
    if packet.id is not None:
        parts.append(str(packet.id))
    if packet.data is not None:
        parts.append(dumps_str(packet.data))
    return "".join(parts)


def connect_packet(sid: str, namespace: str = "/", *, pid: str | None = None) -> str:
    """Namespace connection granted: ``40{"sid":"...","pid":"..."}`` (Engine.IO message prefix
    included). ``pid`` is the connection state recovery id (omitted when recovery is off)."""
    data = {"sid": sid} if pid is None else {"sid": sid, "pid": pid}
    return EIO_MESSAGE + encode_socketio(SioPacket(CONNECT, namespace, data))


def connect_error_packet(message: str, code: str | None, namespace: str = "/") -> str:
    """Namespace connection refused: ``44{"message":"...","data":{"code":"..."}}``.

    ``data`` is omitted when ``code`` is None; another namespace gives ``44/admin,{...}``.
    """
    payload: dict[str, Any] = {"message": message}
    if code is not None:
        payload["data"] = {"code": code}
    return EIO_MESSAGE + encode_socketio(SioPacket(CONNECT_ERROR, namespace, payload))


class SocketIOCodec:
    name = "socketio"

    def decode(self, text: str | None, data: bytes | None) -> Inbound:
        """An Engine.IO message carrying a Socket.IO EVENT on namespace '/' → ``Inbound``.

        ``data`` is the first argument after the event name (missing → ``{}``); ``ack`` is the
        packet id. Anything else raises ``FrameError`` (with ``ack`` set when it was read).
        """
        if data is not None:
            raise FrameError("Binary packets are not supported")
        if text is None:
            raise FrameError("Empty frame")
        kind, payload = decode_engine(text)
        if kind != EIO_MESSAGE:
            raise FrameError(f"Expected an Engine.IO message packet, got type {kind!r}")
        packet = decode_socketio(payload)
        if packet.type in _BINARY_TYPES:
            raise FrameError("Binary packets are not supported", packet.id)
        if packet.namespace != _DEFAULT_NAMESPACE:
            raise FrameError(f"Namespace {packet.namespace!r} is not served", packet.id)
        if packet.type != EVENT:
            raise FrameError(f"Expected a Socket.IO EVENT packet, got type {packet.type}")
        event, *args = packet.data
        if not event:
            raise FrameError("Event name must be a non-empty string", packet.id)
        if len(args) > 1:
            raise FrameError("Only one argument is supported per event", packet.id)
        return Inbound(event=event, data=args[0] if args else {}, ack=packet.id)

    def event_frame(self, event: str, data_json: str) -> str:
        return f"{EIO_MESSAGE}{EVENT}[{dumps_str(event)},{data_json}]"

    def room_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str, seq: int
    ) -> str:
        """``42["ev",data,{room,offset,epoch},"<seq>"]``: the last argument, a string, is the
        connection state recovery offset (socket.io-client keeps the last one it got)."""
        return (
            f"{EIO_MESSAGE}{EVENT}[{dumps_str(event)},{data_json},"
            f'{{"room":{dumps_str(room)},"offset":{offset},"epoch":{dumps_str(epoch)}}},'
            f'"{seq}"]'
        )

    def resumed_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str
    ) -> str:
        """A room event replayed by ``sync:resume``: no recovery offset, which socket.io-client
        would take as the last event it saw although live ones with higher seqs came before."""
        return (
            f"{EIO_MESSAGE}{EVENT}[{dumps_str(event)},{data_json},"
            f'{{"room":{dumps_str(room)},"offset":{offset},"epoch":{dumps_str(epoch)}}}]'
        )

    def ack_frame(self, ack: int, data_json: str) -> str:
        return f"{EIO_MESSAGE}{ACK}{ack}[{data_json}]"

    def farewell_frames(self) -> list[str]:
        """A Socket.IO DISCONNECT on '/' before a server-initiated close."""
        return [f"{EIO_MESSAGE}{DISCONNECT}"]


SOCKETIO = SocketIOCodec()
