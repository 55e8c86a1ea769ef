"""What the connect gate needs of an IP's shared state, read and written at once.

Before the token is checked, a connection from ``ip`` checks the IP's connect block, counts
against its connect limit (blocking the IP when it goes over), then checks its auth block
(PROTOCOL.md §2, §6). With Redis that is one script, one round trip, in that order and
atomically; it also says whether the IP has failed authentications on record, so a success
clears them only when there is something to clear. Without Redis the same steps run against
this process's blocked-IP flags and limiter.

The connect limit is ``limits``' moving window on ``limits``' own key, hit with the library's own
Lua (``ratelimit.ACQUIRE_LUA``, which ``RateLimiter`` runs for every shared hit too), so the
limiter and this gate keep one window and one semantics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from realtime.core.health import REDIS
from realtime.core.redis_client import REDIS_ERRORS, script
from realtime.state.ratelimit import ACQUIRE_LUA, BLOCK_SECONDS, RateLimiter
from realtime.state.stores import blocked_ips


@dataclass(frozen=True, slots=True)
class GateReading:
    """The IP's state as the gate found it (``limited``: it went over its connect limit just
    now and is blocked from now on)."""

    connect_blocked: bool
    limited: bool
    auth_blocked: bool
    failures: bool  # failed authentications on record: a success must clear them

    @property
    def refused(self) -> bool:
        return self.connect_blocked or self.limited


# KEYS: connect block flag, connect window, auth block flag, auth failures window.
# ARGV: block ms, then acquire_moving_window's (timestamp, limit, expiry, amount).
# Returns {connect blocked, limited, auth blocked, failures on record} as 0/1.
_GATE_LUA = (
    "local function acquire(KEYS, ARGV)\n"
    + ACQUIRE_LUA
    + """
end
if redis.call('PTTL', KEYS[1]) > 0 then return {1, 0, 0, 0} end
if not acquire({KEYS[2]}, {ARGV[2], ARGV[3], ARGV[4], ARGV[5]}) then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
  return {0, 1, 0, 0}
end
local auth_blocked = redis.call('PTTL', KEYS[3]) > 0 and 1 or 0
return {0, 0, auth_blocked, redis.call('EXISTS', KEYS[4])}
"""
)

CONNECT_BLOCK = "connect:{ip}"
AUTH_BLOCK = "auth:{ip}"


async def connect_gate(ip: str, limiter: RateLimiter) -> GateReading:
    """Run the gate's steps for ``ip`` (see the module docstring); raises
    ``ServiceUnavailable`` when Redis fails under it."""
    if limiter.shared:
        return await _shared_gate(ip, limiter)
    return await _local_gate(ip, limiter)


async def _local_gate(ip: str, limiter: RateLimiter) -> GateReading:
    if await blocked_ips.aremaining(CONNECT_BLOCK.format(ip=ip)) > 0:
        return GateReading(True, False, False, False)
    if not (await limiter.hit("connect", ip)).allowed:
        await blocked_ips.aset(CONNECT_BLOCK.format(ip=ip), BLOCK_SECONDS["connect"])
        return GateReading(False, True, False, False)
    auth_blocked = await blocked_ips.aremaining(AUTH_BLOCK.format(ip=ip)) > 0
    # Clearing this process's window costs no round trip: always clear it.
    return GateReading(False, False, auth_blocked, True)


async def _shared_gate(ip: str, limiter: RateLimiter) -> GateReading:
    REDIS.check()
    connect = limiter.limits["connect"]
    keys = [
        blocked_ips.redis_key(CONNECT_BLOCK.format(ip=ip)),
        limiter.redis_key("connect", ip),
        blocked_ips.redis_key(AUTH_BLOCK.format(ip=ip)),
        limiter.redis_key("auth_failures", ip),
    ]
    args: list[Any] = [
        BLOCK_SECONDS["connect"] * 1000,
        time.time(),
        connect.amount,
        connect.get_expiry(),
        1,
    ]
    try:
        result = await script(_GATE_LUA)(keys=keys, args=args)
    except REDIS_ERRORS as exc:
        raise REDIS.failed("blocked-ips", exc) from None
    return GateReading(*(bool(flag) for flag in result))
