"""A shortcut for verifying the access tokens this server signs itself (HMAC), accept-only.

simplejwt verifies through PyJWT, whose generic path prepares and length-checks the key, tries
to read it as a JWK and parses the token on every call: ~80 µs of CPU per connect on this
machine, against ~10 µs for the same checks written for the one shape of token this server
issues (bench/README.md). ``verified_claims`` accepts a token only when everything about it is
plain: three canonical base64url segments, a header of the configured HMAC ``alg`` (and
``typ``), a valid signature, a JSON object of claims whose ``iat``, ``nbf`` and ``exp`` are
numbers PyJWT would pass with the configured leeway, and ``sub`` and ``jti`` strings if present.

Anything else returns None and the caller asks simplejwt, whose answer (and error) is the
authority: an expired, forged or merely unusual token, and any configuration with an audience,
an issuer, a JWKS URL, a key PyJWT would warn about or a non-HMAC algorithm. So it never accepts
a token PyJWT would refuse, and never decides why one is refused (tests/unit/test_hs_jwt.py).
"""

from __future__ import annotations

import binascii
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+")  # unpadded base64url, as PyJWT and simplejwt write it
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PLAIN_HEADER = frozenset({"alg", "typ"})
_TIMES = ("iat", "nbf", "exp")


@dataclass(frozen=True, slots=True)
class _Verifier:
    algorithm: str
    digest: str
    key: bytes
    leeway_s: float


_cache: tuple[tuple[Any, ...], _Verifier | None] | None = None


def _verifier(backend: Any) -> _Verifier | None:
    """The shortcut for ``backend`` (simplejwt's ``TokenBackend``) as it is configured now, or
    None where only PyJWT's own path applies. Built once per configuration."""
    global _cache
    config = (
        backend.algorithm,
        backend.signing_key,
        backend.audience,
        backend.issuer,
        backend.jwks_client,
        backend.leeway,
    )
    if _cache is not None and _cache[0] == config:
        return _cache[1]
    verifier = _build(backend)
    _cache = (config, verifier)
    return verifier


def _build(backend: Any) -> _Verifier | None:
    digest = _DIGESTS.get(backend.algorithm)
    plain = backend.audience is None and backend.issuer is None and backend.jwks_client is None
    if digest is None or not plain or not backend.signing_key:
        return None
    algorithm = jwt.PyJWS().get_algorithm_by_name(backend.algorithm)
    try:
        key = algorithm.prepare_key(backend.signing_key)
    except jwt.InvalidKeyError:
        return None
    if not isinstance(key, bytes) or algorithm.check_key_length(key):
        return None  # PyJWT warns about this key at every verification: let it
    leeway_s = backend.get_leeway().total_seconds()
    return _Verifier(backend.algorithm, digest, key, leeway_s)


def _segment(data: bytes) -> bytes | None:
    """A segment's bytes, if it is canonical unpadded base64url (as PyJWT requires)."""
    if len(data) % 4 == 1 or _SEGMENT.fullmatch(data) is None:
        return None
    # The alphabet and the length are checked: the padded text always decodes.
    raw = binascii.a2b_base64(data.translate(_TO_STANDARD) + b"=" * (-len(data) % 4))
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_TO_URLSAFE) != data:
        return None  # other bits in the last character: PyJWT refuses it
    return raw


def verified_claims(token: str, backend: Any) -> dict[str, Any] | None:
    """The claims of ``token`` if it is plainly valid for ``backend``; None: ask simplejwt."""
    verifier = _verifier(backend)
    if verifier is None or not token.isascii():
        return None
    parts = token.encode().split(b".")
    if len(parts) != 3:
        return None
    header_raw, payload_raw, signature = _segment(parts[0]), _segment(parts[1]), _segment(parts[2])
    if header_raw is None or payload_raw is None or signature is None:
        return None
    expected = hmac.digest(verifier.key, parts[0] + b"." + parts[1], verifier.digest)
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        header = orjson.loads(header_raw)
        claims = orjson.loads(payload_raw)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(header, dict)
        or not header.keys() <= _PLAIN_HEADER
        or header.get("alg") != verifier.algorithm
        or not isinstance(claims, dict)
    ):
        return None
    return claims if _claims_pass(claims, verifier.leeway_s) else None


def _claims_pass(claims: dict[str, Any], leeway_s: float) -> bool:
    """PyJWT's checks of the registered claims with simplejwt's options (no audience, no
    issuer): whole seconds, as PyJWT compares them."""
    now = time.time()
    times = {}
    for name in _TIMES:
        if name in claims:
            value = claims[name]
            if type(value) is not int and type(value) is not float:
                return False  # PyJWT may still take it (a numeric string): let it decide
            try:
                times[name] = int(value)
            except (OverflowError, ValueError):
                return False
    if "iat" in times and times["iat"] > now + leeway_s:
        return False
    if "nbf" in times and times["nbf"] > now + leeway_s:
        return False
    if "exp" in times and times["exp"] <= now - leeway_s:
        return False
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            return False
    return True
