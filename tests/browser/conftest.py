"""Browser harness: the ``/play/`` page in headless Chromium, driven by Playwright.

Chromium is Debian's package (``/usr/bin/chromium``, or ``AETURNIS_CHROMIUM``), launched by the
Python ``playwright`` package through ``executable_path``; Playwright's own browser downloads are
never used. Servers come from the e2e harness (``server_pool``, ``server_factory``,
``port_server_factory``), so these tests need PostgreSQL and Redis like the other e2e tests.

Screenshots of the key screens go to ``test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import expect as pw_expect

from tests.e2e.conftest import (  # noqa: F401 - the e2e harness's fixtures and hooks, reused
    REPO_ROOT,
    ServerProcess,
    _e2e_redis_keys_removed,
    port_server_factory,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    server_factory,
    server_pool,
)

CHROMIUM = Path(os.environ.get("AETURNIS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
SIO_LIBRARY = REPO_ROOT / "play" / "static" / "play" / "lib" / "socket.io.esm.min.js"
DEMO_PASSWORD = "aeturnis-demo"
# Generous: two cores shared by the servers, Chromium and the test; these are ceilings on
# waits for a condition, never sleeps.
WAIT_MS = 20_000

pw_expect.set_options(timeout=WAIT_MS)

# The transports a test can run on: the query string that picks one on the page.
TRANSPORTS = {
    "native": "transport=native",
    "socketio-websocket": "transport=socketio&sio=websocket",
    "socketio": "transport=socketio",
}


def transport_params(*names: str) -> list[Any]:
    """``pytest.param``s for ``names`` (``socketio`` is socket.io-client's default options:
    long-polling, then the upgrade to WebSocket)."""
    return [pytest.param(name, id=name) for name in names]


@pytest.fixture
def demo_world(transactional_db: Any) -> None:
    """alice, bob, carol and dave with their characters, Dawnguard, goblin and wolf."""
    from django.core.management import call_command

    call_command("seed_demo", stdout=io.StringIO())


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Chromium for one test; Playwright gives it a fresh temporary profile (user-data dir)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (./dev setup does as root)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if not SIO_LIBRARY.exists():
        pytest.fail(f"{SIO_LIBRARY} is missing: run ./dev setup (needs npm once)", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


class Player:
    """One page playing one demo account."""

    def __init__(self, page: Page, name: str, shots: str) -> None:
        self.page = page
        self.name = name
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def play(self, server: ServerProcess, transport: str) -> None:
        """Log in as ``name`` with the demo password, pick the character, wait until online."""
        page = self.page
        await page.goto(f"{server.http_url}/play/?{TRANSPORTS[transport]}")
        await page.fill("#login-form [name=username]", self.name)
        await page.fill("#login-form [name=password]", DEMO_PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.click("#characters button")
        await self.expect_online()

    async def expect_online(self) -> None:
        await pw_expect(self.page.locator("#connection")).to_have_attribute("data-state", "online")

    async def wait_for(self, script: str, arg: Any = None) -> Any:
        """Wait until the JavaScript function ``script`` returns something truthy; return it."""
        handle = await self.page.wait_for_function(script, arg=arg, timeout=WAIT_MS)
        return await handle.json_value()

    async def say(self, text: str, channel: str = "zone") -> None:
        await self.page.click(f"#chat [data-tab={channel}]")
        await self.page.fill("#chat [name=message]", text)
        await self.page.press("#chat [name=message]", "Enter")
        await self.expect_chat(channel, text)

    async def expect_chat(self, channel: str, text: str) -> None:
        await pw_expect(self.page.locator(f"#chat [data-list={channel}]")).to_contain_text(text)

    async def screenshot(self, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.shots}-{self.name}-{step}.png"
        await self.page.screenshot(path=str(path))
        return path


@pytest.fixture
async def players(
    browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, Player]]:
    """``players["alice"]``: a page per demo account, each in its own browser context."""
    shots = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    made: dict[str, Player] = {}
    contexts = []
    for name in ("alice", "bob"):
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        contexts.append(context)
        made[name] = Player(await context.new_page(), name, shots)
    try:
        yield made
    finally:
        for context in contexts:
            with contextlib.suppress(Exception):
                await context.close()
    errors = {name: p.errors for name, p in made.items() if p.errors}
    assert not errors, f"uncaught errors in the page: {errors}"
