"""The connection gate: per-IP limits, token checks and the account check (PROTOCOL.md §2, §6)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils import timezone

from realtime.auth.tokens import AuthError, TokenInfo, decode_access_token
from realtime.core.errors import ErrorCode
from realtime.core.health import REDIS
from realtime.core.reads import Rows, read
from realtime.core.redis_client import redis_enabled
from realtime.core.sql import column, pk, table
from realtime.models import Ban, RevokedToken
from realtime.state.gate import AUTH_BLOCK, GateReading, connect_gate
from realtime.state.ratelimit import BLOCK_SECONDS, RateLimiter
from realtime.state.stores import blocked_ips

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    username: str
    is_staff: bool


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """What the handshake learns of a token's account in one query."""

    account: Account | None  # None: no such user
    allowed: bool  # active and not banned
    revoked: bool  # the token's jti was revoked (logout)


@functools.cache
def _account_statement(vendor: str) -> str:
    """The account, whether an active ban exists (as ``Ban.objects.active()``: not lifted, no
    end or an end after now) and whether the token's jti was revoked, in one statement
    (``realtime.core.sql``: the handshake of every connection runs it)."""
    user = get_user_model()
    return (
        f"SELECT {column(user, 'username', 'u')}, {column(user, 'is_staff', 'u')},"  # noqa: S608 (names from the models; values are parameters)
        f" {column(user, 'is_active', 'u')},"
        f" EXISTS (SELECT 1 FROM {table(Ban)} b WHERE {column(Ban, 'user', 'b')} = {pk(user, 'u')}"
        f" AND {column(Ban, 'lifted_at', 'b')} IS NULL"
        f" AND ({column(Ban, 'until', 'b')} IS NULL OR {column(Ban, 'until', 'b')} > %s)),"
        f" EXISTS (SELECT 1 FROM {table(RevokedToken)} r"
        f" WHERE {column(RevokedToken, 'jti', 'r')} = %s"
        f" AND {column(RevokedToken, 'expires_at', 'r')} > %s)"
        f" FROM {table(user)} u WHERE {pk(user, 'u')} = %s"
    )


async def check_account(user_id: int, jti: str) -> AccountCheck:
    """One query: the account, whether it may connect, whether the token was revoked."""
    now = timezone.now()
    return await read(
        _account_statement, [now, jti, now, user_id], functools.partial(_account_check, user_id)
    )


def _account_check(user_id: int, rows: Rows) -> AccountCheck:
    if not rows:
        return AccountCheck(None, False, False)
    username, is_staff, is_active, banned, revoked = rows[0]
    account = Account(user_id, username, bool(is_staff))
    return AccountCheck(account, bool(is_active) and not banned, bool(revoked))


async def check_connect_allowed(ip: str, limiter: RateLimiter) -> GateReading:
    """Count this connection against its IP; raises ``CONNECTION_RATE_LIMITED`` when over, and
    ``ServiceUnavailable`` while Redis (rooms, presence) is down: the client tries again later.
    Returns what the gate read, for ``authenticate`` right after it (one Redis round trip for
    both, ``realtime.state.gate``)."""
    if redis_enabled():
        REDIS.check()
    gate = await connect_gate(ip, limiter)
    if gate.limited:
        logger.warning("connection rate exceeded, blocking %s", ip)
    if gate.refused:
        raise AuthError(ErrorCode.CONNECTION_RATE_LIMITED)
    return gate


async def _record_failure(ip: str, limiter: RateLimiter) -> None:
    await limiter.hit("auth_failures", ip)
    if await limiter.count("auth_failures", ip) >= limiter.limits["auth_failures"].amount:
        await blocked_ips.aset(AUTH_BLOCK.format(ip=ip), BLOCK_SECONDS["auth_failures"])
        logger.warning("too many failed authentications, blocking %s", ip)


async def authenticate(
    ip: str, raw_token: str | None, limiter: RateLimiter, gate: GateReading | None = None
) -> tuple[TokenInfo, Account]:
    """Admit a token from ``ip`` or raise ``AuthError`` with the contract's code.

    ``gate``: what ``check_connect_allowed`` read just before (its auth block, whether failures
    are on record); without it they are read here. A success clears the IP's failures. When the
    gate found none in Redis, there is nothing there to clear: a failure recorded since then
    counts as after this success (it raced with it, and could have landed after the clear), so
    only this process's fallback window is cleared, without a round trip."""
    if gate is None:
        auth_blocked = await blocked_ips.aremaining(AUTH_BLOCK.format(ip=ip)) > 0
    else:
        auth_blocked = gate.auth_blocked
    if auth_blocked:
        raise AuthError(ErrorCode.AUTH_RATE_LIMITED)
    if raw_token is None:
        raise AuthError(ErrorCode.AUTH_REQUIRED)
    try:
        info = decode_access_token(raw_token)
        found = await check_account(info.user_id, info.jti)
        if found.account is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if found.revoked:
            raise AuthError(ErrorCode.TOKEN_REVOKED)
    except AuthError:
        await _record_failure(ip, limiter)
        raise
    if not found.allowed:
        raise AuthError(ErrorCode.USER_BANNED)
    await limiter.clear("auth_failures", ip, shared=gate is None or gate.failures)
    return info, found.account
