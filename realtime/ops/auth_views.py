"""``POST /api/auth/logout/``: revoke the access token and blacklist the refresh token."""

from __future__ import annotations

import contextlib
from typing import Any, cast

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from realtime.auth.tokens import TokenInfo, revoke_access_token
from realtime.core.errors import ServiceUnavailable
from realtime.fanout import broadcast, rooms


class LogoutSerializer(serializers.Serializer[Any]):
    refresh = serializers.CharField(required=False, allow_blank=False)


class LogoutView(APIView):
    """Revoke the caller's access token (every socket using it closes within 1 s)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=LogoutSerializer,
        responses={
            205: None,
            400: inline_serializer("LogoutError", {"detail": serializers.CharField()}),
        },
    )
    def post(self, request: Request) -> Response:
        body = LogoutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        access: Any = request.auth
        user_id = int(cast(int, request.user.pk))
        refresh_raw = body.validated_data.get("refresh")
        if refresh_raw:
            try:
                refresh = RefreshToken(refresh_raw)
            except TokenError:
                return Response(
                    {"detail": "Invalid refresh token"}, status=status.HTTP_400_BAD_REQUEST
                )
            if int(refresh.get("user_id", 0)) != user_id:
                return Response(
                    {"detail": "Refresh token belongs to another user"},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            refresh.blacklist()
        info = TokenInfo(user_id=user_id, jti=str(access["jti"]), exp=float(access["exp"]))
        revoke_access_token(info)
        # The database is the record; live sockets are told through Redis, and while Redis is
        # down each process checks its sockets' tokens again when it is back.
        with contextlib.suppress(ServiceUnavailable):
            broadcast.control_sync_room(rooms.user_room(user_id), "revoke", jti=info.jti)
        return Response(status=status.HTTP_205_RESET_CONTENT)
