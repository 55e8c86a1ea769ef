from __future__ import annotations

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from realtime.ops import api
from realtime.ops.asyncapi_views import asyncapi_json, asyncapi_page
from realtime.ops.auth_views import LogoutView
from realtime.ops.health import healthz, readyz
from realtime.ops.metrics import metrics_view
from realtime.ops.online import online_now
from realtime.transport.engineio_http import engineio_http

urlpatterns = [
    # Before admin/ so that the admin's catch-all does not take it; staff only.
    path("admin/realtime/online/", admin.site.admin_view(online_now), name="realtime-online"),
    path("admin/", admin.site.urls),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/logout/", LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/asyncapi.json", asyncapi_json, name="asyncapi-json"),
    path("api/asyncapi/", asyncapi_page, name="asyncapi"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("socket.io/", engineio_http, name="engineio-http"),
    path("api/realtime/stats", api.StatsView.as_view(), name="realtime-stats"),
    path("api/realtime/announcement", api.AnnouncementView.as_view(), name="realtime-announce"),
    path("api/realtime/notify", api.NotifyView.as_view(), name="realtime-notify"),
    path("api/realtime/kick", api.KickView.as_view(), name="realtime-kick"),
    path("api/realtime/mute", api.MuteView.as_view(), name="realtime-mute"),
    path("api/realtime/ban", api.BanView.as_view(), name="realtime-ban"),
    path("api/realtime/unban", api.UnbanView.as_view(), name="realtime-unban"),
    path(
        "api/realtime/presence/<int:user_id>",
        api.PresenceView.as_view(),
        name="realtime-presence",
    ),
]
