"""Django admin for the world: zones, characters, guilds and their memberships.

Moderators (staff users such as the demo ``gm``) browse and fix game state here. List pages
stay at a constant number of queries however many characters exist: related rows are joined
or prefetched, and counts are annotated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest

from characters.models import Character, Guild, GuildMembership, GuildRole, Zone

if TYPE_CHECKING:
    # django-stubs makes these generic; at runtime Django's classes are not subscriptable.
    _ZoneAdminBase = admin.ModelAdmin[Zone]
    _CharacterAdminBase = admin.ModelAdmin[Character]
    _GuildAdminBase = admin.ModelAdmin[Guild]
    _GuildMembershipAdminBase = admin.ModelAdmin[GuildMembership]
    _GuildMembershipInlineBase = admin.TabularInline[GuildMembership, Guild]
else:
    _ZoneAdminBase = _CharacterAdminBase = _GuildAdminBase = admin.ModelAdmin
    _GuildMembershipAdminBase = admin.ModelAdmin
    _GuildMembershipInlineBase = admin.TabularInline


@admin.register(Zone)
class ZoneAdmin(_ZoneAdminBase):
    list_display = ("key", "name", "bounds", "spawn", "neighbour_keys", "character_count")
    search_fields = ("key", "name")
    ordering = ("key",)
    filter_horizontal = ("neighbours",)
    fieldsets = (
        (None, {"fields": ("key", "name")}),
        ("Bounds", {"fields": (("min_x", "max_x"), ("min_y", "max_y"))}),
        ("Spawn point", {"fields": (("spawn_x", "spawn_y", "spawn_z"),)}),
        ("Neighbours", {"fields": ("neighbours",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Zone]:
        return (
            super()
            .get_queryset(request)
            .annotate(character_count=Count("characters", distinct=True))
            .prefetch_related(Prefetch("neighbours", queryset=Zone.objects.order_by("key")))
        )

    @admin.display(description="Bounds (x, y)")
    def bounds(self, obj: Zone) -> str:
        return f"[{obj.min_x:g}, {obj.max_x:g}] by [{obj.min_y:g}, {obj.max_y:g}]"

    @admin.display(description="Spawn")
    def spawn(self, obj: Zone) -> str:
        return f"({obj.spawn_x:g}, {obj.spawn_y:g}, {obj.spawn_z:g})"

    @admin.display(description="Neighbours")
    def neighbour_keys(self, obj: Zone) -> str:
        return ", ".join(zone.key for zone in obj.neighbours.all()) or "—"

    @admin.display(description="Characters", ordering="character_count")
    def character_count(self, obj: Zone) -> int:
        # Set by the annotation in get_queryset; the model itself has no such field.
        return int(getattr(obj, "character_count", 0))


@admin.register(Character)
class CharacterAdmin(_CharacterAdminBase):
    list_display = (
        "name",
        "owner",
        "character_class",
        "level",
        "zone",
        "position",
        "vitals",
        "status",
        "guild",
        "updated_at",
    )
    list_filter = ("zone", "character_class", "status", "level")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner", "zone", "guild_membership__guild")
    autocomplete_fields = ("owner", "zone")
    readonly_fields = ("created_at", "updated_at")
    ordering = ("name",)
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("owner", "name", "character_class", "status")}),
        ("Progress", {"fields": (("level", "experience"), "gold")}),
        ("Stats", {"fields": (("strength", "agility", "intelligence"),)}),
        ("Vitals", {"fields": (("health", "max_health"), ("mana", "max_mana"))}),
        ("Position", {"fields": ("zone", ("pos_x", "pos_y", "pos_z"), "direction")}),
        ("Timestamps", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="Position")
    def position(self, obj: Character) -> str:
        return f"({obj.pos_x:g}, {obj.pos_y:g}, {obj.pos_z:g})"

    @admin.display(description="HP / MP")
    def vitals(self, obj: Character) -> str:
        return f"{obj.health}/{obj.max_health} · {obj.mana}/{obj.max_mana}"

    @admin.display(description="Guild", ordering="guild_membership__guild__name")
    def guild(self, obj: Character) -> str:
        try:
            membership = obj.guild_membership
        except GuildMembership.DoesNotExist:
            return "—"
        return f"{membership.guild.name} ({membership.get_role_display()})"


class GuildMembershipInline(_GuildMembershipInlineBase):
    model = GuildMembership
    extra = 0
    autocomplete_fields = ("character",)
    readonly_fields = ("joined_at",)
    fields = ("character", "role", "joined_at")
    ordering = ("role", "character__name")


@admin.register(Guild)
class GuildAdmin(_GuildAdminBase):
    list_display = ("name", "leader_names", "member_count", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)
    ordering = ("name",)
    inlines = (GuildMembershipInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Guild]:
        leaders = GuildMembership.objects.filter(role=GuildRole.LEADER).select_related("character")
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("memberships", distinct=True))
            .prefetch_related(Prefetch("memberships", queryset=leaders, to_attr="leader_rows"))
        )

    @admin.display(description="Leader")
    def leader_names(self, obj: Guild) -> str:
        # ``leader_rows`` is prefetched in get_queryset; fall back to a query elsewhere.
        rows: list[GuildMembership] | None = getattr(obj, "leader_rows", None)
        if rows is None:
            rows = list(obj.memberships.filter(role=GuildRole.LEADER).select_related("character"))
        return ", ".join(row.character.name for row in rows) or "—"

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj: Guild) -> int:
        # Set by the annotation in get_queryset; the model itself has no such field.
        return int(getattr(obj, "member_count", 0))


@admin.register(GuildMembership)
class GuildMembershipAdmin(_GuildMembershipAdminBase):
    list_display = ("character", "guild", "role", "joined_at")
    list_filter = ("guild", "role")
    search_fields = ("character__name", "guild__name", "character__owner__username")
    list_select_related = ("character", "guild")
    autocomplete_fields = ("guild", "character")
    readonly_fields = ("joined_at",)
