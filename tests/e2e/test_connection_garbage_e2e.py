"""Real daphne and uvicorn processes free a closed connection without the cyclic collector.

The server runs with a ``sitecustomize`` of this test's that turns the automatic collector off
(whatever sits in a cycle then stays until someone collects) and, on SIGUSR2, counts what a
collection with ``DEBUG_SAVEALL`` finds, and which connection objects are alive. Three clients
connect and select a character; then they close. With them open, their sessions and protocols
are alive; once closed, none is alive and none was in a cycle (bench/README.md, "The garbage
collector").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    REPO_ROOT,
    ServerProcess,
    connect_authenticated,
    create_user,
    obtain_tokens,
    requires_postgres,
)

pytestmark = [pytest.mark.e2e, requires_postgres, pytest.mark.django_db(transaction=True)]

PROBE = """
import gc, json, signal

KINDS = ("Session", "WebSocketProtocol", "HttpToolsProtocol", "ServerProtocol", "NativeConsumer")

def _report(signum, frame):
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    cycles = {}
    for o in gc.garbage:
        name = type(o).__name__
        if name in KINDS:
            cycles[name] = cycles.get(name, 0) + 1
    gc.garbage.clear()
    gc.set_debug(0)
    alive = {}
    for o in gc.get_objects():
        name = type(o).__name__
        if name in KINDS:
            alive[name] = alive.get(name, 0) + 1
    print("GARBAGE-PROBE " + json.dumps({"cycles": cycles, "alive": alive}), flush=True)

gc.disable()
signal.signal(signal.SIGUSR2, _report)
"""


async def _probe(server: ServerProcess) -> dict[str, dict[str, int]]:
    before = server.log_text().count("GARBAGE-PROBE ")
    server.send_signal(signal.SIGUSR2)
    for _ in range(200):
        lines = [line for line in server.log_text().splitlines() if "GARBAGE-PROBE " in line]
        if len(lines) > before:
            result: dict[str, dict[str, int]] = json.loads(lines[-1].split("GARBAGE-PROBE ", 1)[1])
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"no probe answer from {server.name}:\n{server.log_tail()}")


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_closed_connections_are_freed_without_the_collector(
    kind: str, server_factory: Any, tmp_path: Path
) -> None:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    path = os.pathsep.join(p for p in (str(probe_dir), str(REPO_ROOT)) if p)
    [server] = server_factory(kind, extra_env={"PYTHONPATH": path})

    users = [await create_user() for _ in range(3)]
    tokens = [(await obtain_tokens(server, user.username))[0] for user in users]
    async with contextlib.AsyncExitStack() as stack:
        for token in tokens:
            await stack.enter_async_context(connect_authenticated(server, token))
        opened = await _probe(server)
    assert opened["alive"].get("Session", 0) == 3, opened
    assert opened["alive"].get("NativeConsumer", 0) == 3, opened
    assert opened["alive"].get("WebSocketProtocol", 0) >= 3, opened

    # What each probe collects is gone from the next one: add them up until the last
    # session and protocol have been let go.
    cycles: dict[str, int] = {}
    for _ in range(150):
        closed = await _probe(server)
        for name, count in closed["cycles"].items():
            cycles[name] = cycles.get(name, 0) + count
        # daphne lets go of a protocol on its once-a-second application check.
        if not closed["alive"].get("Session") and not closed["alive"].get("WebSocketProtocol"):
            break
        await asyncio.sleep(0.1)
    assert cycles == {}, f"left in reference cycles: {cycles}"
    assert not closed["alive"].get("Session"), closed
    assert not closed["alive"].get("NativeConsumer"), closed
    assert not closed["alive"].get("WebSocketProtocol"), closed
