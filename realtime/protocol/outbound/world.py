"""Character, zone and presence events (PROTOCOL.md §5.2, §5.5)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from realtime.protocol.outbound.common import (
    Character,
    IdStr,
    Ms,
    Out,
    Position,
    Positions,
    Status,
    omitted,
)


class CharacterSelected(Out):
    character: Character
    timestamp: Ms
    offsets: Positions = Field(description="The rooms joined for the character (ours, §8).")


class CharacterOnline(Out):
    characterId: IdStr
    userId: IdStr
    name: str
    position: Position
    timestamp: Ms


class CharacterMoved(Out):
    characterId: IdStr
    position: Position
    timestamp: Ms = Field(description="When the move reached the server (its arrival, §5.2).")
    seq: int | None = omitted("The move's `seq`, when it had one (§5.2).")


class ZoneChanged(Out):
    zone: str
    position: Position
    offsets: Positions = Field(description="The new zone's room (ours, §8).")


class ZoneCharacterLeft(Out):
    characterId: IdStr
    userId: IdStr
    name: str
    zone: str = Field(description="The zone left.")
    toZone: str
    timestamp: Ms


class ZoneCharacterEntered(Out):
    characterId: IdStr
    userId: IdStr
    name: str
    zone: str = Field(description="The zone entered.")
    fromZone: str
    timestamp: Ms


class ActionResultDetail(Out):
    success: bool
    targetId: IdStr | None
    distance: float | None
    manaCost: int
    cooldownMs: int
    mana: int
    itemId: Any = Field(default=None, description="`use_item`: the item relayed.")


class CharacterActionResult(Out):
    action: str
    result: ActionResultDetail
    timestamp: Ms


class CharacterActionBroadcast(Out):
    characterId: IdStr
    action: str
    targetId: IdStr | None
    result: ActionResultDetail
    timestamp: Ms


class CharacterStatusChanged(Out):
    characterId: IdStr
    status: Literal["idle", "busy", "afk", "lfg", "roleplaying"]
    message: str | None
    timestamp: Ms


class CharacterOffline(Out):
    characterId: IdStr
    userId: IdStr
    timestamp: Ms


class UserPresence(Out):
    status: Status
    lastSeen: Ms | None
    characterId: IdStr | None
    zone: str | None


class PresenceState(Out):
    users: dict[IdStr, UserPresence] = Field(description="Every user id asked for.")


class ZoneResident(Out):
    characterId: IdStr
    name: str
    userId: IdStr
    status: Status


class PresenceZone(Out):
    zone: str
    count: int
    characters: list[ZoneResident]


class PresenceChanged(Out):
    userId: IdStr
    characterId: IdStr | None
    status: Status
    timestamp: Ms
