"""OpenAPI details drf-spectacular cannot guess: our JWT authenticator is simplejwt's scheme."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class RevocationAwareJWTScheme(SimpleJWTScheme):  # type: ignore[no-untyped-call]
    target_class = "realtime.auth.drf.RevocationAwareJWTAuthentication"
    name = "jwtAuth"
