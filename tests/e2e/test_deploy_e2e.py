"""The production set-up for real: DEBUG=0 servers behind deploy/nginx/aeturnis.conf over TLS.

One daphne (node n1) and one uvicorn (node n2) process run with production settings
(DEBUG=0, AETURNIS_HTTPS=1, TRUSTED_PROXIES=127.0.0.1, static files collected into a
temporary STATIC_ROOT and served by WhiteNoise). nginx runs the deploy file rendered for
temporary ports with a self-signed certificate (tests/deploy/nginx.py). Through it: the pages
and their static files, an admin login (the CSRF origin check behind a TLS proxy), native
WebSocket clients on both processes, a socket.io-client, and the sticky routing of Socket.IO
polling requests by the sid's node id.

Run: ``DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/e2e/test_deploy_e2e.py``
(nginx and openssl on the machine; .ci/run installs nginx).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect

from tests.deploy.nginx import UPSTREAM_HEADER, NginxSite, RunningNginx, nginx_binary, write_site
from tests.e2e.conftest import (
    E2E_PASSWORD,
    FRAME_TIMEOUT_S,
    HTTP_TIMEOUT_S,
    REPO_ROOT,
    ServerProcess,
    _stop_all,
    create_user,
    recv_event,
    recv_json,
    requires_redis_and_postgres,
    start_servers,
    subprocess_env,
)
from tests.e2e.test_socketio_e2e import sio_client, sioclient  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]


# --- an HTTPS client that keeps cookies and does not follow redirects -----------------------------


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirect(),
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Reply(exc.code, exc.headers, exc.read())

    def get(self, url: str, **kwargs: Any) -> Reply:
        return self.request("GET", url, **kwargs)

    def post_json(self, url: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
        return self.request(
            "POST",
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def cookie(self, name: str) -> http.cookiejar.Cookie:
        (found,) = [c for c in self.cookies if c.name == name]
        return found


# --- the deployment -------------------------------------------------------------------------------


@dataclass
class Deployment:
    site: NginxSite
    servers: list[ServerProcess]  # n1 (daphne), n2 (uvicorn)
    tls: ssl.SSLContext

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.site.https_port}"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.site.https_port}"

    @property
    def http_url(self) -> str:  # what sio_client connects to
        return self.https

    def browser(self) -> Browser:
        return Browser(self.tls)


def production_env(static_root: Path) -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TRUSTED_PROXIES": "127.0.0.1",
        "AETURNIS_HTTPS": "1",
        "SECURE_HSTS_SECONDS": "60",
        "STATIC_ROOT": str(static_root),
    }


@pytest.fixture(scope="module")
def deployment(
    django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    nginx_binary()  # skip (or fail in CI) before starting anything
    root = tmp_path_factory.mktemp("deploy")
    env = production_env(root / "static")
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stderr
    with ThreadPoolExecutor(2) as pool:
        starting = [
            pool.submit(start_servers, [kind], root, extra_env={**env, "AETURNIS_NODE_ID": node})
            for kind, node in (("daphne", "n1"), ("uvicorn", "n2"))
        ]
        servers = [server for future in starting for server in future.result()]
    nginx = None
    try:
        site = write_site(root / "nginx", backends=[s.port for s in servers])
        nginx = RunningNginx(site)
        tls = ssl.create_default_context(cafile=str(site.cert))
        yield Deployment(site, servers, tls)
    finally:
        if nginx is not None:
            nginx.stop()
        _stop_all(servers)


def staff_user() -> Any:
    """A committed staff user (from async code: through database_sync_to_async, which closes
    its connection, or the test database could not be dropped)."""
    name = f"staff_{secrets.token_hex(4)}"
    return get_user_model().objects.create_user(name, password=E2E_PASSWORD, is_staff=True)


def access_token(deployment: Deployment, username: str) -> str:
    reply = deployment.browser().post_json(
        f"{deployment.https}/api/auth/token/", {"username": username, "password": E2E_PASSWORD}
    )
    assert reply.status == 200, reply.text
    return str(json.loads(reply.body)["access"])


# --- pages and static files -----------------------------------------------------------------------


STATIC_REF = re.compile(r'(?:href|src)="(/static/[^"]+)"')


def test_pages_and_their_static_files_load_through_nginx_with_debug_off(
    deployment: Deployment,
) -> None:
    browser = deployment.browser()
    landing = browser.get(f"{deployment.https}/")
    assert landing.status == 200 and "Aeturnis Realtime" in landing.text
    refs: dict[str, list[str]] = {}
    for page in ("/admin/login/", "/api/docs/"):
        reply = browser.get(f"{deployment.https}{page}")
        assert reply.status == 200, (page, reply.text[:500])
        refs[page] = STATIC_REF.findall(reply.text)
    assert any(r.endswith(".css") for r in refs["/admin/login/"]), refs
    docs = refs["/api/docs/"]
    assert any("swagger-ui" in r and r.endswith(".css") for r in docs), docs
    assert any("swagger-ui-bundle" in r and r.endswith(".js") for r in docs), docs
    for ref in {r for found in refs.values() for r in found}:
        asset = browser.get(f"{deployment.https}{ref}")
        assert asset.status == 200 and asset.body, (ref, asset.status)
        kind = asset.headers["Content-Type"]
        assert kind.split("/")[0] in {"text", "application", "image"}, (ref, kind)
        if ref.endswith(".css"):
            assert kind.startswith("text/css"), (ref, kind)
        # collectstatic's content-hashed names are cached for good.
        assert "immutable" in asset.headers.get("Cache-Control", ""), (ref, asset.headers)
    for server in deployment.servers:  # aeturnis/asgi.py silences Django's note on it
        assert "StreamingHttpResponse" not in server.log_text(), server.name


def test_unknown_pages_are_plain_404s_and_unknown_api_paths_the_envelope(
    deployment: Deployment,
) -> None:
    browser = deployment.browser()
    page = browser.get(f"{deployment.https}/no/such/page")
    assert page.status == 404 and "URLconf" not in page.text
    api = browser.get(f"{deployment.https}/api/realtime/no-such-endpoint/")
    assert api.status == 404 and json.loads(api.body)["error"]["code"] == "NOT_FOUND"


# --- HTTPS behind the proxy -----------------------------------------------------------------------


def test_admin_login_through_the_tls_proxy_passes_the_csrf_check(deployment: Deployment) -> None:
    user = staff_user()
    browser = deployment.browser()
    login_url = f"{deployment.https}/admin/login/"
    form = browser.get(login_url)
    assert form.status == 200
    assert "max-age=60" in form.headers["Strict-Transport-Security"]
    csrf_cookie = browser.cookie("csrftoken")
    assert csrf_cookie.secure, "the CSRF cookie must be Secure behind TLS"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    body = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": user.username,
            "password": E2E_PASSWORD,
            "next": "/admin/",
        }
    ).encode()
    # What a browser sends: its https origin. Without believing nginx's X-Forwarded-Proto the
    # server would think it was reached over http and refuse this (403 Origin checking failed).
    posted = browser.request(
        "POST",
        login_url,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": deployment.https,
            "Referer": login_url,
        },
    )
    assert posted.status == 302, posted.text[:1000]
    assert posted.headers["Location"] == "/admin/"
    assert browser.cookie("sessionid").secure
    home = browser.get(f"{deployment.https}/admin/")
    assert home.status == 200 and "Game administration" in home.text


def test_plain_http_is_redirected_to_https(deployment: Deployment) -> None:
    reply = deployment.browser().get(f"http://127.0.0.1:{deployment.site.http_port}/admin/")
    assert reply.status == 301 and reply.headers["Location"].startswith("https://")


# --- real-time clients through nginx --------------------------------------------------------------


def native_connections(server: ServerProcess) -> float:
    """``aeturnis_connections{transport="native"}`` of one process, read from it directly."""
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=HTTP_TIMEOUT_S) as r:
        text = r.read().decode()
    match = re.search(r'^aeturnis_connections\{transport="native"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def wait_for_spread(servers: list[ServerProcess]) -> list[float]:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while True:
        counts = [await asyncio.to_thread(native_connections, s) for s in servers]
        if counts == [1.0, 1.0] or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def announce(deployment: Deployment, token: str, message: str) -> None:
    reply = await asyncio.to_thread(
        deployment.browser().post_json,
        f"{deployment.https}/api/realtime/announcement",
        {"message": message},
        {"Authorization": f"Bearer {token}"},
    )
    assert reply.status == 200, reply.text


async def test_native_clients_through_nginx_land_on_both_processes_and_share_rooms(
    deployment: Deployment,
) -> None:
    player, staff = await create_user(), await database_sync_to_async(staff_user)()
    token = await asyncio.to_thread(access_token, deployment, player.username)
    staff_token = await asyncio.to_thread(access_token, deployment, staff.username)
    url = f"{deployment.wss}/ws/game/?token={token}"
    options: dict[str, Any] = {"ssl": deployment.tls, "proxy": None, "open_timeout": 10}

    async with connect(url, **options) as first, connect(url, **options) as second:
        for ws in (first, second):
            assert (await recv_json(ws))["event"] == "sync:initial"
        # least_conn gives the second connection to the process without one.
        assert await wait_for_spread(deployment.servers) == [1.0, 1.0]
        await first.send(json.dumps({"event": "ping", "data": {}, "ack": 1}))
        ack = await recv_json(first)
        assert ack["ack"] == 1 and ack["data"]["ok"] is True
        await announce(deployment, staff_token, "through nginx")
        for ws in (first, second):
            event = await recv_event(ws, "system:announcement")
            assert event["data"]["message"] == "through nginx"


async def test_socketio_client_through_nginx(
    deployment: Deployment,
    sioclient: str,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    player, staff = await create_user(), await database_sync_to_async(staff_user)()
    token = await asyncio.to_thread(access_token, deployment, player.username)
    staff_token = await asyncio.to_thread(access_token, deployment, staff.username)
    # Node trusts the test certificate the way a browser trusts a real one.
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(deployment.site.cert))

    # socket.io-client's default options: long-polling through nginx (sticky by the sid's
    # node id), then the upgrade to WebSocket.
    async with sio_client(sioclient, deployment, token) as client:  # type: ignore[arg-type]
        await client.observed("connect")
        await client.event("sync:initial")
        await client.settled_on("websocket")
        # The engine opened on polling: an upgrade only ever starts from it. Whether the CONNECT
        # answer lands before or after the upgrade is a race, so the connect's transport is not.
        upgrades = [o["transport"] for o in client.seen if o["type"] == "upgrade"]
        assert upgrades == ["websocket"], client.describe()
        _, pong = await client.emit_with_ack("ping", {"probe": "nginx"})
        assert pong["ok"] is True and pong["probe"] == "nginx", client.describe()
        await announce(deployment, staff_token, "to socket.io")
        _, (announcement, *_) = await client.event("system:announcement")
        assert announcement["message"] == "to socket.io"


def test_socketio_polling_requests_go_to_the_process_their_sid_names(
    deployment: Deployment,
) -> None:
    browser = deployment.browser()
    processes = {
        f"127.0.0.1:{s.port}": node
        for s, node in zip(deployment.servers, ("n1", "n2"), strict=True)
    }
    polling = f"{deployment.https}/socket.io/?EIO=4&transport=polling"

    # A handshake goes to any process, which names itself in the sid it issues.
    for _ in range(4):
        reply = browser.get(polling)
        assert reply.status == 200 and reply.text.startswith("0{"), reply.text
        sid = json.loads(reply.text[1:])["sid"]
        assert sid.split(".")[0] == processes[str(reply.headers[UPSTREAM_HEADER])], sid
        # Its requests go back there: a POST (a pong) is answered "ok" every time.
        for _ in range(3):
            post = browser.request("POST", f"{polling}&sid={sid}", data=b"3")
            assert (post.status, post.text) == (200, "ok"), post.text
            assert processes[str(post.headers[UPSTREAM_HEADER])] == sid.split(".")[0]

    def upstream(query: str) -> str:
        reply = browser.get(f"{polling}{query}")
        assert reply.status == 400  # unknown to the process it names: Engine.IO's own error
        assert json.loads(reply.text) == {"code": 1, "message": "Session ID unknown"}
        return processes[str(reply.headers[UPSTREAM_HEADER])]

    for _ in range(3):
        assert upstream("&sid=n1.Xy3secret") == "n1"
        assert upstream("&sid=n2.Ab9secret") == "n2"
    assert upstream("&sid=n9.unknown") in {"n1", "n2"}
