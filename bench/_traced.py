"""Run a Python entry point (``_traced.py /path/to/uvicorn ARGS...``) with a tracemalloc
snapshot on SIGUSR1, for bench/memory.py: the snapshot goes to the path written in
``$AETURNIS_TRACED_DIR/next``, then ``<path>.done`` marks it complete. Start it with
``python -X tracemalloc=N`` so that allocations are traced from the first import."""

from __future__ import annotations

import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

DIRECTORY = Path(os.environ["AETURNIS_TRACED_DIR"])


def _dump(signum: int, frame: FrameType | None) -> None:
    path = Path((DIRECTORY / "next").read_text().strip())
    tracemalloc.take_snapshot().dump(str(path))
    path.with_suffix(".done").touch()


signal.signal(signal.SIGUSR1, _dump)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
