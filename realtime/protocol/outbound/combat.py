"""Combat events and the acks of combat requests (PROTOCOL.md §5.4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from realtime.protocol.outbound.common import CombatState, IdStr, Ms, Out, omitted


class ActionOutcome(Out):
    damage: int
    healing: int
    critical: bool
    missed: bool
    effects: list[str]


class CombatActionResult(Out):
    sessionId: IdStr
    actorId: str
    action: Literal["attack", "defend", "skill", "item", "flee"]
    targetId: str | None
    result: ActionOutcome
    state: CombatState = Field(description="The fight after this action.")
    timestamp: Ms


class CombatTurn(Out):
    sessionId: IdStr
    currentTurn: str | None
    round: int
    turnDeadline: Ms | None


class Rewards(Out):
    experience: int
    gold: int


class CombatEnd(Out):
    sessionId: IdStr
    winner: str | None = Field(description="The winning side.")
    reason: Literal["victory", "defeat", "flee", "timeout", "disconnect"]
    rewards: Rewards
    rewardsByCharacter: dict[IdStr, Rewards]


class PlayerFled(Out):
    sessionId: IdStr
    characterId: IdStr | None


class FleeResult(Out):
    success: bool
    chance: float = Field(ge=0, le=1)


class ChallengeReceived(Out):
    challengeId: IdStr
    fromCharacterId: IdStr
    fromName: str
    toCharacterId: IdStr
    expiresAt: Ms


class ChallengeDeclined(Out):
    challengeId: IdStr
    byCharacterId: IdStr


class FightStarted(Out):
    """Ack of `combat:start`; the fight itself arrives as `combat:start`."""

    sessionId: IdStr


class ChallengeMade(Out):
    """Ack of `combat:challenge`."""

    challengeId: IdStr
    expiresAt: Ms


class ChallengeAnswered(Out):
    """Ack of `combat:challenge_response`: the new fight's id when accepted."""

    sessionId: IdStr | None = omitted("Accepted only.")


class ActionTaken(Out):
    """Ack of `combat:action`; the outcome arrives as `combat:action_result`."""

    turnNumber: int
