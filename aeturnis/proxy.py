"""The scheme a client used, as told by a TLS-terminating proxy, believed only from that proxy.

Behind nginx the server sees plain http from the proxy, so Django would think every request
insecure: the admin's CSRF origin check fails ("Origin checking failed", 403) and secure
cookies and HSTS never apply. Django's own ``SECURE_PROXY_SSL_HEADER`` fixes that by believing
``X-Forwarded-Proto`` from *anyone*, which lets a client that reaches a server port directly
claim https. ``forwarded_scope`` instead sets the ASGI scope's ``scheme`` from the header only
when the peer is in ``TRUSTED_PROXIES`` (the same list that decides ``X-Forwarded-For``,
``realtime.auth.sources.client_ip``) and removes the header otherwise, so nothing further in
moves on an untrusted value.
"""

from __future__ import annotations

from typing import Any

from realtime.auth.sources import is_trusted_proxy

Scope = dict[str, Any]

FORWARDED_PROTO = b"x-forwarded-proto"
# The schemes a proxy may report, and what they mean for each kind of connection.
_SCHEMES = {
    "http": {"https": "https", "http": "http"},
    "websocket": {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"},
}


def forwarded_scope(scope: Scope) -> Scope:
    """``scope`` with the proxy's scheme applied (trusted peer) or its header removed."""
    headers = scope.get("headers") or []
    claimed = [bytes(v) for k, v in headers if bytes(k).lower() == FORWARDED_PROTO]
    if not claimed:
        return scope
    client = scope.get("client")
    if client and is_trusted_proxy(str(client[0])):
        # A chain of proxies may list several; the first is what the client used.
        proto = claimed[0].decode("latin-1").split(",")[0].strip().lower()
        scheme = _SCHEMES[scope["type"]].get(proto)
        return scope if scheme is None else {**scope, "scheme": scheme}
    kept = [(k, v) for k, v in headers if bytes(k).lower() != FORWARDED_PROTO]
    return {**scope, "headers": kept}
