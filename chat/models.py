"""Stored chat: channel messages and whispers, blocks, mutes, and the profanity word list."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from chat.rules import normalise_word


class Channel(models.TextChoices):
    ZONE = "zone", "Zone"
    GLOBAL = "global", "Global"
    GUILD = "guild", "Guild"
    WHISPER = "whisper", "Whisper"


class ChatMessage(models.Model):
    """One message as delivered (after filtering). ``sent_ms`` + ``id`` order history.

    ``text`` is what players receive; ``original_text`` keeps what the sender typed (after
    hygiene, before masking) for moderators, and is empty when the filter changed nothing.
    """

    channel = models.CharField(max_length=8, choices=Channel.choices)
    zone = models.ForeignKey(
        "characters.Zone", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    guild = models.ForeignKey(
        "characters.Guild", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sent"
    )
    sender_character = models.ForeignKey(
        "characters.Character", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender_name = models.CharField(max_length=64)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="chat_received",
    )
    # "<lower user id>:<higher user id>" for whispers, so a conversation is one index range.
    pair = models.CharField(max_length=41, blank=True, default="")
    text = models.TextField()
    filtered = models.BooleanField(default=False, help_text="Profanity was masked.")
    original_text = models.TextField(
        blank=True,
        default="",
        help_text="What the sender typed, before masking; empty when nothing was masked. "
        "Moderators only: players always receive the text.",
    )
    sent_ms = models.BigIntegerField(help_text="Milliseconds since the epoch.")
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-sent_ms", "-id"]
        indexes = [
            models.Index(fields=["channel", "zone", "sent_ms", "id"], name="chat_zone_hist"),
            models.Index(fields=["channel", "guild", "sent_ms", "id"], name="chat_guild_hist"),
            models.Index(fields=["channel", "sent_ms", "id"], name="chat_channel_hist"),
            models.Index(fields=["pair", "sent_ms", "id"], name="chat_pair_hist"),
        ]

    def __str__(self) -> str:
        return f"[{self.channel}] {self.sender_name}: {self.text[:40]}"


def whisper_pair(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


class Block(models.Model):
    """``owner`` receives nothing from ``blocked`` (PROTOCOL.md §5.3)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_blocks"
    )
    blocked = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_blocked_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "blocked"], name="chat_block_unique"),
            models.CheckConstraint(
                condition=~models.Q(owner=models.F("blocked")), name="chat_block_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner} blocks {self.blocked}"


class Mute(models.Model):
    """A moderator's mute: ``user`` may not chat until ``until``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_mutes"
    )
    until = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-until"]
        indexes = [models.Index(fields=["user", "until"], name="chat_mute_user_until")]

    def __str__(self) -> str:
        return f"{self.user} muted until {self.until:%Y-%m-%d %H:%M}"


class ProfanityWord(models.Model):
    """One entry of the profanity filter's word list; moderators edit it in the admin."""

    word = models.CharField(
        max_length=64, unique=True, help_text="Stored normalised: lower case, no accents."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.word = normalise_word(self.word)
        super().save(*args, **kwargs)
