"""The world: zones, characters and guilds."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from characters.rules import name_problem

zone_key_validator = RegexValidator(
    r"^[a-z0-9]+(?:_[a-z0-9]+)*$", "A zone key is a lowercase slug."
)


class Zone(models.Model):
    """A place in the world; movement is bounded by its rectangle."""

    key = models.CharField(max_length=64, unique=True, validators=[zone_key_validator])
    name = models.CharField(max_length=100)
    min_x = models.FloatField(default=-500)
    max_x = models.FloatField(default=500)
    min_y = models.FloatField(default=-500)
    max_y = models.FloatField(default=500)
    spawn_x = models.FloatField(default=0)
    spawn_y = models.FloatField(default=0)
    spawn_z = models.FloatField(default=0)
    neighbours = models.ManyToManyField("self", blank=True, symmetrical=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class CharacterClass(models.TextChoices):
    WARRIOR = "warrior", "Warrior"
    MAGE = "mage", "Mage"
    ROGUE = "rogue", "Rogue"
    CLERIC = "cleric", "Cleric"
    RANGER = "ranger", "Ranger"


class CharacterStatus(models.TextChoices):
    IDLE = "idle", "Idle"
    BUSY = "busy", "Busy"
    AFK = "afk", "Away from keyboard"
    LFG = "lfg", "Looking for group"
    ROLEPLAYING = "roleplaying", "Roleplaying"


class Character(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="characters"
    )
    name = models.CharField(max_length=32, unique=True)
    character_class = models.CharField(
        max_length=16, choices=CharacterClass.choices, default=CharacterClass.WARRIOR
    )
    level = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    experience = models.PositiveIntegerField(default=0)
    gold = models.PositiveIntegerField(default=0)
    strength = models.PositiveIntegerField(default=10)
    agility = models.PositiveIntegerField(default=10)
    intelligence = models.PositiveIntegerField(default=10)
    health = models.PositiveIntegerField(default=100)
    max_health = models.PositiveIntegerField(default=100)
    mana = models.PositiveIntegerField(default=50)
    max_mana = models.PositiveIntegerField(default=50)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="characters")
    pos_x = models.FloatField(default=0)
    pos_y = models.FloatField(default=0)
    pos_z = models.FloatField(default=0)
    direction = models.FloatField(default=0)
    status = models.CharField(
        max_length=16, choices=CharacterStatus.choices, default=CharacterStatus.IDLE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="character_name_ci_unique")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a name that shows as nothing or hides invisible characters (admin forms)."""
        super().clean()
        _check_name(self.name)


class Guild(models.Model):
    name = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        _check_name(self.name)


def _check_name(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise ValidationError({"name": problem})


class GuildRole(models.TextChoices):
    LEADER = "leader", "Leader"
    OFFICER = "officer", "Officer"
    MEMBER = "member", "Member"


class GuildMembership(models.Model):
    """A character belongs to at most one guild."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="memberships")
    character = models.OneToOneField(
        Character, on_delete=models.CASCADE, related_name="guild_membership"
    )
    role = models.CharField(max_length=16, choices=GuildRole.choices, default=GuildRole.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["guild", "character"]

    def __str__(self) -> str:
        return f"{self.character} in {self.guild}"
