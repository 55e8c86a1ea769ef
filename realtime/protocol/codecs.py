"""Every transport codec, by name, and how large the frames they make of an event are."""

from __future__ import annotations

from realtime.protocol.base import Codec
from realtime.protocol.native import NATIVE
from realtime.protocol.socketio import SOCKETIO

CODECS: dict[str, Codec] = {NATIVE.name: NATIVE, SOCKETIO.name: SOCKETIO}

# The largest room offset a frame is sized for: offsets are per-room counters, and clients in
# JavaScript read integers exactly only up to 2**53 (16 digits).
MAX_OFFSET = 2**53 - 1
# Bytes reserved on top of what the codecs make today, for envelope fields a room event may gain
# without the data changing: PROTOCOL.md §8's ``"epoch":"<short string>"`` (about 80 bytes with a
# 64-character epoch) and a little more. A size check with this margin stays true when they come.
FRAME_MARGIN_BYTES = 128


def room_event_frame_bytes(event: str, data_json: str, room: str) -> int:
    """The UTF-8 size of the largest frame any transport sends for ``event`` with the encoded
    ``data_json`` in ``room`` (at the largest offset), plus ``FRAME_MARGIN_BYTES``."""
    largest = max(
        len(codec.room_event_frame(event, data_json, room, MAX_OFFSET).encode())
        for codec in CODECS.values()
    )
    return largest + FRAME_MARGIN_BYTES
