"""The HTTP site around the API: the landing page at ``/`` and what unknown URLs answer.

Unknown URLs answer a plain 404 in every mode. DEBUG is on by default (the embedded
default is for development), and Django's debug 404 would list every URL pattern of the
server to anyone who asks for a missing page; errors raised inside views still get Django's
debug pages when DEBUG is on. Unknown paths under ``/api/realtime/`` answer the API's
envelope instead (PROTOCOL.md §7).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.deprecation import MiddlewareMixin
from django.views.decorators.http import require_safe
from django.views.defaults import page_not_found
from rest_framework import exceptions
from rest_framework.request import Request

from realtime.ops.api import RealtimeAPIView


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    """What this server is, and links to everything a person can open on it."""
    ws_scheme = "wss" if request.is_secure() else "ws"
    context = {
        "version": settings.AETURNIS_VERSION,
        "ws_base": f"{ws_scheme}://{request.get_host()}",
    }
    return render(request, "aeturnis/landing.html", context)


class PlainNotFoundMiddleware(MiddlewareMixin):
    """A URL that matches no route gets Django's plain 404 page, whatever DEBUG says."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # resolver_match stays None only when URL resolution itself failed.
        if response.status_code == 404 and request.resolver_match is None:
            return page_not_found(request, Http404())
        return response


class RealtimeNotFoundView(RealtimeAPIView):
    """Any unknown path under ``/api/realtime/``: 404 ``NOT_FOUND`` in the envelope, for
    every caller (whether a route exists is not a secret worth a 401)."""

    authentication_classes = []
    permission_classes = []
    schema = None  # not an endpoint of the API

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise exceptions.NotFound("No such endpoint under /api/realtime/")
