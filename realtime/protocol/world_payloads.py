"""Inbound payload models of the character and presence events (PROTOCOL.md §5.2, §5.5).

Only shape is checked here (types, required and unknown fields); limits and allowed values are
rules, answered with the event's domain code (``INVALID_ACTION``, ``INVALID_STATUS``, ...).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    WithJsonSchema,
)

from realtime.protocol.payloads import Payload

MAX_ID = 2**63 - 1


def _wire_id(value: Any) -> Any:
    """Ids are strings on the wire (``"42"``); integers are accepted too."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, str):
        raise ValueError("must be an id: a string of digits")
    return value


# Documented as the wire carries it (a string of digits), though integers are accepted too.
WIRE_ID_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]{1,19}$"},
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    ],
    "description": "An id: a string of digits (an integer is accepted too).",
}
WireId = Annotated[
    StrictInt,
    Field(ge=1, le=MAX_ID),
    BeforeValidator(_wire_id),
    WithJsonSchema(WIRE_ID_SCHEMA),
]
Number = StrictFloat  # strict: ints are accepted as floats, booleans and strings are not


class CharacterSelectPayload(Payload):
    characterId: WireId


class CharacterMovePayload(Payload):
    x: Number
    y: Number
    z: Number | None = None
    direction: Number | None = None
    seq: Annotated[StrictInt, Field(ge=0, le=2**53)] | None = None  # issue #16: replay/reorder


class CharacterChangeZonePayload(Payload):
    zone: StrictStr


class CharacterActionPayload(Payload):
    action: StrictStr
    targetId: WireId | None = None
    parameters: dict[str, Any] | None = None


class CharacterStatusPayload(Payload):
    status: StrictStr
    message: StrictStr | None = None


class PresenceGetPayload(Payload):
    userIds: list[WireId]


class EmptyPayload(Payload):
    pass


def _empty(value: Any) -> Any:
    return {} if value is None else value


CHARACTER_SELECT = TypeAdapter(CharacterSelectPayload)
CHARACTER_MOVE = TypeAdapter(CharacterMovePayload)
CHARACTER_CHANGE_ZONE = TypeAdapter(CharacterChangeZonePayload)
CHARACTER_ACTION = TypeAdapter(CharacterActionPayload)
CHARACTER_STATUS = TypeAdapter(CharacterStatusPayload)
PRESENCE_GET = TypeAdapter(PresenceGetPayload)
EMPTY = TypeAdapter(Annotated[EmptyPayload, BeforeValidator(_empty)])
