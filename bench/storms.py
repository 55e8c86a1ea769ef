"""Paired connect storms: what a change does to the CPU of a connect + select, without the knee.

Starts each named server in turn (fanout.py's table and ``--server-cmd``, e.g. a ``git archive``
of the base commit next to the working tree), pinned like fanout.py, warms it, then runs
``--cycles`` storms of all clients connecting and selecting (``--storm-concurrency`` in flight),
each followed by a reconnect storm with ``--reconnect``. ``--rounds`` repeats the whole
alternation, so two servers are compared over interleaved runs on the same machine state: the
only way to see a 5 % change on a machine whose absolute figures drift by tens of percent.
Reports, per storm and as medians: server CPU ms per connect + select, its user/system split,
the wall time of the storm and, with ``--reconnect``, of the reconnect storm.

    .venv/bin/python bench/storms.py --servers base,uvicorn --rounds 3 --cycles 2 \\
        --server-cmd 'base=env PYTHONPATH=/tmp/base {venv}/uvicorn --app-dir /tmp/base ...'

daphne puts its working directory first on ``sys.path`` (servers start in the working tree), so
a daphne base must also run there: ``'base=env -C /tmp/base PYTHONPATH=/tmp/base {venv}/daphne
-b 127.0.0.1 -p {port} aeturnis.asgi:application'``; with ``PYTHONPATH`` alone it runs the
working tree's code.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout  # the bench directory is on the path, not a package


def cpu_ticks(pid: int) -> tuple[int, int]:
    """User and system clock ticks of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def storms(cfg: fanout.Config, name: str, cycles: int, reconnect: bool) -> list[float]:
    fanout.clear_redis(cfg)
    clients = fanout.seed_world(cfg)
    port = fanout.free_port()
    fanout.wait_idle(cfg.wait_idle)
    argv = fanout.server_argv(cfg, name, port)
    proc = fanout.launch(cfg, name, argv, fanout.RESULTS / f"storms-{name}.log")
    gen: fanout.Generator | None = None
    tick = os.sysconf("SC_CLK_TCK")
    costs: list[float] = []
    try:
        fanout.wait_healthy(port, proc)
        log = fanout.RESULTS / f"storms-{name}-loadgen.log"
        gen = fanout.start_generator(cfg, name, port, proc.pid, clients, log)
        fanout.warm_up(cfg, gen)
        for cycle in range(cycles):
            user0, sys0 = cpu_ticks(proc.pid)
            pg0, redis0 = fanout.postgres_cpu_s(), fanout.redis_cpu_s(cfg)
            storm = gen.call({"cmd": "connect", "concurrency": cfg.storm_concurrency})
            user1, sys1 = cpu_ticks(proc.pid)
            pg1, redis1 = fanout.postgres_cpu_s(), fanout.redis_cpu_s(cfg)
            n = max(1, storm["connected"])
            costs.append(1000 * storm["serverCpuS"] / n)
            line = (
                f"{name} cycle {cycle}: {costs[-1]:.2f} ms per connect + select "
                f"(user {1000 * (user1 - user0) / tick / n:.2f}, "
                f"system {1000 * (sys1 - sys0) / tick / n:.2f}; "
                f"PostgreSQL {1000 * (pg1 - pg0) / n:.2f}, "
                f"Redis {1000 * (redis1 - redis0) / n:.2f}), "
                f"{storm['connected']} in {storm['wallS']:.2f} s"
            )
            if reconnect:
                time.sleep(1.0)
                again = gen.call({"cmd": "reconnect", "concurrency": cfg.storm_concurrency})
                line += (
                    f"; reconnect storm {again['wallS']:.2f} s, "
                    f"server CPU {again['serverCpuS']:.2f} s"
                )
            print(line, flush=True)
            gen.call({"cmd": "close"})
            time.sleep(1.5)
    finally:
        if gen is not None:
            gen.close()
        fanout.stop_server(proc)
    return costs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternations of all servers")
    p.add_argument("--cycles", type=int, default=2, help="storms per server start")
    p.add_argument("--reconnect", action="store_true", help="a reconnect storm after each")
    args, rest = p.parse_known_args()
    cfg = fanout.parse_args(rest)
    fanout.RESULTS.mkdir(parents=True, exist_ok=True)
    fanout.prepare_database(cfg)
    costs: dict[str, list[float]] = {name: [] for name in cfg.servers}
    for _ in range(args.rounds):
        for name in cfg.servers:
            costs[name] += storms(cfg, name, args.cycles, args.reconnect)
    for name, values in costs.items():
        print(
            f"{name}: median {statistics.median(values):.2f} ms per connect + select "
            f"[{min(values):.2f}-{max(values):.2f}] over {len(values)} storms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
