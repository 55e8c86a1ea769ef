"""``GET /metrics`` (PROTOCOL.md §7): the Prometheus text format of ``realtime.core.metrics``."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from realtime.core.metrics import render


def authorized(request: HttpRequest, token: str) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <token>`` (constant-time compare)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: anonymous, unless ``AETURNIS_METRICS_TOKEN`` is set (then 401
    without that bearer token)."""
    token = settings.AETURNIS_METRICS_TOKEN
    if token and not authorized(request, token):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
