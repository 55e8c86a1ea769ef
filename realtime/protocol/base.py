"""What every transport codec provides: frames in, typed envelopes out, and pre-encoded frames.

Event data is encoded to JSON exactly once (``encode_data``); codecs only splice those bytes
into their own framing, so a broadcast costs one encode however many transports receive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Inbound:
    """One client request: event name, payload and optional ack id.

    ``binary`` names the fields of ``data`` that hold binary values (Socket.IO attachments),
    as validation errors name fields (``"message"``, ``"items.0"``; ``"data"`` for the whole
    payload); empty for every text payload.
    """

    event: str
    data: Any
    ack: int | None
    binary: tuple[str, ...] = ()
    # When the frame reached this process (epoch seconds), taken by the transport before any
    # queueing; 0 when the transport could not tell (then the time it is handled).
    received_at: float = 0.0


class FrameError(Exception):
    """The frame cannot be routed (``BAD_FRAME``); ``ack`` is set when it could be read."""

    def __init__(self, message: str, ack: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ack = ack


# Deepest nesting a frame may have: orjson decodes 1024 levels but encodes only 254, so a
# deeper value could not be echoed back (ping) or stored; such a frame is BAD_FRAME.
MAX_NESTING = 200
_OPENERS = frozenset("[{")
_CLOSERS = frozenset("]}")


def nesting_too_deep(raw: str | bytes) -> bool:
    """Whether a JSON text nests arrays and objects deeper than ``MAX_NESTING``.

    Cheap for ordinary frames: the brackets are only followed (outside strings) when there
    are more than ``MAX_NESTING`` of them at all.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif ch in _CLOSERS:
            depth -= 1
    return False


def top_level_ack(text: str) -> int | None:
    """The ``ack`` of a frame that cannot be parsed (it nests too deep), read from its top
    level only, so that its refusal still answers the client's ack."""
    depth, in_string, escaped, start, key = 0, False, False, 0, ""
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                key = text[start:i] if depth == 1 else ""
            continue
        if ch == '"':
            in_string, start = True, i + 1
        elif ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
        elif ch == ":" and depth == 1 and key == "ack":
            digits = text[i + 1 : i + 40].lstrip()
            end = 0
            while end < len(digits) and digits[end].isdigit():
                end += 1
            return valid_ack(int(digits[:end])) if end else None
        elif ch == ",":
            key = ""
    return None


def encode_data(data: Any) -> str:
    """Encode event data once; the result is spliced into every transport's frame."""
    return orjson.dumps(data).decode()


def dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


class Codec(Protocol):
    name: str

    def event_frame(self, event: str, data_json: str) -> str: ...

    def room_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str, seq: int
    ) -> str:
        """A room event with its stream position (PROTOCOL.md §8); ``seq`` orders events of
        all rooms (the Socket.IO recovery offset)."""
        ...

    def resumed_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str
    ) -> str:
        """A room event replayed by ``sync:resume`` (out of seq order: no recovery offset)."""
        ...

    def ack_frame(self, ack: int, data_json: str) -> str: ...

    def farewell_frames(self) -> list[str]:
        """Frames the transport sends before a server-initiated close (e.g. a disconnect packet)."""
        ...


def valid_ack(value: Any) -> int | None:
    """An ack id is a positive JSON integer (booleans are not integers here)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**53:
        return value
    return None
