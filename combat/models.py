"""Combat: monster templates, stored sessions with their participants, and the action log.

A session's engine state is stored with it (``state``), together with its seed and the log of
every applied action, so any server process can continue a fight and a fight can be replayed.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from characters.models import zone_key_validator


class MonsterTemplate(models.Model):
    """A kind of monster players can fight (``combat:start`` ``{monster: key}``)."""

    key = models.CharField(max_length=64, unique=True, validators=[zone_key_validator])
    name = models.CharField(max_length=100)
    level = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    max_hp = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    max_mp = models.PositiveIntegerField(default=0)
    strength = models.PositiveIntegerField(default=8)
    agility = models.PositiveIntegerField(default=8)
    intelligence = models.PositiveIntegerField(default=4)
    xp_reward = models.PositiveIntegerField(default=10)
    gold_reward = models.PositiveIntegerField(default=5)

    class Meta:
        ordering = ["level", "key"]

    def __str__(self) -> str:
        return self.key


class SessionKind(models.TextChoices):
    PVE = "pve", "Player vs monster"
    PVP = "pvp", "Player vs player"


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FINISHED = "finished", "Finished"


class CombatSession(models.Model):
    kind = models.CharField(max_length=8, choices=SessionKind.choices)
    status = models.CharField(
        max_length=10, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    seed = models.BigIntegerField(default=0)
    state = models.JSONField(default=dict)
    turn_deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    winner = models.CharField(max_length=16, blank=True, default="")
    reason = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "turn_deadline"], name="combat_due")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class CombatParticipant(models.Model):
    session = models.ForeignKey(
        CombatSession, on_delete=models.CASCADE, related_name="participants"
    )
    participant_id = models.CharField(max_length=8)
    character = models.ForeignKey(
        "characters.Character",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="combat_participations",
    )
    monster = models.ForeignKey(
        MonsterTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    side = models.CharField(max_length=16)
    active = models.BooleanField(
        default=True, help_text="Mirrors the session being active, for fast lookups."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "participant_id"], name="combat_participant_unique"
            ),
            # A character is in at most one active fight.
            models.UniqueConstraint(
                fields=["character"],
                condition=models.Q(active=True, character__isnull=False),
                name="combat_one_active_fight",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} in {self.session_id}"


class CombatAction(models.Model):
    """The log: every applied action in order (``seq`` is the engine's turn number)."""

    session = models.ForeignKey(CombatSession, on_delete=models.CASCADE, related_name="actions")
    seq = models.PositiveIntegerField()
    action = models.JSONField()
    outcome = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="combat_action_seq_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.seq} of {self.session_id}"


class ChallengeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"


class CombatChallenge(models.Model):
    challenger = models.ForeignKey(
        "characters.Character", on_delete=models.CASCADE, related_name="+"
    )
    target = models.ForeignKey("characters.Character", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=ChallengeStatus.choices, default=ChallengeStatus.PENDING
    )
    expires_at = models.DateTimeField()
    session = models.ForeignKey(
        CombatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.challenger} challenges {self.target} ({self.status})"
