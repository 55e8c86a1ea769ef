"""Moderation records of the realtime layer: bans and the announcements sent."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class BanQuerySet(models.QuerySet["Ban"]):
    def active(self) -> BanQuerySet:
        now = timezone.now()
        return self.filter(lifted_at__isnull=True).filter(Q(until__isnull=True) | Q(until__gt=now))


class Ban(models.Model):
    """A banned account cannot connect (``USER_BANNED``); ``until`` empty means until lifted."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realtime_bans"
    )
    reason = models.CharField(max_length=500, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = BanQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "lifted_at"], name="realtime_ban_user")]

    def __str__(self) -> str:
        until = f"until {self.until:%Y-%m-%d %H:%M}" if self.until else "until lifted"
        return f"{self.user} banned {until}"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Announcement(models.Model):
    """A ``system:announcement``; saving one in the admin sends it to every client."""

    message = models.CharField(max_length=500)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.MEDIUM)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return self.message[:60]


class RevokedToken(models.Model):
    """An access token revoked by logout (PROTOCOL.md §2), kept until it would have expired.

    The database is the record: a revocation survives a Redis restart (Redis keeps nothing).
    """

    jti = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-revoked_at"]

    def __str__(self) -> str:
        return f"token {self.jti} of {self.user_id}"
