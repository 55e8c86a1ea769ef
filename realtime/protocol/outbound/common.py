"""Shapes shared by outbound events: ids, times, positions, characters, fights, errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from realtime.core.errors import ErrorCode


def _not_null(schema: dict[str, Any]) -> None:
    """An optional field the server leaves out rather than sending null: document it so."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.pop("anyOf")
        schema.update(branches[0])
    schema.pop("default", None)


def omitted(description: str | None = None) -> Any:
    """Default of a field that is absent when it does not apply (never ``null``)."""
    return Field(default=None, description=description, json_schema_extra=_not_null)


class Out(BaseModel):
    """Base of every outbound model: exactly these fields, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


IdStr = Annotated[str, Field(pattern=r"^[0-9]+$", description="An id: a string of digits.")]
Ms = Annotated[int, Field(ge=0, description="Milliseconds since the Unix epoch.")]
Offset = Annotated[int, Field(ge=0, description="A room's event offset (PROTOCOL.md §8).")]
RoomName = Annotated[str, Field(description="A room name such as `zone:starting_village`.")]
Epoch = Annotated[
    str, Field(description="A room stream's epoch: changes when its history was lost (§8).")
]


class StreamPosition(Out):
    """Where a room's stream is: its last offset (0 before any event) and its epoch."""

    offset: Offset
    epoch: Epoch


Positions = dict[RoomName, StreamPosition]
Status = Literal["online", "away", "offline"]


class Empty(Out):
    """No data."""


class Position(Out):
    x: float
    y: float
    z: float
    direction: float


class Stats(Out):
    strength: int
    agility: int
    intelligence: int


class Character(Out):
    """The contract's ``Character`` (PROTOCOL.md §5.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: IdStr
    name: str
    character_class: str = Field(alias="class")
    level: int
    zone: str
    position: Position
    health: int
    maxHealth: int
    mana: int
    maxMana: int
    stats: Stats
    status: str
    guildId: IdStr | None


class Participant(Out):
    id: str = Field(description="Participant id within the fight (`p1`, `m1`, ...).")
    characterId: IdStr | None
    monster: str | None = Field(description="Monster template key, for monsters.")
    name: str
    side: Literal["players", "monsters", "challenger", "defender"]
    hp: int
    maxHp: int
    mp: int
    maxMp: int
    status: Literal["alive", "dead", "fled"]


class CombatState(Out):
    """The contract's ``CombatState`` (PROTOCOL.md §5.4)."""

    sessionId: IdStr
    status: Literal["active", "finished"]
    round: int
    turnNumber: int
    currentTurn: str | None = Field(description="Participant id whose turn it is.")
    turnDeadline: Ms | None
    turnOrder: list[str]
    participants: list[Participant]


class ErrorBody(Out):
    """A refusal: in an ack as `error`, or as the data of an error event."""

    code: ErrorCode
    message: str
    event: str | None = omitted("The refused request's event (error events only).")
    # Extra fields of particular refusals.
    type: Literal["RATE_LIMIT_EXCEEDED"] | None = omitted("With `RATE_LIMITED`.")
    retryAfter: int | None = omitted(
        "`RATE_LIMITED`, `SERVICE_UNAVAILABLE`: whole seconds before trying again."
    )
    fields: dict[str, str] | None = omitted("`INVALID_PAYLOAD`: field name → reason.")
    position: Position | None = omitted("Movement refusals: the authoritative position.")
    reason: str | None = omitted(
        "`INVALID_ACTION`: why (`TARGET_REQUIRED`, ...); `INVALID_MOVEMENT`: `STALE`."
    )
    seq: int | None = omitted("Movement refusals: the refused move's `seq`, if it had one.")
    retryAfterMs: int | None = omitted("`ACTION_ON_COOLDOWN`: ms until the action is ready.")
    until: Ms | None = omitted("`MUTED`: end of the mute.")
    currentTurn: str | None = omitted("`NOT_YOUR_TURN`: whose turn it is.")


class ConnectError(Out):
    """A refused handshake, before the close (PROTOCOL.md §2)."""

    code: ErrorCode
    message: str
