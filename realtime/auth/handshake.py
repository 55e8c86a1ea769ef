"""The connection gate: per-IP limits, token checks and the account check (PROTOCOL.md §2, §6)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from realtime.auth.bans import is_banned
from realtime.auth.tokens import AuthError, TokenInfo, verify_access_token
from realtime.core.errors import ErrorCode
from realtime.state.ratelimit import BLOCK_SECONDS, RateLimiter
from realtime.state.stores import blocked_ips

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    username: str
    is_staff: bool


def _account(user_id: int) -> tuple[Account | None, bool]:
    """(account, allowed) for ``user_id``: not allowed when inactive or banned; (None, False)
    when there is no such user."""
    row: Any = (
        get_user_model()
        .objects.filter(pk=user_id)
        .values("username", "is_staff", "is_active")
        .first()
    )
    if row is None:
        return None, False
    allowed = bool(row["is_active"]) and not is_banned(user_id)
    return Account(user_id, row["username"], row["is_staff"]), allowed


async def check_connect_allowed(ip: str, limiter: RateLimiter) -> None:
    """Count this connection against its IP; raises ``CONNECTION_RATE_LIMITED`` when over."""
    if await blocked_ips.aremaining(f"connect:{ip}") > 0:
        raise AuthError(ErrorCode.CONNECTION_RATE_LIMITED)
    verdict = await limiter.hit("connect", ip)
    if not verdict.allowed:
        await blocked_ips.aset(f"connect:{ip}", BLOCK_SECONDS["connect"])
        logger.warning("connection rate exceeded, blocking %s", ip)
        raise AuthError(ErrorCode.CONNECTION_RATE_LIMITED)


async def _record_failure(ip: str, limiter: RateLimiter) -> None:
    await limiter.hit("auth_failures", ip)
    if await limiter.count("auth_failures", ip) >= limiter.limits["auth_failures"].amount:
        await blocked_ips.aset(f"auth:{ip}", BLOCK_SECONDS["auth_failures"])
        logger.warning("too many failed authentications, blocking %s", ip)


async def authenticate(
    ip: str, raw_token: str | None, limiter: RateLimiter
) -> tuple[TokenInfo, Account]:
    """Admit a token from ``ip`` or raise ``AuthError`` with the contract's code."""
    if await blocked_ips.aremaining(f"auth:{ip}") > 0:
        raise AuthError(ErrorCode.AUTH_RATE_LIMITED)
    if raw_token is None:
        raise AuthError(ErrorCode.AUTH_REQUIRED)
    try:
        info = await verify_access_token(raw_token)
        account, active = await database_sync_to_async(_account)(info.user_id)
        if account is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
    except AuthError:
        await _record_failure(ip, limiter)
        raise
    if not active:
        raise AuthError(ErrorCode.USER_BANNED)
    await limiter.clear("auth_failures", ip)
    return info, account
