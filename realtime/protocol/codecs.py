"""Every transport codec, by name, and how large the frames they make of an event are."""

from __future__ import annotations

from realtime.protocol.base import Codec
from realtime.protocol.native import NATIVE
from realtime.protocol.socketio import SOCKETIO

CODECS: dict[str, Codec] = {NATIVE.name: NATIVE, SOCKETIO.name: SOCKETIO}

# The largest room offset a frame is sized for: offsets are per-room counters, and clients in
# JavaScript read integers exactly only up to 2**53 (16 digits).
MAX_OFFSET = 2**53 - 1
# The longest epoch and seq a frame is sized for (epochs are 8 characters; room events may gain
# envelope fields, such as a Socket.IO recovery offset, without the data changing).
MAX_EPOCH = "e" * 16
MAX_SEQ = 2**53 - 1
# Bytes reserved on top of what the codecs make today, so that a size check stays true when a
# room event's envelope grows a little.
FRAME_MARGIN_BYTES = 128


def room_event_frame_bytes(event: str, data_json: str, room: str) -> int:
    """The UTF-8 size of the largest frame any transport sends for ``event`` with the encoded
    ``data_json`` in ``room`` (at the largest offset), plus ``FRAME_MARGIN_BYTES``."""
    largest = max(
        len(codec.room_event_frame(event, data_json, room, MAX_OFFSET, MAX_EPOCH, MAX_SEQ).encode())
        for codec in CODECS.values()
    )
    return largest + FRAME_MARGIN_BYTES
