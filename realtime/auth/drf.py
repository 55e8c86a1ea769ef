"""DRF authentication that also refuses revoked access tokens."""

from __future__ import annotations

from typing import Any

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from realtime.auth.tokens import is_revoked


class RevocationAwareJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Any:
        token = super().get_validated_token(raw_token)
        jti = token.get("jti")
        if jti and is_revoked(str(jti)):
            raise InvalidToken({"detail": "Token has been revoked", "code": "token_revoked"})
        return token
