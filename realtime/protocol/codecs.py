"""Every transport codec, by name."""

from __future__ import annotations

from realtime.hub import FrameCodec
from realtime.protocol.native import NATIVE

CODECS: dict[str, FrameCodec] = {NATIVE.name: NATIVE}
