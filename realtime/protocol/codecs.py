"""Every transport codec, by name."""

from __future__ import annotations

from realtime.hub import FrameCodec
from realtime.protocol.native import NATIVE
from realtime.protocol.socketio import SOCKETIO

CODECS: dict[str, FrameCodec] = {NATIVE.name: NATIVE, SOCKETIO.name: SOCKETIO}
