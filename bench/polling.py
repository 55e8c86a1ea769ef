"""What a Socket.IO long-polling client costs the server, against a WebSocket client.

    .venv/bin/python bench/polling.py                      # uvicorn; ~1 minute
    .venv/bin/python bench/polling.py --server daphne

Issue #15: "the WebSocket path must not get slower per recipient; a polling client may cost
more, and the benchmark says how much". One server process (pinned to ``--server-core``, on
PostgreSQL + Redis with bench/fanout.py's world and settings) and one zone of ``--receivers``
python-socketio clients (default options but the transport: ``["websocket"]`` in one phase,
``["polling"]`` in the other, never upgraded), with one native sender posting ``chat:message``
to the zone at ``--rate`` messages/s for ``--seconds``. Per phase: **µs of server CPU per
delivery** (server CPU in the window / ``chat:message`` events the receivers got in it),
deliveries received / expected, and the p50 / p99 delivery latency (send time carried in the
message, one clock). The clients run in this process, pinned to the other core.

Results: a table on stdout and ``bench/results/polling-<server>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import socketio
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import (
    RESULTS,
    clear_redis,
    ours_env,
    parse_args,
    pinned,
    prepare_database,
    seed_world,
    server_argv,
    wait_healthy,
)
from moves import free_port, log_problems, proc_sample, stop_server


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default="uvicorn", choices=["uvicorn", "daphne"])
    p.add_argument("--receivers", type=int, default=99)
    p.add_argument("--rate", type=float, default=10.0, help="chat messages per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--gen-core", type=int, default=1)
    a = p.parse_args()

    # bench/fanout.py's world: one zone of receivers + 1 sender.
    cfg = replace(parse_args([]), zones=1, per_zone=a.receivers + 1, server_core=a.server_core)
    os.sched_setaffinity(0, {a.gen_core})
    RESULTS.mkdir(parents=True, exist_ok=True)
    prepare_database(cfg)
    clear_redis(cfg)
    clients = seed_world(cfg)
    sender, receivers = clients[0], clients[1:]

    port = free_port()
    log = RESULTS / f"polling-{a.server}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(cfg.server_core, server_argv(cfg, a.server, port)),
            cwd=cfg.app_dir,
            env=ours_env(cfg),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    results: dict[str, Any] = {"server": a.server, "receivers": a.receivers, "rate": a.rate}
    try:
        wait_healthy(port, proc)
        for transport in ("websocket", "polling"):
            results[transport] = asyncio.run(
                phase(port, proc.pid, sender, receivers, transport, a.rate, a.seconds)
            )
            print(f"  {transport}: {json.dumps(results[transport])}", flush=True)
    finally:
        results["exit_code"], _ = stop_server(proc)
    results["log_problem_lines"], _ = log_problems(log)

    ws, poll = results["websocket"], results["polling"]
    print(f"\n{a.server}, one zone of {a.receivers} Socket.IO receivers, {a.rate:g} msg/s:")
    print(f"{'':34}{'websocket':>12}{'polling':>12}")
    for label, key, spec in (
        ("µs server CPU / delivery", "usPerDelivery", "{:.1f}"),
        ("deliveries received / expected", "receivedPct", "{:.2f} %"),
        ("p50 latency (ms)", "p50Ms", "{:.1f}"),
        ("p99 latency (ms)", "p99Ms", "{:.1f}"),
        ("server CPU (%)", "serverCpuPct", "{:.0f}"),
    ):
        print(f"{label:34}{spec.format(ws[key]):>12}{spec.format(poll[key]):>12}")
    print(
        f"polling / websocket CPU per delivery: x{poll['usPerDelivery'] / ws['usPerDelivery']:.2f}"
    )
    out_path = RESULTS / f"polling-{a.server}.json"
    out_path.write_text(json.dumps(results, indent=2))
    print(f"results: {out_path}")
    return 0


async def phase(
    port: int,
    pid: int,
    sender: dict[str, str],
    receivers: list[dict[str, str]],
    transport: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    counting = False
    tag = f"{transport}-{time.monotonic_ns()}"

    def on_message(data: dict[str, Any], *_: Any) -> None:
        text = str(data.get("message", ""))
        if counting and text.startswith(tag):
            latencies.append(time.monotonic() - float(text.split(":")[1]))

    sockets = []
    for r in receivers:  # one at a time: a polling handshake is several requests
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("chat:message", on_message)
        await sio.connect(url, auth={"token": r["token"]}, transports=[transport], wait_timeout=10)
        answer = await sio.call("character:select", {"characterId": r["characterId"]}, timeout=10)
        assert answer.get("ok"), answer
        sockets.append(sio)

    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws/game/",
        subprotocols=["aeturnis.v1", f"bearer.{sender['token']}"],  # type: ignore[list-item]
    ) as ws:
        await ws.recv()  # sync:initial
        await ws.send(
            json.dumps(
                {
                    "event": "character:select",
                    "ack": 1,
                    "data": {"characterId": sender["characterId"]},
                }
            )
        )
        await _ack(ws, 1)
        await asyncio.sleep(1.0)
        counting = True
        before = proc_sample(pid)
        sent, ack, started = 0, 1, time.monotonic()
        while time.monotonic() - started < seconds:
            due = started + sent / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            ack += 1
            message = f"{tag}:{time.monotonic()}:x"
            await ws.send(
                json.dumps(
                    {
                        "event": "chat:message",
                        "ack": ack,
                        "data": {"channel": "zone", "message": message},
                    }
                )
            )
            sent += 1
        await asyncio.sleep(2.0)  # late deliveries (a poll may be in flight)
        after = proc_sample(pid)
        window = after.t - before.t
    for sio in sockets:
        await sio.disconnect()
    expected = sent * len(receivers)
    cpu = after.cpu_s - before.cpu_s
    ordered = sorted(latencies) or [float("nan")]
    return {
        "sent": sent,
        "expected": expected,
        "received": len(latencies),
        "receivedPct": 100 * len(latencies) / max(1, expected),
        "usPerDelivery": 1e6 * cpu / max(1, len(latencies)),
        "serverCpuPct": 100 * cpu / window,
        "p50Ms": 1000 * statistics.median(ordered),
        "p99Ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def _ack(ws: Any, ack: int) -> None:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("ack") == ack:
            assert frame["data"].get("ok"), frame
            return


if __name__ == "__main__":
    sys.exit(main())
