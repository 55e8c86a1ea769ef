"""Inbound payload models of the combat events (PROTOCOL.md §5.4)."""

from __future__ import annotations

from pydantic import StrictBool, StrictStr, TypeAdapter

from realtime.protocol.payloads import Payload
from realtime.protocol.world_payloads import WireId


class CombatStartPayload(Payload):
    monster: StrictStr


class CombatChallengePayload(Payload):
    characterId: WireId


class CombatChallengeResponsePayload(Payload):
    challengeId: WireId
    accept: StrictBool


class CombatSessionPayload(Payload):
    sessionId: WireId


class CombatActionPayload(Payload):
    sessionId: WireId
    actionType: StrictStr
    targetId: StrictStr | None = None
    skillId: StrictStr | None = None
    itemId: StrictStr | None = None


COMBAT_START = TypeAdapter(CombatStartPayload)
COMBAT_CHALLENGE = TypeAdapter(CombatChallengePayload)
COMBAT_CHALLENGE_RESPONSE = TypeAdapter(CombatChallengeResponsePayload)
COMBAT_SESSION = TypeAdapter(CombatSessionPayload)
COMBAT_ACTION = TypeAdapter(CombatActionPayload)
