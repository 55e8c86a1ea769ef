"""Every transport codec, by name."""

from __future__ import annotations

from realtime.protocol.base import Codec
from realtime.protocol.native import NATIVE
from realtime.protocol.socketio import SOCKETIO

CODECS: dict[str, Codec] = {NATIVE.name: NATIVE, SOCKETIO.name: SOCKETIO}
