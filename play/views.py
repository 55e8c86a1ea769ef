"""``/play/``: the page, and two read-only JSON views for what the socket does not carry."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from play.selectors import play_account, play_zone_positions, play_zones


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "play/index.html")


class AccountView(APIView):
    """The caller's characters (with guild rosters) and the zone map."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["play"],
        summary="The caller's characters, their guilds' members, and the zones",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        user = request.user
        assert user.pk is not None  # IsAuthenticated
        return Response(
            {
                "user": {"id": str(user.pk), "username": user.get_username()},
                "characters": play_account(user.pk),
                "zones": play_zones(),
            }
        )


class ZonePositionsView(APIView):
    """Where the characters of a zone were last stored; the page draws idle characters there."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["play"],
        summary="Stored positions of the characters in a zone",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, zone: str) -> Response:
        return Response({"zone": zone, "characters": play_zone_positions(zone)})
