"""Moderator tools in the Django admin: announcements, bans, and actions on user accounts.

The user list gets actions to kick (every connection, every process), mute for an hour, ban
and unban; saving an announcement sends it to every client. The admin is titled for the game,
and its index links the live "Online now" page (``realtime.ops.online``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from realtime.models import Announcement, Ban
from realtime.ops.announcements import Priority as AnnouncementPriority
from realtime.ops.announcements import announce_sync
from realtime.ops.moderation import ban_user, kick_user, mute_user, unban_user

if TYPE_CHECKING:
    _BanAdminBase = admin.ModelAdmin[Ban]
    _AnnouncementAdminBase = admin.ModelAdmin[Announcement]
else:
    _BanAdminBase = _AnnouncementAdminBase = admin.ModelAdmin

MODERATION_MINUTES = 60

admin.site.site_header = "Aeturnis Realtime administration"
admin.site.site_title = "Aeturnis Realtime admin"
admin.site.index_title = "Game administration"
# The stock index plus a link to the live "Online now" page.
admin.site.index_template = "realtime/admin/index.html"


@admin.register(Announcement)
class AnnouncementAdmin(_AnnouncementAdminBase):
    list_display = ("message", "priority", "sent_by", "sent_at")
    readonly_fields = ("sent_by", "sent_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an announcement was sent; it is history now

    def save_model(self, request: HttpRequest, obj: Announcement, form: Any, change: bool) -> None:
        obj.sent_by_id = request.user.pk
        super().save_model(request, obj, form, change)
        announce_sync(obj.message, AnnouncementPriority(obj.priority))
        self.message_user(request, "Sent to every connected client.", messages.SUCCESS)


@admin.register(Ban)
class BanAdmin(_BanAdminBase):
    list_display = ("user", "reason", "until", "created_by", "created_at", "lifted_at")
    list_filter = ("lifted_at",)
    search_fields = ("user__username", "reason")
    raw_id_fields = ("user",)
    readonly_fields = ("created_by", "created_at", "lifted_at", "lifted_by")

    def save_model(self, request: HttpRequest, obj: Ban, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        minutes = None
        if obj.until is not None:
            minutes = max(0.1, (obj.until - timezone.now()).total_seconds() / 60)
        ban = ban_user(
            user_id=obj.user_id, reason=obj.reason, minutes=minutes, by_id=request.user.pk
        )
        obj.pk = ban.pk


User = get_user_model()


class ModeratedUserAdmin(UserAdmin):  # type: ignore[type-arg]
    actions = ("kick_users", "mute_users", "ban_users", "unban_users")

    @admin.action(description="Kick: close every connection (4003)")
    def kick_users(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            kick_user(user_id=user_id, reason="Kicked by a moderator")
        self.message_user(request, f"Kicked {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description=f"Mute in chat for {MODERATION_MINUTES} minutes")
    def mute_users(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            mute_user(user_id=user_id, minutes=MODERATION_MINUTES, reason="", by_id=request.user.pk)
        self.message_user(request, f"Muted {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Ban until lifted (refuses connections, closes live ones)")
    def ban_users(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            ban_user(
                user_id=user_id, reason="Banned by a moderator", minutes=None, by_id=request.user.pk
            )
        self.message_user(request, f"Banned {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Lift bans")
    def unban_users(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        lifted = sum(
            unban_user(user_id=user_id, by_id=request.user.pk)
            for user_id in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Lifted {lifted} ban(s).", messages.SUCCESS)


admin.site.unregister(User)
admin.site.register(User, ModeratedUserAdmin)
