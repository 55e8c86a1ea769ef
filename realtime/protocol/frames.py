"""WebSocket frames as bytes, built once and written to many sockets.

Server-to-client frames are not masked (RFC 6455 §5.1), so the bytes of a text frame depend only
on its payload: a room event is framed once and the same ``bytes`` object is written to every
recipient's socket. Frames are never compressed (RSV1 clear), which RFC 7692 allows even where
permessage-deflate was negotiated.
"""

from __future__ import annotations

import struct

_TEXT = 0x81  # FIN + text opcode
_CLOSE = 0x88  # FIN + close opcode
_MAX_CLOSE_REASON = 123  # a control frame carries at most 125 bytes: 2 for the code


def ws_frame_header(opcode_byte: int, length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", opcode_byte, length)
    if length < 65536:
        return struct.pack("!BBH", opcode_byte, 126, length)
    return struct.pack("!BBQ", opcode_byte, 127, length)


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    return ws_frame_header(_TEXT, len(payload)) + payload


def close_reason_bytes(reason: str) -> bytes:
    """``reason`` as UTF-8, cut to what a close frame can carry without splitting a character."""
    raw = reason.encode("utf-8")[:_MAX_CLOSE_REASON]
    return raw.decode("utf-8", "ignore").encode("utf-8")


def ws_close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame with ``code`` and ``reason``."""
    body = struct.pack("!H", code) + close_reason_bytes(reason)
    return ws_frame_header(_CLOSE, len(body)) + body


class Frame:
    """One outbound text frame: its text (for transports that take text) and, built on first
    use and then shared, its WebSocket frame bytes (for sockets written directly)."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = ws_text_frame(self.text.encode("utf-8"))
        return wire

    def __len__(self) -> int:
        """Bytes on the wire (frame header included)."""
        return len(self.wire)
