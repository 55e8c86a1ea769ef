"""Whether an account may connect: active and not banned (PROTOCOL.md §2 ``USER_BANNED``)."""

from __future__ import annotations

from realtime.models import Ban


def is_banned(user_id: int) -> bool:
    """Whether ``user_id`` has a ban that is neither lifted nor over."""
    return Ban.objects.active().filter(user_id=user_id).exists()
