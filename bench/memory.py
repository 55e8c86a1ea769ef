"""Where an idle connection's memory goes: a tracemalloc census of one server process.

    .venv/bin/python bench/memory.py                        # uvicorn, 1,000 connections
    .venv/bin/python bench/memory.py --server daphne --connections 500

bench/fanout.py measures idle memory per connection as RSS growth; this says what it is made
of. The server (bench/fanout.py's world and settings, PostgreSQL + Redis) runs under
``bench/_traced.py``, which starts ``tracemalloc`` before the server is imported and writes a
snapshot when it gets SIGUSR1. After a warm-up (a few connections that select and leave), a
snapshot; then ``--connections`` native clients connect and ``character:select``, and after
they are idle a second snapshot. The difference, per connection, grouped by the line that
allocated it and by the nearest frame in this project, is printed (top ``--top``), with the RSS
growth for comparison (tracemalloc sees Python allocations only, not the interpreter's own
structures, the kernel's or extension modules' that bypass it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import linecache
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout
from moves import free_port, proc_sample, stop_server

TRACED = Path(__file__).resolve().parent / "_traced.py"
PROJECT_DIRS = ("realtime/", "characters/", "chat/", "combat/", "domain/", "aeturnis/")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default="uvicorn", choices=["uvicorn", "daphne"])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()

    zones = 10
    cfg = replace(fanout.parse_args([]), zones=zones, per_zone=-(-a.connections // zones))
    fanout.RESULTS.mkdir(parents=True, exist_ok=True)
    fanout.prepare_database(cfg)
    fanout.clear_redis(cfg)
    clients = fanout.seed_world(cfg)[: a.connections]
    argv = fanout.server_argv(cfg, a.server, (port := free_port()))
    snapshots = fanout.RESULTS / f"memory-{a.server}"
    snapshots.mkdir(exist_ok=True)
    env = {**fanout.ours_env(cfg), "AETURNIS_TRACED_DIR": str(snapshots)}
    # The server's own entry point, run by _traced.py under tracemalloc.
    command = [str(fanout.PYTHON), "-X", "tracemalloc=12", str(TRACED), *argv]
    log = fanout.RESULTS / f"memory-{a.server}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            fanout.pinned(cfg.server_core, command),
            cwd=cfg.app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        fanout.wait_healthy(port, proc)
        asyncio.run(warm_up(port, clients[:zones]))
        time.sleep(1.0)
        before_rss = proc_sample(proc.pid).rss_kb
        first = snapshot(proc.pid, snapshots / "before.snap")
        held = asyncio.run(hold_idle(port, proc.pid, clients, snapshots / "after.snap"))
        after_rss = held["rss_kb"]
        second = Path(held["snapshot"])
        report(first, second, a.connections, (after_rss - before_rss), a.top)
    finally:
        stop_server(proc)
    return 0


def snapshot(pid: int, path: Path, timeout: float = 120.0) -> Path:
    path.unlink(missing_ok=True)
    (path.parent / "next").write_text(str(path))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    done = path.with_suffix(".done")
    while not done.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no snapshot at {path}")
        time.sleep(0.2)
    done.unlink()
    return path


async def connect(port: int, client: dict[str, str]) -> Any:
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/ws/game/",
        subprotocols=["aeturnis.v1", f"bearer.{client['token']}"],  # type: ignore[list-item]
        compression=None,
    )
    await ws.recv()  # sync:initial
    await ws.send(
        json.dumps(
            {"event": "character:select", "ack": 1, "data": {"characterId": client["characterId"]}}
        )
    )
    while json.loads(await ws.recv()).get("ack") != 1:
        pass
    return ws


async def warm_up(port: int, clients: list[dict[str, str]]) -> None:
    for client in clients:
        ws = await connect(port, client)
        await ws.close()


async def hold_idle(
    port: int, pid: int, clients: list[dict[str, str]], path: Path
) -> dict[str, Any]:
    gate = asyncio.Semaphore(50)

    async def one(client: dict[str, str]) -> Any:
        async with gate:
            return await connect(port, client)

    sockets = await asyncio.gather(*(one(c) for c in clients))
    # Keep reading (other players' character:online) so nothing waits in the server for us.
    readers = [asyncio.create_task(_drain(ws)) for ws in sockets]
    await asyncio.sleep(3.0)
    rss_kb = proc_sample(pid).rss_kb
    await asyncio.to_thread(snapshot, pid, path)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"rss_kb": rss_kb, "snapshot": str(path)}


async def _drain(ws: Any) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:  # closed at the end
        return


def owner(trace: tracemalloc.Traceback) -> str:
    """The nearest frame in this project (or the allocating frame when there is none)."""
    for frame in reversed(trace):  # most recent call first
        if any(d in frame.filename for d in PROJECT_DIRS) and "/.venv/" not in frame.filename:
            name = frame.filename.split("/work/main/")[-1]
            line = linecache.getline(frame.filename, frame.lineno).strip()[:60]
            return f"{name}:{frame.lineno} {line}"
    frame = trace[-1]
    return f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"


def report(first: Path, second: Path, n: int, rss_growth_kb: int, top: int) -> None:
    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(second))
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    print(
        f"\nRSS growth {rss_growth_kb / n:.1f} KB per connection; tracemalloc sees "
        f"{total / 1024 / n:.1f} KB per connection (Python allocations)\n"
    )
    by_line = Counter[str]()
    by_owner = Counter[str]()
    for s in stats:
        if s.size_diff <= 0:
            continue
        frame = s.traceback[-1] if s.traceback else None
        if frame is not None:
            by_line[
                f"{frame.filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{frame.lineno}"
            ] += s.size_diff
        by_owner[owner(s.traceback)] += s.size_diff
    print("by the nearest project frame (bytes per connection):")
    for key, size in by_owner.most_common(top):
        print(f"  {size / n:8.0f}  {key}")
    print("\nby allocating line (bytes per connection):")
    for key, size in by_line.most_common(top):
        print(f"  {size / n:8.0f}  {key}")


if __name__ == "__main__":
    sys.exit(main())
