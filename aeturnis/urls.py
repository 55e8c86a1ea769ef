from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import URLPattern, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenRefreshView

from aeturnis.site import RealtimeNotFoundView, landing
from realtime.ops import api
from realtime.ops.asyncapi_views import asyncapi_json, asyncapi_page
from realtime.ops.auth_views import LogoutView
from realtime.ops.health import healthz, readyz
from realtime.ops.login import token_obtain_view
from realtime.ops.metrics import metrics_view
from realtime.ops.online import online_now

REALTIME_API = "api/realtime/"


def realtime_api(route: str, view: Any, name: str) -> list[URLPattern]:
    """``/api/realtime/<route>`` as in the contract (PROTOCOL.md §7), and the same with a
    trailing slash: both answer the envelope, neither redirects (a redirected POST loses its
    body)."""
    return [
        path(f"{REALTIME_API}{route}", view, name=name),
        path(f"{REALTIME_API}{route}/", view),
    ]


def without_slash_aliases(endpoints: list[tuple[str, str, str, Any]]) -> list[Any]:
    """drf-spectacular preprocessing hook: leave the trailing-slash aliases out of the schema."""
    return [
        e for e in endpoints if not (e[0].startswith(f"/{REALTIME_API}") and e[0].endswith("/"))
    ]


urlpatterns = [
    # Before admin/ so that the admin's catch-all does not take it; staff only.
    path("admin/realtime/online/", admin.site.admin_view(online_now), name="realtime-online"),
    path("", landing, name="landing"),
    path("play/", include("play.urls")),
    path("admin/", admin.site.urls),
    path("api/auth/token/", token_obtain_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/logout/", LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/asyncapi.json", asyncapi_json, name="asyncapi-json"),
    path("api/asyncapi/", asyncapi_page, name="asyncapi"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    *realtime_api("stats", api.StatsView.as_view(), "realtime-stats"),
    *realtime_api("announcement", api.AnnouncementView.as_view(), "realtime-announce"),
    *realtime_api("notify", api.NotifyView.as_view(), "realtime-notify"),
    *realtime_api("kick", api.KickView.as_view(), "realtime-kick"),
    *realtime_api("mute", api.MuteView.as_view(), "realtime-mute"),
    *realtime_api("ban", api.BanView.as_view(), "realtime-ban"),
    *realtime_api("unban", api.UnbanView.as_view(), "realtime-unban"),
    *realtime_api("presence/<int:user_id>", api.PresenceView.as_view(), "realtime-presence"),
    # Last of the API: anything else under /api/realtime/ is the envelope's 404.
    re_path(r"^api/realtime(/|$)", RealtimeNotFoundView.as_view()),
]
