"""X-Forwarded-Proto is believed from TRUSTED_PROXIES only (aeturnis/proxy.py), for every HTTP
and WebSocket scope of the application (aeturnis/asgi.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from aeturnis.proxy import forwarded_scope

PROXY = "10.0.0.2"


def scope(kind: str = "http", *, peer: str, proto: str | None) -> dict[str, Any]:
    headers = [(b"host", b"game.example.com")]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": (peer, 51000),
        "headers": headers,
    }


@override_settings(TRUSTED_PROXIES=[PROXY])
@pytest.mark.parametrize(("kind", "expected"), [("http", "https"), ("websocket", "wss")])
def test_a_trusted_proxy_sets_the_scheme(kind: str, expected: str) -> None:
    assert forwarded_scope(scope(kind, peer=PROXY, proto="https"))["scheme"] == expected


@override_settings(TRUSTED_PROXIES=["10.0.0.0/24"])
def test_the_first_of_several_protocols_is_the_clients() -> None:
    assert forwarded_scope(scope(peer=PROXY, proto="https, http"))["scheme"] == "https"


@override_settings(TRUSTED_PROXIES=[PROXY])
def test_anyone_else_claiming_https_is_ignored_and_the_header_removed() -> None:
    result = forwarded_scope(scope(peer="203.0.113.9", proto="https"))
    assert result["scheme"] == "http"
    assert all(name != b"x-forwarded-proto" for name, _ in result["headers"])
    assert (b"host", b"game.example.com") in result["headers"]


@override_settings(TRUSTED_PROXIES=[])
def test_with_no_trusted_proxies_the_header_is_never_believed() -> None:
    assert forwarded_scope(scope(peer="127.0.0.1", proto="https"))["scheme"] == "http"


@override_settings(TRUSTED_PROXIES=[PROXY])
def test_an_unknown_protocol_or_no_header_leaves_the_scope_alone() -> None:
    unknown = scope(peer=PROXY, proto="gopher")
    assert forwarded_scope(unknown) is unknown
    plain = scope(peer=PROXY, proto=None)
    assert forwarded_scope(plain) is plain


@override_settings(TRUSTED_PROXIES=[PROXY])
async def test_the_application_passes_the_adjusted_scope_on() -> None:
    from aeturnis.asgi import Application

    seen: list[dict[str, Any]] = []

    async def http(inner: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(inner)

    class Consumer:
        async def __call__(self, inner: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(inner)

    application = Application(http, lambda inner: Consumer)
    await application(scope(peer=PROXY, proto="https"), None, None)
    await application(scope("websocket", peer=PROXY, proto="https"), None, None)
    assert [inner["scheme"] for inner in seen] == ["https", "wss"]
    with pytest.raises(ValueError, match="lifespan"):
        await application({"type": "lifespan"}, None, None)
