"""Access-token verification and revocation (PROTOCOL.md §2).

simplejwt verifies an access token's signature and expiry without the database; revoking
access tokens is ours: a revoked ``jti`` is kept in the database (``RevokedToken``) until the
token would have expired, so a revocation survives a Redis restart (PROTOCOL.md §8a).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendExpiredToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend

from realtime.auth.hs_jwt import verified_claims
from realtime.core.db import db
from realtime.core.errors import ErrorCode
from realtime.models import RevokedToken

MAX_TOKEN_LENGTH = 4096


class AuthError(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.value)
        self.code = code


@dataclass(frozen=True, slots=True)
class TokenInfo:
    user_id: int
    jti: str
    exp: float

    def seconds_left(self, now: float | None = None) -> float:
        return self.exp - (time.time() if now is None else now)


def decode_access_token(raw: Any) -> TokenInfo:
    """Verify signature, expiry and type of an access token; raises ``AuthError``."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    # The shortcut takes the tokens this server signs; PyJWT answers for every other one.
    payload = verified_claims(raw, token_backend)
    if payload is None:
        try:
            payload = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]
        except TokenBackendExpiredToken:
            raise AuthError(ErrorCode.TOKEN_EXPIRED) from None
        except Exception:
            raise AuthError(ErrorCode.TOKEN_INVALID) from None
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != "access":
        raise AuthError(ErrorCode.TOKEN_INVALID)
    user_id, jti, exp = payload.get("user_id"), payload.get("jti"), payload.get("exp")
    try:
        info = TokenInfo(user_id=int(user_id), jti=str(jti), exp=float(exp))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AuthError(ErrorCode.TOKEN_INVALID) from None
    if not jti:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    return info


async def verify_access_token(raw: Any) -> TokenInfo:
    """``decode_access_token`` plus the revocation check (the database is the record)."""
    info = decode_access_token(raw)
    if await db(is_revoked, info.jti):
        raise AuthError(ErrorCode.TOKEN_REVOKED)
    return info


def revoke_access_token(info: TokenInfo) -> None:
    """Record ``info.jti`` as revoked until the token expires (sync callers: the logout view).

    Revocations that are over are forgotten on the way, so the table stays as small as the
    number of tokens revoked within one token lifetime.
    """
    now = timezone.now()
    RevokedToken.objects.filter(expires_at__lt=now).delete()
    RevokedToken.objects.update_or_create(
        jti=info.jti,
        defaults={
            "user_id": info.user_id,
            "expires_at": datetime.fromtimestamp(info.exp + 5, UTC),
        },
    )


def is_revoked(jti: str) -> bool:
    """Whether ``jti`` was revoked and its token has not expired yet (sync)."""
    return RevokedToken.objects.filter(jti=jti, expires_at__gt=timezone.now()).exists()


def revoked_among(jtis: Iterable[str]) -> set[str]:
    """Which of ``jtis`` are revoked (sync): one query for many live connections."""
    wanted = set(jtis)
    if not wanted:
        return set()
    found = RevokedToken.objects.filter(jti__in=wanted, expires_at__gt=timezone.now())
    return set(found.values_list("jti", flat=True))
