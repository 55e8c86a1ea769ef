"""The access-token shortcut (``realtime.auth.hs_jwt``) accepts only what PyJWT accepts.

Every token is checked both ways: whenever the shortcut returns claims, simplejwt's own
verification (PyJWT) must accept the token with the same claims. The tokens this server issues
must take the shortcut (else it is dead weight); everything unusual must be left to PyJWT.
"""

from __future__ import annotations

import base64
import hmac
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken

from realtime.auth.hs_jwt import verified_claims
from realtime.auth.tokens import AuthError, decode_access_token
from realtime.core.errors import ErrorCode

KEY = "a-test-signing-key-long-enough-for-every-hmac-algorithm-0123456789abcdef"
BACKEND = TokenBackend("HS256", KEY)


def pyjwt_claims(token: str, backend: TokenBackend = BACKEND) -> dict[str, Any] | None:
    try:
        return backend.decode(token)  # type: ignore[arg-type]
    except Exception:
        return None


def sign(claims: dict[str, Any], *, key: str = KEY, alg: str = "HS256", **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers or None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"token_type": "access", "exp": now + 600, "iat": now, "jti": "j1", "user_id": 7}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_an_access_token_this_server_issues_takes_the_shortcut_with_pyjwts_claims() -> None:
    class User:
        id = pk = 42

    token = str(AccessToken.for_user(User()))  # type: ignore[arg-type]
    found = verified_claims(token, token_backend)
    assert found is not None
    assert found == token_backend.decode(token)  # type: ignore[arg-type]
    assert str(found["user_id"]) == "42"


def test_a_plain_token_of_this_backend_is_accepted() -> None:
    token = sign(claims())
    assert verified_claims(token, BACKEND) == pyjwt_claims(token) != None  # noqa: E711


def _unsigned(header: dict[str, Any], body: dict[str, Any]) -> str:
    import orjson

    return f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(body))}."


def _padded(token: str) -> str:
    """The same header and claims with '=' padding, signed as such (PyJWT accepts padding)."""
    head, body, _ = (part + "=" * (-len(part) % 4) for part in token.split("."))
    signature = hmac.digest(KEY.encode(), f"{head}.{body}".encode(), "sha256")
    return f"{head}.{body}.{base64.urlsafe_b64encode(signature).decode()}"


# Made when a test runs, not when the module is collected: a suite can run longer than the
# ten minutes these tokens are valid for.
REFUSED_BY_BOTH: dict[str, Callable[[], str]] = {
    "expired": lambda: sign(claims(exp=int(time.time()) - 5)),
    "not before in the future": lambda: sign(claims(nbf=int(time.time()) + 600)),
    "issued in the future": lambda: sign(claims(iat=int(time.time()) + 600)),
    "another key": lambda: sign(claims(), key=KEY + "x"),
    "another algorithm": lambda: sign(claims(), alg="HS512"),
    "alg none": lambda: _unsigned({"alg": "none", "typ": "JWT"}, claims()),
    "unknown critical extension": lambda: sign(claims(), crit=["exp"], exp=1),
    "subject not a string": lambda: sign(claims(sub=5)),
    "jti not a string": lambda: sign(claims(jti=5)),
    "exp not a number": lambda: sign(claims(exp="soon")),
    "two segments": lambda: sign(claims()).rsplit(".", 1)[0],
    "four segments": lambda: sign(claims()) + ".e30",
    "payload not an object": lambda: sign(claims()).split(".")[0] + "." + b64(b"[1]") + ".xx",
    "empty": lambda: "",
}

LEFT_TO_PYJWT: dict[str, Callable[[], str]] = {  # valid for PyJWT, unusual for the shortcut
    "a key id": lambda: sign(claims(), kid="k1"),
    "another header field": lambda: sign(claims(), x5u="https://example.invalid"),
    "exp as a numeric string": lambda: sign(claims(exp=str(int(time.time()) + 600))),
    "iat as a boolean": lambda: sign(claims(iat=True)),
    "padded segments": lambda: _padded(sign(claims())),
}


@pytest.mark.parametrize("name", sorted(REFUSED_BY_BOTH))
def test_a_token_pyjwt_refuses_is_never_taken_by_the_shortcut(name: str) -> None:
    token = REFUSED_BY_BOTH[name]()
    assert verified_claims(token, BACKEND) is None
    assert pyjwt_claims(token) is None


@pytest.mark.parametrize("name", sorted(LEFT_TO_PYJWT))
def test_an_unusual_token_is_left_to_pyjwt_which_decides(name: str) -> None:
    token = LEFT_TO_PYJWT[name]()
    assert verified_claims(token, BACKEND) is None
    assert pyjwt_claims(token) is not None


def test_the_leeway_is_pyjwts_whole_seconds() -> None:
    lenient = TokenBackend("HS256", KEY, leeway=timedelta(seconds=30))
    late = sign(claims(exp=int(time.time()) - 10))
    assert verified_claims(late, lenient) == pyjwt_claims(late, lenient) != None  # noqa: E711
    assert verified_claims(late, BACKEND) is None


def test_a_non_canonical_last_character_is_refused_like_pyjwt_does() -> None:
    token = sign(claims())
    head, body, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # HS256's 32 bytes are 43 characters: the last one carries 4 bits and 2 unused ones
    twin = alphabet[alphabet.index(signature[-1]) ^ 1]
    forged = f"{head}.{body}.{signature[:-1]}{twin}"
    assert base64.urlsafe_b64decode(forged.split(".")[2] + "=") == base64.urlsafe_b64decode(
        signature + "="
    )
    assert verified_claims(forged, BACKEND) is None
    assert pyjwt_claims(forged) is None


@pytest.mark.parametrize(
    "backend",
    [
        TokenBackend("HS256", KEY, audience="game"),
        TokenBackend("HS256", KEY, issuer="aeturnis"),
        TokenBackend("HS256", "short"),  # PyJWT warns about it at every verification
    ],
    ids=["audience", "issuer", "short key"],
)
def test_a_configuration_beyond_the_plain_one_always_goes_to_pyjwt(backend: TokenBackend) -> None:
    extra = {"aud": "game"} if backend.audience else {"iss": "aeturnis"} if backend.issuer else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token = sign(claims(**extra), key=backend.signing_key or "")
        assert pyjwt_claims(token, backend) is not None
    assert verified_claims(token, backend) is None


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.sampled_from("Aa0-_.=+/ é"))
def test_a_changed_character_is_taken_only_if_pyjwt_takes_it_the_same(
    position: int, replacement: str
) -> None:
    token = sign(claims())
    at = position % len(token)
    changed = token[:at] + replacement + token[at + 1 :]
    found = verified_claims(changed, BACKEND)
    if found is not None:
        assert found == pyjwt_claims(changed)


def test_refusals_still_carry_pyjwts_reasons() -> None:
    with pytest.raises(AuthError) as expired:
        decode_access_token(
            token_backend.encode(claims(exp=int(time.time()) - 5))  # type: ignore[arg-type]
        )
    assert expired.value.code == ErrorCode.TOKEN_EXPIRED
    with pytest.raises(AuthError) as forged:
        decode_access_token(sign(claims()))  # another key than the server's
    assert forged.value.code == ErrorCode.TOKEN_INVALID
