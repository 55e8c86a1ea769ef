"""Combat in the Django admin: monster templates are edited here; fights can be inspected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from combat.models import (
    CombatAction,
    CombatChallenge,
    CombatParticipant,
    CombatSession,
    MonsterTemplate,
)

if TYPE_CHECKING:
    _MonsterAdminBase = admin.ModelAdmin[MonsterTemplate]
    _SessionAdminBase = admin.ModelAdmin[CombatSession]
    _ChallengeAdminBase = admin.ModelAdmin[CombatChallenge]
    _ParticipantInlineBase = admin.TabularInline[CombatParticipant, CombatSession]
    _ActionInlineBase = admin.TabularInline[CombatAction, CombatSession]
else:
    _MonsterAdminBase = _SessionAdminBase = _ChallengeAdminBase = admin.ModelAdmin
    _ParticipantInlineBase = _ActionInlineBase = admin.TabularInline


@admin.register(MonsterTemplate)
class MonsterTemplateAdmin(_MonsterAdminBase):
    list_display = (
        "key",
        "name",
        "level",
        "max_hp",
        "strength",
        "agility",
        "xp_reward",
        "gold_reward",
    )
    search_fields = ("key", "name")


class ParticipantInline(_ParticipantInlineBase):
    model = CombatParticipant
    extra = 0
    can_delete = False
    readonly_fields = ("participant_id", "character", "monster", "side", "active")


class ActionInline(_ActionInlineBase):
    model = CombatAction
    extra = 0
    can_delete = False
    readonly_fields = ("seq", "action", "outcome", "created_at")


@admin.register(CombatSession)
class CombatSessionAdmin(_SessionAdminBase):
    """Read-only: a fight changes only through its rules."""

    list_display = ("id", "kind", "status", "winner", "reason", "turn_deadline", "created_at")
    list_filter = ("kind", "status", "reason")
    readonly_fields = ("kind", "status", "seed", "state", "turn_deadline", "winner", "reason")
    inlines = (ParticipantInline, ActionInline)

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(CombatChallenge)
class CombatChallengeAdmin(_ChallengeAdminBase):
    list_display = ("id", "challenger", "target", "status", "expires_at", "session")
    list_filter = ("status",)
    list_select_related = ("challenger", "target")
