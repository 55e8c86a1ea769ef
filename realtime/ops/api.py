"""The admin HTTP API under ``/api/realtime/`` (PROTOCOL.md §7): staff only, one envelope.

Every answer, errors included, is ``{success, data, meta}`` or ``{success: false, error}``.
Anonymous callers get 401 (the JWT authenticator asks for a Bearer token), non-staff 403.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.core.redis_client import redis_enabled
from realtime.ops.announcements import Priority, announcement_send
from realtime.ops.moderation import (
    MAX_MINUTES,
    MAX_REASON_CHARS,
    ModerationError,
    ban_user,
    event_name_problem,
    kick_user,
    mute_user,
    notify_users,
    unban_user,
    user_must_exist,
)
from realtime.ops.stats import gather_stats
from realtime.runtime.lookup import current_runtime
from realtime.state.presence.backend import make_presence_store
from realtime.state.presence.store import LocalPresenceStore, PresenceStore, status_of_entries

MAX_NOTIFY_USERS = 1000


class IsStaff(BasePermission):
    message = "Staff only"

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


def envelope(data: Any, code: int = status.HTTP_200_OK) -> Response:
    return Response(
        {
            "success": True,
            "data": data,
            "meta": {"timestamp": int(time.time() * 1000), "version": settings.AETURNIS_VERSION},
        },
        status=code,
    )


def failure(code: str, message: str, http: int, details: Any = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response({"success": False, "error": error}, status=http)


_HTTP_CODES = {
    status.HTTP_400_BAD_REQUEST: "VALIDATION_ERROR",
    status.HTTP_401_UNAUTHORIZED: "AUTH_REQUIRED",
    status.HTTP_403_FORBIDDEN: "FORBIDDEN",
    status.HTTP_404_NOT_FOUND: "NOT_FOUND",
    status.HTTP_405_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
}


class RealtimeAPIView(APIView):
    permission_classes = [IsStaff]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ModerationError):
            http = status.HTTP_404_NOT_FOUND if exc.code == "USER_NOT_FOUND" else 400
            return failure(exc.code, exc.message, http, exc.details)
        response = super().handle_exception(exc)
        details = None
        if isinstance(exc, exceptions.ValidationError):
            message, details = "Invalid request body", exc.detail
        else:
            message = str(getattr(exc, "detail", "") or response.status_text)
        wrapped = failure(
            _HTTP_CODES.get(response.status_code, "ERROR"), message, response.status_code, details
        )
        for header in ("WWW-Authenticate", "Allow"):
            if header in response:
                wrapped[header] = response[header]
        return wrapped


def _valid(serializer_class: type[serializers.Serializer[Any]], request: Request) -> Any:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class AnnouncementBody(serializers.Serializer[Any]):
    message = serializers.CharField(max_length=500, trim_whitespace=True)
    priority = serializers.ChoiceField([p.value for p in Priority], default=Priority.MEDIUM.value)


class NotifyBody(serializers.Serializer[Any]):
    userIds = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_NOTIFY_USERS
    )
    event = serializers.CharField(max_length=100)
    data = serializers.DictField(default=dict)  # type: ignore[assignment]

    def validate_event(self, value: str) -> str:
        problem = event_name_problem(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value


class KickBody(serializers.Serializer[Any]):
    userId = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(max_length=MAX_REASON_CHARS, allow_blank=True, default="")


class MuteBody(KickBody):
    minutes = serializers.FloatField(min_value=0.1, max_value=MAX_MINUTES)


class BanBody(KickBody):
    minutes = serializers.FloatField(min_value=0.1, max_value=MAX_MINUTES, required=False)


class UnbanBody(KickBody):
    pass


ENVELOPE = {
    200: OpenApiResponse(OpenApiTypes.OBJECT, description="{success, data, meta}"),
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="{success: false, error}"),
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="anonymous"),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="not staff"),
}


class StatsView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], responses=ENVELOPE)
    def get(self, request: Request) -> Response:
        return envelope(gather_stats())


class AnnouncementView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=AnnouncementBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(AnnouncementBody, request)
        try:
            payload = announcement_send(
                body["message"], Priority(body["priority"]), sent_by_id=request.user.pk
            )
        except ValueError as exc:
            return failure("VALIDATION_ERROR", str(exc), status.HTTP_400_BAD_REQUEST)
        return envelope(payload)


class NotifyView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=NotifyBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(NotifyBody, request)
        count = notify_users(user_ids=body["userIds"], event=body["event"], data=body["data"])
        return envelope({"event": body["event"], "users": count})


class KickView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=KickBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(KickBody, request)
        kick_user(user_id=body["userId"], reason=body["reason"])
        return envelope({"userId": str(body["userId"]), "kicked": True})


class MuteView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=MuteBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(MuteBody, request)
        until = mute_user(
            user_id=body["userId"],
            minutes=body["minutes"],
            reason=body["reason"],
            by_id=request.user.pk,
        )
        return envelope({"userId": str(body["userId"]), "until": until})


class BanView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=BanBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(BanBody, request)
        ban = ban_user(
            user_id=body["userId"],
            reason=body["reason"],
            minutes=body.get("minutes"),
            by_id=request.user.pk,
        )
        until = int(ban.until.timestamp() * 1000) if ban.until else None
        return envelope({"userId": str(body["userId"]), "banned": True, "until": until})


class UnbanView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], request=UnbanBody, responses=ENVELOPE)
    def post(self, request: Request) -> Response:
        body = _valid(UnbanBody, request)
        lifted = unban_user(user_id=body["userId"], by_id=request.user.pk)
        return envelope({"userId": str(body["userId"]), "lifted": lifted})


def _presence_store() -> PresenceStore:
    runtime = current_runtime()
    if not redis_enabled() and runtime is not None:
        return runtime.presence.store
    return make_presence_store() if redis_enabled() else LocalPresenceStore()


async def _presence_of(user_id: int) -> dict[str, Any]:
    runtime = current_runtime()
    store = _presence_store()
    if runtime is not None and not redis_enabled():
        state = (await runtime.presence.state_of([user_id]))[str(user_id)]
    else:
        now = int(time.time() * 1000)
        entries = (await store.entries_for_users([user_id], now_ms=now)).get(user_id, [])
        seen = (await store.last_seen([user_id])).get(user_id)
        state = {
            "status": status_of_entries(entries),
            "lastSeen": max((e.active_at for e in entries), default=seen),
            "connections": len(entries),
        }
    return {
        "userId": str(user_id),
        **state,
        "recentActivity": await _recent_activity(store, user_id),
    }


async def _recent_activity(store: PresenceStore, user_id: int) -> list[dict[str, Any]]:
    """Activities are written behind (``Presence.record``): served by a process with a
    runtime on this loop, the answer includes what it recorded in the last moment."""
    runtime = current_runtime()
    if runtime is not None and runtime.loop is asyncio.get_running_loop():
        return await runtime.presence.activities(user_id)
    return await store.activities(user_id)


class PresenceView(RealtimeAPIView):
    @extend_schema(tags=["realtime"], responses=ENVELOPE)
    def get(self, request: Request, user_id: int) -> Response:
        user_must_exist(user_id)  # an unknown user is 404, as everywhere in this API
        return envelope(async_to_sync(_presence_of)(user_id))
