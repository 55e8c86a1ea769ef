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


class FrameError(Exception):
    """The frame cannot be routed (``BAD_FRAME``); ``ack`` is set when it could be read."""

    def __init__(self, message: str, ack: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ack = ack


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
