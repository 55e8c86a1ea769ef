"""What the operator commands share: they reach running servers only through Redis."""

from __future__ import annotations

from django.core.management.base import CommandError

from realtime.fanout.broadcast import reaches_other_processes


def require_redis() -> None:
    if not reaches_other_processes():
        raise CommandError(
            "REDIS_URL is not set: this command cannot reach a running server. In the "
            "embedded default use the Django admin or the /api/realtime/ API."
        )
