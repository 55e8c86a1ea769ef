"""The server's clock, in the units the wire uses (PROTOCOL.md: integer milliseconds)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as every timestamp on the wire."""
    return int(time.time() * 1000)


def now_s() -> float:
    """Seconds since the Unix epoch (live state and movement rules work in seconds)."""
    return time.time()
