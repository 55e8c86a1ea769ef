"""The admin's "Online now" page: connections, users and rooms of every live server process.

It reads the same per-process reports as ``GET /api/realtime/stats`` (``realtime.ops.stats``)
and reloads itself every few seconds. ``aeturnis/urls.py`` wraps it in
``admin.site.admin_view``, so only staff reach it.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from realtime.core.redis_client import redis_enabled
from realtime.ops.stats import gather_stats, live_processes, process_details

REFRESH_S = 5


def online_now(request: HttpRequest) -> TemplateResponse:
    processes = live_processes()
    context = {
        **admin.site.each_context(request),
        "title": "Online now",
        "stats": gather_stats(processes),
        "processes": process_details(processes),
        "updated": timezone.now(),
        "refresh_s": REFRESH_S,
        "redis": redis_enabled(),
    }
    return TemplateResponse(request, "realtime/admin/online.html", context)
