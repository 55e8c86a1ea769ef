"""Where a connection's token and client IP come from (PROTOCOL.md §2)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

from realtime.core.constants import SUBPROTOCOL, SUBPROTOCOL_BEARER_PREFIX

Scope = dict[str, Any]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header, decoded leniently (never raises)."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def offered_subprotocols(scope: Scope) -> list[str]:
    return [str(p).strip() for p in scope.get("subprotocols") or ()]


def selected_subprotocol(scope: Scope) -> str | None:
    """``aeturnis.v1`` when the client offered it (browsers require one to be selected)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered_subprotocols(scope) else None


def token_from_handshake(scope: Scope) -> str | None:
    """A token from the subprotocol, Authorization header or query string, in that order."""
    for proto in offered_subprotocols(scope):
        if proto.startswith(SUBPROTOCOL_BEARER_PREFIX):
            return proto[len(SUBPROTOCOL_BEARER_PREFIX) :]
    auth = header(scope, b"authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    query = scope.get("query_string", b"")
    try:
        params = parse_qs(bytes(query).decode("latin-1"))
    except (TypeError, ValueError):
        return None
    values = params.get("token")
    return values[0] if values else None


def _networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return nets


def is_trusted_proxy(ip: str) -> bool:
    """Whether ``ip`` is in ``TRUSTED_PROXIES`` (its forwarded headers are believed)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _networks(settings.TRUSTED_PROXIES))


def client_ip(scope: Scope) -> str:
    """The peer address, or behind a trusted proxy the nearest untrusted ``X-Forwarded-For`` hop."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    return _client_behind_proxies(peer, lambda: header(scope, b"x-forwarded-for"))


def request_client_ip(request: HttpRequest) -> str:
    """``client_ip`` of an HTTP request (Django fills ``REMOTE_ADDR`` from the ASGI peer)."""
    peer = str(request.META.get("REMOTE_ADDR") or "unknown")
    return _client_behind_proxies(peer, lambda: request.META.get("HTTP_X_FORWARDED_FOR"))


def _client_behind_proxies(peer: str, forwarded_for: Callable[[], str | None]) -> str:
    if not settings.TRUSTED_PROXIES or not is_trusted_proxy(peer):
        return peer
    forwarded = forwarded_for()
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def origin_allowed(scope: Scope) -> bool:
    """Browsers send Origin; it must be allowed. Clients that send none are accepted."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    if settings.DEBUG and not settings.AETURNIS_ALLOWED_ORIGINS:
        return True
    allowed = [o.rstrip("/").lower() for o in settings.AETURNIS_ALLOWED_ORIGINS]
    if origin.rstrip("/").lower() in allowed or "*" in allowed:
        return True
    if allowed:
        return False
    # Default: the server's own host.
    host = header(scope, b"host")
    if host is None:
        return False
    _, _, origin_host = origin.partition("://")
    return origin_host.rstrip("/").lower() == host.lower()
