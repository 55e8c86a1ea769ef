"""PvP challenges: 30 s invitations that start a fight when accepted (PROTOCOL.md §5.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from combat import engine
from combat.models import ChallengeStatus, CombatChallenge, SessionKind
from combat.services import (
    AlreadyInCombat,
    ChallengeNotFound,
    CombatView,
    TargetNotFound,
    characters_busy,
    lock_characters,
    new_session,
)

CHALLENGE_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Challenge:
    id: int
    challenger_id: int
    challenger_name: str
    target_id: int
    target_owner_id: int
    expires_at: datetime


@transaction.atomic
def combat_challenge(*, character_id: int, target_character_id: int, now: datetime) -> Challenge:
    """Challenge another character (the caller checked they share a zone)."""
    if target_character_id == character_id:
        raise TargetNotFound("You cannot challenge yourself")
    characters = lock_characters([character_id, target_character_id])
    if target_character_id not in characters:
        raise TargetNotFound(f"Character {target_character_id} does not exist")
    if characters_busy([character_id, target_character_id]):
        raise AlreadyInCombat("One of you is already in a fight")
    challenge = CombatChallenge.objects.create(
        challenger_id=character_id,
        target_id=target_character_id,
        expires_at=now + timedelta(seconds=CHALLENGE_SECONDS),
    )
    return Challenge(
        id=challenge.pk,
        challenger_id=character_id,
        challenger_name=characters[character_id].name,
        target_id=target_character_id,
        target_owner_id=characters[target_character_id].owner_id,
        expires_at=challenge.expires_at,
    )


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    challenge_id: int
    challenger_id: int
    challenger_owner_id: int
    accepted: bool
    view: CombatView | None


@transaction.atomic
def combat_challenge_respond(
    *, challenge_id: int, character_id: int, accept: bool, now: datetime
) -> ChallengeAnswer:
    """Accept (a PvP fight starts) or decline a pending challenge addressed to the character.

    Raises ``ChallengeNotFound`` when there is no such pending challenge for it, or it expired.
    """
    challenge = (
        CombatChallenge.objects.select_for_update()
        .filter(pk=challenge_id, target_id=character_id, status=ChallengeStatus.PENDING)
        .first()
    )
    if challenge is None or challenge.expires_at <= now:
        raise ChallengeNotFound("No such challenge, or it expired")
    characters = lock_characters([challenge.challenger_id, character_id])
    view = None
    if accept:
        if characters_busy([challenge.challenger_id, character_id]):
            raise AlreadyInCombat("One of you is already in a fight")
        view = new_session(
            SessionKind.PVP,
            [
                ("p1", engine.Side.CHALLENGER, characters[challenge.challenger_id]),
                ("p2", engine.Side.DEFENDER, characters[character_id]),
            ],
            now,
        )
        challenge.session_id = view.session_id
    challenge.status = ChallengeStatus.ACCEPTED if accept else ChallengeStatus.DECLINED
    challenge.save(update_fields=["status", "session"])
    return ChallengeAnswer(
        challenge_id=challenge.pk,
        challenger_id=challenge.challenger_id,
        challenger_owner_id=characters[challenge.challenger_id].owner_id,
        accepted=accept,
        view=view,
    )
