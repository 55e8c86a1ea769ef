"""Connection and system events (PROTOCOL.md §2, §5.1, §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from realtime.protocol.outbound.common import (
    Character,
    CombatState,
    Epoch,
    Ms,
    Offset,
    Out,
    Positions,
    RoomName,
)


class PresenceOfSelf(Out):
    status: Literal["online"]


class SyncInitial(Out):
    """The first event after every successful connect."""

    userId: str
    socketId: str
    serverTime: Ms
    version: str
    rooms: list[RoomName]
    offsets: Positions = Field(
        description="Each joined room's position (offset and epoch), for `sync:resume`."
    )
    presence: PresenceOfSelf
    character: Character | None = Field(description="Set when a live fight selected it.")
    combat: CombatState | None


class Pong(Out):
    """The ping's object fields echoed back (a non-object ping comes back as `data`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    serverTime: Ms


class AuthRefreshed(Out):
    expiresAt: Ms


class AuthExpired(Out):
    code: Literal["TOKEN_EXPIRED", "TOKEN_REVOKED"]


class RoomResumed(Out):
    recovered: bool = Field(description="False: reload state (history, fight state).")
    offset: Offset
    epoch: Epoch | None = Field(description="The room's epoch; null for a room not joined.")


class SyncResumed(Out):
    rooms: dict[RoomName, RoomResumed]


class SystemAnnouncement(Out):
    message: str
    priority: Literal["low", "medium", "high"]
    type: Literal["announcement"]
    timestamp: Ms


class SystemShutdown(Out):
    reconnectAfterMs: int


class SessionKicked(Out):
    reason: str
