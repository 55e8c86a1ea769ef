"""Inbound payload models of the connection and system events (PROTOCOL.md §5.1, §8).

Each model forbids unknown fields and is built once as a ``TypeAdapter``. Domain payloads live
beside their handlers' domain in this package as the dispatch table grows.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthPayload(Payload):
    token: StrictStr


class AuthRefreshPayload(Payload):
    token: StrictStr


MAX_RESUME_ROOMS = 200


RoomName = Annotated[str, Field(max_length=200)]


class SyncResumePayload(Payload):
    rooms: Annotated[
        dict[RoomName, Annotated[StrictInt, Field(ge=0)]], Field(max_length=MAX_RESUME_ROOMS)
    ]
    # The epoch of each room's offset, as the client last saw it (PROTOCOL.md §8).
    epochs: (
        Annotated[
            dict[RoomName, Annotated[StrictStr, Field(max_length=64)]],
            Field(max_length=MAX_RESUME_ROOMS),
        ]
        | None
    ) = None
    # The socketId of the connection being resumed (ours): events that were not sent to it
    # (its own chat messages and moves) are not replayed to it either.
    socketId: Annotated[StrictStr, Field(max_length=64)] | None = None


PING = TypeAdapter(Any)
AUTH = TypeAdapter(AuthPayload)
AUTH_REFRESH = TypeAdapter(AuthRefreshPayload)
SYNC_RESUME = TypeAdapter(SyncResumePayload)
