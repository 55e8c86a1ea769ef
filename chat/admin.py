"""Moderation in the Django admin: search and filter messages, delete, mute, edit the word list.

Deleting here is a soft delete through ``chat.services.message_delete``; clients hear about it
as ``chat:message_deleted`` (the realtime layer listens for the change). Mutes and word-list
changes reach every server process the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format

from chat import services
from chat.models import Block, ChatMessage, Mute, ProfanityWord

if TYPE_CHECKING:
    _MessageAdminBase = admin.ModelAdmin[ChatMessage]
    _MuteAdminBase = admin.ModelAdmin[Mute]
    _WordAdminBase = admin.ModelAdmin[ProfanityWord]
    _BlockAdminBase = admin.ModelAdmin[Block]
else:
    _MessageAdminBase = _MuteAdminBase = _WordAdminBase = _BlockAdminBase = admin.ModelAdmin

MUTE_MINUTES = 60


def readable_ms(ms: int | None) -> str:
    """An epoch-milliseconds value as a date and time to the second, in the site's time zone
    (``2026-03-01 12:34:56 UTC``), for list and detail pages alike."""
    if ms is None:
        return "-"
    moment = timezone.localtime(datetime.fromtimestamp(ms / 1000, tz=UTC))
    return date_format(moment, "Y-m-d H:i:s T")


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("no", "Visible"), ("yes", "Deleted")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ChatMessage]
    ) -> QuerySet[ChatMessage]:
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(ChatMessage)
class ChatMessageAdmin(_MessageAdminBase):
    list_display = (
        "id",
        "channel",
        "sender_name",
        "sender",
        "recipient",
        "text",
        "sent",
        "deleted_at",
    )
    list_filter = ("channel", DeletedFilter, "filtered", "zone", "guild")
    search_fields = (
        "text",
        "original_text",
        "sender_name",
        "sender__username",
        "recipient__username",
    )
    list_select_related = ("sender", "recipient")
    # Times in epoch milliseconds are shown as dates ("sent"); the raw field stays for reference.
    readonly_fields = ["sent", "as_typed", *(f.name for f in ChatMessage._meta.fields)]
    actions = ("delete_for_everyone", "mute_senders")

    @admin.display(description="sent", ordering="sent_ms")
    def sent(self, obj: ChatMessage) -> str:
        return readable_ms(obj.sent_ms)

    @admin.display(description="as typed (moderators only)")
    def as_typed(self, obj: ChatMessage) -> str:
        """What the sender typed before the profanity filter masked it (the text if nothing was
        masked); players only ever receive ``text``."""
        return obj.original_text or obj.text

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # messages are soft-deleted with the action, so clients are told

    @admin.action(description="Delete selected messages for everyone (clients are told)")
    def delete_for_everyone(self, request: HttpRequest, queryset: QuerySet[ChatMessage]) -> None:
        deleted = 0
        for message_id in queryset.values_list("pk", flat=True):
            if services.message_delete(message_id=message_id, by_id=request.user.pk):
                deleted += 1
        self.message_user(request, f"Deleted {deleted} message(s).", messages.SUCCESS)

    @admin.action(description=f"Mute the senders for {MUTE_MINUTES} minutes")
    def mute_senders(self, request: HttpRequest, queryset: QuerySet[ChatMessage]) -> None:
        senders = set(queryset.values_list("sender_id", flat=True))
        for user_id in senders:
            services.mute_set(
                user_id=user_id,
                minutes=MUTE_MINUTES,
                reason="Muted from the chat moderation page",
                by_id=request.user.pk,
            )
        self.message_user(request, f"Muted {len(senders)} user(s).", messages.SUCCESS)


@admin.register(Mute)
class MuteAdmin(_MuteAdminBase):
    list_display = ("user", "until", "reason", "created_by", "created_at")
    search_fields = ("user__username", "reason")
    list_select_related = ("user", "created_by")
    raw_id_fields = ("user",)
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request: HttpRequest, obj: Mute, form: object, change: bool) -> None:
        if not change:
            obj.created_by_id = request.user.pk
        super().save_model(request, obj, form, change)


@admin.register(ProfanityWord)
class ProfanityWordAdmin(_WordAdminBase):
    list_display = ("word", "created_at")
    search_fields = ("word",)


@admin.register(Block)
class BlockAdmin(_BlockAdminBase):
    list_display = ("owner", "blocked", "created_at")
    search_fields = ("owner__username", "blocked__username")
    list_select_related = ("owner", "blocked")
