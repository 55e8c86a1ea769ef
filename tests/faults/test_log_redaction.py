"""No token in any line a server process writes, on daphne and uvicorn (issue #13).

Before: "A token in ?token= is written to the server's access log (daphne's and uvicorn's own
lines)". Now every place a client can put a token — ``?token=`` and ``?access_token=`` on
WebSocket and HTTP requests, ``Authorization: Bearer``, the ``bearer.<jwt>`` subprotocol, the
Engine.IO handshake, refresh and logout bodies — leaves no token (nor anything shaped like a
JWT) in the process's output: its own access lines, the application's log lines, plain or JSON
(``AETURNIS_LOG_JSON``), at DEBUG level so that nothing is hidden by the level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import STOP_GRACE_S, create_user, expect_close, http, logout, ws_connect
from tests.faults.conftest import rate_limits_env, requires_fault_env
from tests.faults.play import token_pair
from tests.faults.support import assert_clean_logs

pytestmark = [
    pytest.mark.faults,
    pytest.mark.e2e,
    requires_fault_env,
    pytest.mark.django_db(transaction=True),
]

JWT_SHAPE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")


async def ws_attempt(server: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Connect; once accepted, ping; return what the server said up to the pong or its close."""
    frames: list[dict[str, Any]] = []
    async with ws_connect(server, **kwargs) as ws:
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(5.0):
                while True:
                    frames.append(json.loads(await ws.recv()))
                    if frames[-1].get("event") == "sync:initial":
                        await ws.send(json.dumps({"event": "ping", "data": {}, "ack": 1}))
                    elif frames[-1].get("ack") == 1:
                        break
    return frames


@pytest.mark.parametrize("log_json", ["0", "1"], ids=["plain", "json"])
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_no_token_appears_in_any_line_the_server_writes(
    server_factory: Any, kind: str, log_json: str
) -> None:
    (server,) = server_factory(
        kind,
        extra_env={
            "AETURNIS_LOG_JSON": log_json,
            "LOG_LEVEL": "DEBUG",
            "AETURNIS_RATE_LIMITS": rate_limits_env(),
        },
    )
    user = await create_user()
    access, refresh = await token_pair(user.pk)
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    secrets = [access, refresh, forged]
    q = quote(access, safe="")

    # WebSocket: every token source, accepted and refused.
    assert (await ws_attempt(server, token=access))[0]["event"] == "sync:initial"
    assert (await ws_attempt(server, token=forged))[0]["event"] == "connect_error"
    for source in (
        {"subprotocols": ["aeturnis.v1", f"bearer.{access}"]},
        {"headers": {"Authorization": f"Bearer {access}"}},
    ):
        assert (await ws_attempt(server, **source))[-1].get("ack") == 1, source
    async with ws_connect(server, path=f"/ws/game/?access_token={q}"):
        pass  # not a token source: only its access line matters
    async with ws_connect(server) as ws:  # the token in the first frame
        await ws.send(json.dumps({"event": "auth", "data": {"token": forged}}))
        await expect_close(ws)

    # HTTP: query strings, headers and bodies, answered with every kind of status.
    bearer = {"Authorization": f"Bearer {access}"}
    for path in (
        f"/healthz?token={q}",
        f"/api/realtime/stats?token={q}",
        f"/no-such-page?access_token={q}",
        f"/socket.io/?EIO=4&transport=polling&token={q}",
    ):
        await http("GET", f"{server.http_url}{path}")
    await http("GET", f"{server.http_url}/api/realtime/stats", headers=bearer)
    status, body = await http(
        "POST", f"{server.http_url}/api/auth/token/refresh/", body={"refresh": refresh}
    )
    assert status == 200, (status, body)
    secrets += [body["access"], body["refresh"]]
    status, _ = await logout(server, access, body["refresh"])
    assert status == 205
    revoked = await ws_attempt(server, token=access)
    assert revoked[0]["data"]["code"] == "TOKEN_REVOKED", revoked

    server.stop()  # everything written and flushed
    assert server.wait_exit(STOP_GRACE_S) is not None
    log = server.log_text()
    assert "/healthz" in log and "/api/realtime/stats" in log, "no access lines to check"
    # Each token's payload (part 1) or signature (part 2), alone or within the whole token
    # (the header, part 0, is the same for every token). Reported by position, never printed.
    leaked = [
        (index, part)
        for index, secret in enumerate(secrets)
        for part, text in enumerate(secret.split("."))
        if part > 0 and text in log
    ]
    assert not leaked, f"token material (token #, part #) in {server.name}'s log: {leaked}"
    shapes = [m.start() for m in JWT_SHAPE.finditer(log)]
    assert not shapes, f"JWT-shaped text at offsets {shapes[:5]} of {server.log_path}"
    assert_clean_logs(server)
