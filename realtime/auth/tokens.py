"""Access-token verification and revocation (PROTOCOL.md §2).

simplejwt verifies an access token's signature and expiry without the database; revoking
access tokens is ours: a revoked ``jti`` is remembered until the token would have expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rest_framework_simplejwt.exceptions import TokenBackendExpiredToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend

from realtime.core.errors import ErrorCode
from realtime.state.stores import revoked_tokens

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
    try:
        payload: dict[str, Any] = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]
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
    """``decode_access_token`` plus the revocation check shared by every process."""
    info = decode_access_token(raw)
    if await revoked_tokens.aremaining(info.jti) > 0:
        raise AuthError(ErrorCode.TOKEN_REVOKED)
    return info


def revoke_access_token(info: TokenInfo) -> None:
    """Remember ``info.jti`` as revoked until the token expires (sync callers)."""
    revoked_tokens.set(info.jti, info.seconds_left() + 5)


def is_revoked(jti: str) -> bool:
    return revoked_tokens.remaining(jti) > 0
