"""Check real frames of both transports against the AsyncAPI document.

``tests/consumers/conftest.py`` hooks every ``WebsocketCommunicator`` of the consumer tests:
each request sent is remembered by its ack id, and each frame the server sends is validated
against the document's message for it (its whole frame schema, so unknown fields, missing
fields, wrong types and room fields on non-room events all fail), an ack against the ack
message of the request it answers, a refusal's code against the codes the document lists for
that request, and a room event's room against the rooms the document says it goes to. A frame
the document does not describe fails, except operator notifications (``POST
/api/realtime/notify``), whose event names are the operators' own, and events of the ``test``
domain (``test:probe``), which tests publish to exercise rooms and resume.

Socket.IO packets (``/socket.io/``) are read back into the native frames they carry the same
events, data and acks as (``42["ev",data,{room,offset}]`` → ``{event, data, room, offset}``,
``43<id>[data]`` → ``{ack, data}``) and checked the same way; a CONNECT_ERROR's code must be an
``ErrorCode``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft7Validator

from realtime.core.errors import ErrorCode
from realtime.handlers.dispatch import ROUTES
from realtime.ops.asyncapi import ack_key, document, error_codes, message_key
from realtime.protocol.base import FrameError
from realtime.protocol.outbound.catalog import EVENTS, FRAME_ERRORS, ROUTING_ERRORS
from realtime.protocol.socketio import (
    ACK,
    CONNECT_ERROR,
    EIO_MESSAGE,
    EVENT,
    decode_socketio,
)

NATIVE_PATH = "/ws/game/"
SOCKETIO_PATH = "/socket.io/"
# Event domains the server owns: an event of any other domain on a user's room is an
# operator's notification, which the document cannot describe.
OWN_DOMAINS = frozenset(
    {event.partition(":")[0] for event in [*EVENTS, *ROUTES] if ":" in event}
    | {"system", "session", "sync", "auth"}
)

TEST_DOMAIN = "test"

_validators: dict[str, Draft7Validator] = {}


class ConformanceError(AssertionError):
    pass


def validator(key: str) -> Draft7Validator:
    """A validator of the document's message ``key`` (refs resolve inside the document)."""
    found = _validators.get(key)
    if found is None:
        doc = document()
        if key not in doc["components"]["messages"]:
            raise ConformanceError(f"the AsyncAPI document has no message {key!r}")
        schema = {**doc, "$ref": f"#/components/messages/{key}/payload"}
        found = _validators[key] = Draft7Validator(schema)
    return found


def validate(key: str, frame: dict[str, Any]) -> None:
    errors = sorted(validator(key).iter_errors(frame), key=lambda e: list(e.absolute_path))
    if errors:
        detail = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<frame>'}: {e.message[:200]}"
            for e in errors[:5]
        )
        raise ConformanceError(
            f"frame disagrees with the AsyncAPI message {key!r}: {detail}\n"
            f"frame: {orjson.dumps(frame).decode()[:1000]}"
        )


def allowed_codes(event: str) -> set[str]:
    codes = {str(c) for c in (*FRAME_ERRORS, *ROUTING_ERRORS)}
    if event in ROUTES:
        codes |= set(error_codes(event))
    return codes


def _room_kind(room: str) -> str:
    return room if room.startswith("global:") else room.partition(":")[0]


