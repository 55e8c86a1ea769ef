"""Native JSON transport codec (PROTOCOL.md §1.1): one UTF-8 JSON object per frame."""

from __future__ import annotations

from typing import Any

import orjson

from realtime.protocol.base import (
    MAX_NESTING,
    FrameError,
    Inbound,
    dumps_str,
    nesting_too_deep,
    top_level_ack,
    valid_ack,
)

_ENVELOPE_KEYS = frozenset({"event", "data", "ack"})


class NativeCodec:
    name = "native"

    def decode(self, text: str | None, data: bytes | None, received_at: float = 0.0) -> Inbound:
        """Parse one client frame; raises ``FrameError`` for anything that cannot be routed."""
        raw: str | bytes | None = text if text is not None else data
        if raw is None:
            raise FrameError("Empty frame")
        if nesting_too_deep(raw):
            text_of = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            raise FrameError(
                f"Frame nests deeper than {MAX_NESTING} levels", top_level_ack(text_of)
            )
        try:
            obj: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"Frame is not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise FrameError("Frame must be a JSON object")
        ack: int | None = None
        if "ack" in obj and obj["ack"] is not None:
            ack = valid_ack(obj["ack"])
            if ack is None:
                raise FrameError("'ack' must be a positive integer")
        unknown = set(obj) - _ENVELOPE_KEYS
        if unknown:
            raise FrameError(f"Unknown frame keys: {', '.join(sorted(map(str, unknown)))}", ack)
        event = obj.get("event")
        if not isinstance(event, str) or not event:
            raise FrameError("'event' must be a non-empty string", ack)
        return Inbound(event=event, data=obj.get("data", {}), ack=ack, received_at=received_at)

    def event_frame(self, event: str, data_json: str) -> str:
        return f'{{"event":{dumps_str(event)},"data":{data_json}}}'

    def room_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str, seq: int
    ) -> str:
        return (
            f'{{"event":{dumps_str(event)},"data":{data_json},'
            f'"room":{dumps_str(room)},"offset":{offset},"epoch":{dumps_str(epoch)}}}'
        )

    def resumed_event_frame(
        self, event: str, data_json: str, room: str, offset: int, epoch: str
    ) -> str:
        return self.room_event_frame(event, data_json, room, offset, epoch, 0)

    def ack_frame(self, ack: int, data_json: str) -> str:
        return f'{{"ack":{ack},"data":{data_json}}}'

    def farewell_frames(self) -> list[str]:
        return []


NATIVE = NativeCodec()
