"""The server process's collector settings (``aeturnis.collector``), as a server gets them: by
importing the ASGI application in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aeturnis.collector import YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
import aeturnis.asgi
print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))
"""


def test_loading_the_application_freezes_it_and_raises_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    # Django, the registries and our modules: tens of thousands of objects out of every pass.
    assert state["frozen"] > 50_000
    assert state["threshold"][0] == YOUNG_THRESHOLD
    assert state["threshold"][1:] == [10, 10]  # CPython's own for the older generations
