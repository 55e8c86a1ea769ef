"""The README's client snippets run as written, against a real server with the demo world.

Each block is taken from README.md itself (so an edit there is what gets tested), with only
the address changed from ``127.0.0.1:8000`` to the test server's. Executed here:

- "A minimal client" (Python, ``websockets``): prints ``sync:initial`` and the ping's ack;
- the Socket.IO client (``client.mjs``, socket.io-client from ``tests/e2e/sioclient``):
  connects with default options, selects Alice's character, sends a chat message;
- the admin API ``curl`` lines of "Operating it": a staff token, ``stats``, an announcement;
- the operator commands of "Operating it" (``manage.py announce`` … ``realtime_stats``).

The other blocks are the setup and deployment commands: ``./dev`` is what CI itself runs
(``.ci/run``), and the deployment steps are exercised by ``tests/deploy`` and
``tests/e2e/test_deploy_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, ServerProcess, requires_redis_and_postgres, run_manage
from tests.e2e.test_socketio_e2e import SIOCLIENT_DIR, sioclient  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]

README = REPO_ROOT / "README.md"
SNIPPET_TIMEOUT_S = 60.0


def snippet(section: str, language: str, index: int = 0) -> str:
    """The ``index``-th ``language`` code block under the README heading ``section``."""
    text = README.read_text()
    heading = re.search(rf"^#+ {re.escape(section)}$", text, re.MULTILINE)
    assert heading, f"README.md has no section {section!r}"
    following = re.search(r"^## ", text[heading.end() :], re.MULTILINE)
    body = text[heading.end() : heading.end() + following.start()] if following else text
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", body, re.MULTILINE | re.DOTALL)
    assert len(blocks) > index, f"no {language} block #{index} under {section!r}"
    return str(blocks[index])


def at(code: str, server: ServerProcess) -> str:
    assert "127.0.0.1:8000" in code, code
    return code.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT_S, check=False
    )


@pytest.fixture
async def demo_server(server_factory: Callable[..., list[ServerProcess]]) -> ServerProcess:
    seeded = await run_manage("seed_demo")
    assert seeded.returncode == 0, seeded.stderr
    servers = await asyncio.to_thread(server_factory, "daphne")
    return servers[0]


async def test_the_minimal_python_client(demo_server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(at(snippet("A minimal client", "python"), demo_server))
    result = await asyncio.to_thread(run, [sys.executable, str(script)], tmp_path)
    assert result.returncode == 0, result.stderr
    first, ack = result.stdout.splitlines()
    assert first == "sync:initial"
    reply = json.loads(ack)
    assert reply["ack"] == 1 and reply["data"]["ok"] is True, reply


async def test_the_socketio_client(
    demo_server: ServerProcess,
    sioclient: str,  # noqa: F811 (the fixture imported above)
) -> None:
    # Next to sioclient's node_modules, where `import "socket.io-client"` resolves.
    script = SIOCLIENT_DIR / f"readme-{uuid.uuid4().hex[:8]}.mjs"
    script.write_text(at(snippet("Socket.IO clients", "js"), demo_server))
    try:
        result = await asyncio.to_thread(run, [sioclient, str(script)], SIOCLIENT_DIR)
    finally:
        script.unlink()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "connected" in lines, lines
    assert any(line.startswith("rooms ") for line in lines), lines
    assert "true Alice" in lines, lines
    assert "sent true" in lines, lines


async def test_the_admin_api_curl_lines(demo_server: ServerProcess, tmp_path: Path) -> None:
    script = at(snippet("Operating it", "sh", 0), demo_server)
    result = await asyncio.to_thread(run, ["bash", "-euo", "pipefail", "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    # curl prints each JSON answer without a newline after it.
    decoder, out, answers = json.JSONDecoder(), result.stdout.strip(), []
    while out:
        answer, end = decoder.raw_decode(out)
        answers.append(answer)
        out = out[end:].lstrip()
    stats, announced = answers
    assert stats["success"] is True and "connectedClients" in stats["data"], stats
    assert announced["success"] is True, announced


async def test_the_operator_commands(demo_server: ServerProcess) -> None:
    lines = snippet("Operating it", "sh", 1).splitlines()
    assert len(lines) == 4, lines
    for line in lines:
        args = line.split(" ", 2)[2]  # after ".venv/bin/python manage.py"
        result = await run_manage(*shlex.split(args))
        # kick and notify name user ids (12, 13) that a fresh demo world may not have: they
        # must then fail with the command's own message, never a traceback.
        assert "Traceback" not in result.stderr, (line, result.stderr)
        if line.split()[2] in ("announce", "realtime_stats"):
            assert result.returncode == 0, (line, result.stderr)
        else:
            assert result.returncode in (0, 1), (line, result.returncode, result.stderr)