@dataclass
class Conversation:
    """One communicator's requests waiting for their acks, and the frames checked so far."""

    acks: dict[int, deque[str]] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    socketio: bool = False
    # An upgraded Socket.IO session (the WebSocket names a polling sid): its requests may have
    # been sent over long-polling, so an ack of a request this connection did not see is fine.
    upgraded: bool = False

    def sent(self, text: str | None) -> None:
        try:
            frame = socketio_frame(text or "") if self.socketio else orjson.loads(text or "")
        except orjson.JSONDecodeError:
            return
        if isinstance(frame, dict) and isinstance(frame.get("ack"), int):
            self.acks.setdefault(frame["ack"], deque()).append(str(frame.get("event")))

    def received_text(self, text: str) -> None:
        if not self.socketio:
            self.received(orjson.loads(text))
            return
        frame = socketio_frame(text)
        if frame is not None:
            _check_recovery_offset(text)
            self.received(frame)

    def received(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            raise ConformanceError(f"the server sent a frame that is not an object: {frame!r}")
        if "event" not in frame:
            self._ack(frame)
            return
        event = str(frame["event"])
        self.checked.append(event)
        spec = EVENTS.get(event)
        if spec is None and not event.endswith(":error"):
            if _is_notification(event, frame):
                return
            raise ConformanceError(f"the server sent {event!r}, which the document does not list")
        validate(message_key(event), frame)
        if spec is not None and spec.room_event and _room_kind(frame["room"]) not in spec.to:
            raise ConformanceError(f"{event} went to {frame['room']}; the document says {spec.to}")
        if event == "error" or event.endswith(":error"):
            refused = str(frame["data"].get("event", ""))
            code = frame["data"]["code"]
            if refused in ROUTES and code not in allowed_codes(refused):
                raise ConformanceError(
                    f"{refused} was refused with {code}, not in its x-error-codes"
                )

    def _ack(self, frame: dict[str, Any]) -> None:
        waiting = self.acks.get(frame.get("ack"))  # type: ignore[arg-type]
        event = waiting.popleft() if waiting else ""
        self.checked.append(f"{event} ack")
        if event in ROUTES:
            validate(ack_key(event), frame)
        else:  # an ack of an unknown event or of an unreadable frame: always a refusal
            validate(ack_key("ping"), frame)
            if frame["data"].get("ok") is not False and not (self.upgraded and not event):
                raise ConformanceError(f"an ack of {event or 'an unreadable frame'} said ok")
        data = frame["data"]
        if data.get("ok") is False and data["error"]["code"] not in allowed_codes(event):
            raise ConformanceError(
                f"{event} was refused in its ack with {data['error']['code']}, "
                "not in its x-error-codes"
            )


def _is_notification(event: str, frame: dict[str, Any]) -> bool:
    domain = event.partition(":")[0]
    if domain == TEST_DOMAIN:
        return True
    return domain not in OWN_DOMAINS and str(frame.get("room", "")).startswith("user:")


def _check_recovery_offset(text: str) -> None:
    """A server event has at most three arguments; a third is the connection state recovery
    offset of a room event: its seq, a string of digits (a sync:resume replay has none)."""
    packet = decode_socketio(text[1:])
    if packet.type != EVENT or len(packet.data) <= 3:
        return
    recovery = packet.data[3]
    if len(packet.data) > 4 or not (isinstance(recovery, str) and recovery.isdigit()):
        raise ConformanceError(f"unexpected arguments after a room event: {packet.data[3:]!r}")


def socketio_frame(text: str) -> dict[str, Any] | None:
    """The native frame a Socket.IO packet from either side carries (None: not an event/ack).

    Raises ``ConformanceError`` for a CONNECT_ERROR whose code is not an ``ErrorCode``.
    """
    if not text.startswith(EIO_MESSAGE):
        return None
    try:
        packet = decode_socketio(text[1:])
    except FrameError:
        return None  # a malformed packet a test sent on purpose
    if packet.type == CONNECT_ERROR:
        code = (packet.data.get("data") or {}).get("code")
        if code is not None and code not in {c.value for c in ErrorCode}:
            raise ConformanceError(f"CONNECT_ERROR with an unknown code: {packet.data!r}")
        return None
    if packet.type == EVENT and packet.data:
        event, *args = packet.data
        frame: dict[str, Any] = {"event": event, "data": args[0] if args else {}}
        if packet.id is not None:
            frame["ack"] = packet.id + 1  # Socket.IO numbers acks from 0, native ones from 1
        if len(args) > 1 and isinstance(args[1], dict):
            frame.update(args[1])  # {room, offset} of a room event
        return frame
    if packet.type == ACK and packet.id is not None and packet.data:
        return {"ack": packet.id + 1, "data": packet.data[0]}
    return None
