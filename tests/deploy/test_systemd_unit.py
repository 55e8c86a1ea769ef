"""deploy/systemd/aeturnis@.service: one process per instance, stopped gracefully.

``systemd-analyze verify`` checks the unit (with this checkout's paths) where systemd is
installed; the rest reads the file.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Graceful shutdown: up to 3 s of shutdown hooks, 3 s of flushing queues, 0.3 s to write the
# close frames (docs/ARCHITECTURE.md, "Closing and graceful shutdown"), plus the exit itself.
GRACEFUL_SHUTDOWN_S = 10
UNIT = REPO_ROOT / "deploy" / "systemd" / "aeturnis@.service"
NGINX = REPO_ROOT / "deploy" / "nginx" / "aeturnis.conf"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(re.sub(r"\\\n", " ", UNIT.read_text()))
    return parser["Service"]


def test_instances_listen_on_their_port_with_their_node_id() -> None:
    section = service()
    assert "-p 800%i" in section["ExecStart"] and "-b 127.0.0.1" in section["ExecStart"]
    assert section["Environment"] == "AETURNIS_NODE_ID=n%i"
    assert section["EnvironmentFile"] == "/etc/aeturnis/production.env"
    # The node ids are the ones nginx routes Socket.IO polling by.
    assert "~^n1\\." in NGINX.read_text()


def test_stop_is_a_sigterm_with_time_for_the_graceful_shutdown() -> None:
    section = service()
    assert section["KillSignal"] == "SIGTERM"
    assert section["KillMode"] == "mixed"
    assert int(section["TimeoutStopSec"]) > GRACEFUL_SHUTDOWN_S


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    venv = REPO_ROOT / ".venv"
    text = UNIT.read_text().replace("/srv/aeturnis/.venv", str(venv))
    text = text.replace("/srv/aeturnis", str(REPO_ROOT))
    text = text.replace("/etc/aeturnis/production.env", str(tmp_path / "production.env"))
    (tmp_path / "production.env").write_text("DEBUG=0\n")
    (tmp_path / "aeturnis@.service").write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "aeturnis@1.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
