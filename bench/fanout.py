"""Chat fan-out, connect storms and idle memory: our server against a Node Socket.IO reference.

    .venv/bin/python bench/fanout.py                       # node, uvicorn, daphne; ~10 minutes
    .venv/bin/python bench/fanout.py --servers node,uvicorn --step-seconds 3 --knee-budget 60

One invocation measures every server in turn, each as one process pinned to one core
(``taskset``, ``--server-core``), with the load generator (bench/node/loadgen.js) pinned to the
other (``--gen-core``), so every figure is also given as a ratio to the Node reference measured
minutes before it: absolute numbers on this shared machine drift by ±40 % between runs.
For each server: 1,000 connections in 10 zones of 100 (a warm-up of 10 connections first), then

1. **connect storm**: all 1,000 connect and ``character:select`` (``--storm-concurrency`` in
   flight); server CPU per connect + select and connections per second;
2. **idle memory**: server RSS growth over the baseline / connections, once all are selected
   and idle;
3. **reconnect storm**: every socket dropped at once, all reconnect and select again; the time
   until all are served;
4. **chat fan-out**: 50 senders (5 per zone) post ``chat:message`` (channel ``zone``) open-loop
   at a fixed rate; first a light load (2,500 deliveries/s: µs of server CPU per delivery, p50 /
   p99 latency from the send time carried in the message to its receipt), then the knee: rates
   rising geometrically, then bisected, a step passing while p99 ≤ 250 ms, loss ≤ 0.1 % and
   every message acked.

Our servers run on PostgreSQL + Redis (database ``aeturnis_bench``, Redis prefix
``benchfanout``) with the world of bench/fanout_seed.py; the Node reference uses the same Redis
(adapter channel prefix ``bench-sio``). Results: a table on stdout and
``bench/results/fanout[-TAG].json``, server logs next to it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import select
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moves import (
    app_source,
    finite,
    free_port,
    load_average,
    log_problems,
    proc_sample,
    stop_server,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
NODE_DIR = BENCH / "node"
RESULTS = BENCH / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/aeturnis_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
REDIS_PREFIX = "benchfanout"
NODE_REDIS_KEY = "bench-sio"
SECRET_KEY = "aeturnis-bench-fanout-secret-not-for-production-0123456789"
RATE_LIMITS = {  # the defaults would stop every scenario within seconds
    "chat:message": "1000000/60",
    "character:select": "1000000/60",
    "connect": "1000000/60",
}

# --- the servers: the one place that says how each is started ---------------------------------
# Placeholders: {port}, {venv} (the checkout's .venv/bin), {node_dir}, {redis_url}. "node" is the
# reference (Socket.IO frames); every other name is our server (native frames), started in the
# served project's directory. Override or add one with --server-cmd NAME='TEMPLATE'.
SERVER_COMMANDS: dict[str, str] = {
    "node": "node {node_dir}/server.js --port {port} --redis-url {redis_url} --redis-key bench-sio",
    "uvicorn": "{venv}/uvicorn aeturnis.asgi:application --host 127.0.0.1 --port {port} "
    "--ws realtime.transport.uvicorn:WebSocketProtocol --ws-per-message-deflate false "
    "--lifespan off --ws-max-size 1048576 --timeout-graceful-shutdown 10",
    "daphne": "{venv}/daphne -b 127.0.0.1 -p {port} aeturnis.asgi:application",
}
REFERENCE = "node"


def server_argv(cfg: Config, name: str, port: int) -> list[str]:
    template = cfg.server_commands[name]
    return shlex.split(
        template.format(
            port=port,
            venv=ROOT / ".venv" / "bin",
            node_dir=NODE_DIR,
            redis_url=cfg.redis_url,
        )
    )


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    servers: tuple[str, ...]
    server_commands: dict[str, str]
    zones: int
    per_zone: int
    senders_per_zone: int
    storm_concurrency: int
    light_rate: float
    light_seconds: float
    start_rate: float
    factor: float
    refine: int
    step_seconds: float
    warm_seconds: float
    drain_seconds: float
    knee_budget: float
    p99_ms: float
    max_loss: float
    idle_seconds: float
    server_core: int
    gen_core: int
    transport: str
    profile: bool
    profile_rate: float
    repeat: int
    wait_idle: float
    contended_pct: float
    app_dir: Path
    database_url: str
    redis_url: str
    tag: str

    @property
    def clients(self) -> int:
        return self.zones * self.per_zone

    @property
    def recipients(self) -> int:
        """Deliveries per message: the zone without its sender."""
        return self.per_zone - 1

    @property
    def name(self) -> str:
        return "-".join(["fanout", *([self.tag] if self.tag else [])])


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--servers", default="node,uvicorn,daphne", help="comma-separated, in order")
    p.add_argument(
        "--server-cmd",
        action="append",
        default=[],
        metavar="NAME=TEMPLATE",
        help="start command of a server (replaces or adds one; see SERVER_COMMANDS)",
    )
    p.add_argument("--zones", type=int, default=10)
    p.add_argument("--per-zone", type=int, default=100)
    p.add_argument("--senders-per-zone", type=int, default=5)
    p.add_argument("--storm-concurrency", type=int, default=50, help="handshakes in flight")
    p.add_argument("--light-rate", type=float, default=2500, help="deliveries/s of the light load")
    p.add_argument("--light-seconds", type=float, default=10)
    p.add_argument("--start-rate", type=float, default=5000, help="first knee step, deliveries/s")
    p.add_argument("--factor", type=float, default=2.0, help="rate factor of the rising steps")
    p.add_argument("--refine", type=int, default=3, help="bisection steps after the first failure")
    p.add_argument("--step-seconds", type=float, default=5)
    p.add_argument("--warm-seconds", type=float, default=1, help="warm-up at a step's rate")
    p.add_argument("--drain-seconds", type=float, default=3, help="wait for late acks/deliveries")
    p.add_argument("--knee-budget", type=float, default=120, help="max seconds of knee search")
    p.add_argument("--p99-ms", type=float, default=250)
    p.add_argument("--max-loss", type=float, default=0.001)
    p.add_argument("--idle-seconds", type=float, default=3)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--gen-core", type=int, default=1)
    p.add_argument("--transport", choices=("raw", "ws"), default="raw", help="generator client")
    p.add_argument("--profile", action="store_true", help="perf record a step per server")
    p.add_argument("--profile-rate", type=float, default=10000, help="deliveries/s of that step")
    p.add_argument("--repeat", type=int, default=1, help="run everything N times (spread)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=60,
        metavar="S",
        help="before each server (and before retrying a contended step), wait up to S s "
        "for the machine to be idle",
    )
    p.add_argument(
        "--contended-pct",
        type=float,
        default=40,
        help="a failed step is retried once when other processes took more CPU than this",
    )
    p.add_argument("--app-dir", type=Path, default=ROOT, help="project to serve (git archive)")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument("--tag", default="")
    a = p.parse_args(argv)
    commands = dict(SERVER_COMMANDS)
    for item in a.server_cmd:
        name, sep, template = item.partition("=")
        if not sep or not name or not template:
            p.error(f"--server-cmd {item!r} is not NAME=TEMPLATE")
        commands[name] = template
    servers = tuple(s for s in a.servers.split(",") if s)
    unknown = [s for s in servers if s not in commands]
    if unknown:
        p.error(f"unknown server(s) {unknown}; known: {sorted(commands)}")
    if a.per_zone < 2 or a.zones < 1 or a.senders_per_zone > a.per_zone:
        p.error("need at least 2 clients per zone and no more senders than clients")
    return Config(
        servers=servers,
        server_commands=commands,
        zones=a.zones,
        per_zone=a.per_zone,
        senders_per_zone=a.senders_per_zone,
        storm_concurrency=a.storm_concurrency,
        light_rate=a.light_rate,
        light_seconds=a.light_seconds,
        start_rate=a.start_rate,
        factor=a.factor,
        refine=a.refine,
        step_seconds=a.step_seconds,
        warm_seconds=a.warm_seconds,
        drain_seconds=a.drain_seconds,
        knee_budget=a.knee_budget,
        p99_ms=a.p99_ms,
        max_loss=a.max_loss,
        idle_seconds=a.idle_seconds,
        server_core=a.server_core,
        gen_core=a.gen_core,
        transport=a.transport,
        profile=a.profile,
        profile_rate=a.profile_rate,
        repeat=a.repeat,
        wait_idle=a.wait_idle,
        contended_pct=a.contended_pct,
        app_dir=a.app_dir.resolve(),
        database_url=a.database_url,
        redis_url=a.redis_url,
        tag=a.tag,
    )


# --- database, Redis, tokens ------------------------------------------------------------------


def ours_env(cfg: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=cfg.database_url,
        REDIS_URL=cfg.redis_url,
        AETURNIS_REDIS_PREFIX=REDIS_PREFIX,
        AETURNIS_RATE_LIMITS=json.dumps(RATE_LIMITS),
        AETURNIS_ACCESS_TOKEN_LIFETIME_S="7200",
        SECRET_KEY=SECRET_KEY,
        # Production settings: DEBUG=1 would wrap every query in the debug cursor and keep a log.
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(cfg.app_dir),
    )
    return env


def create_database(url: str) -> None:
    name = str(psycopg.conninfo.conninfo_to_dict(url).get("dbname") or "")
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
            print(f"created database {name}")


def prepare_database(cfg: Config) -> None:
    create_database(cfg.database_url)
    env = ours_env(cfg)
    for args in (("migrate", "--noinput"), ("seed_demo",)):
        subprocess.run(
            [str(PYTHON), "manage.py", *args],
            cwd=cfg.app_dir,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def seed_world(cfg: Config) -> list[dict[str, str]]:
    """Zones, characters and fresh tokens (bench/fanout_seed.py); drops earlier runs' chat."""
    out = subprocess.run(
        [
            str(PYTHON),
            str(BENCH / "fanout_seed.py"),
            "--zones",
            str(cfg.zones),
            "--per-zone",
            str(cfg.per_zone),
        ],
        cwd=cfg.app_dir,
        env=ours_env(cfg),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    clients: list[dict[str, str]] = json.loads(out)["clients"]
    return clients


def clear_redis(cfg: Config) -> None:
    client = redis.Redis.from_url(cfg.redis_url)
    with contextlib.closing(client):
        keys = list(client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


def postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process (the server's database work; others' too)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if stat[stat.index("(") + 1 : stat.rindex(")")] != "postgres":
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / os.sysconf("SC_CLK_TCK")


def wait_idle(limit_s: float, busy_pct: float = 25.0, sample_s: float = 2.0) -> float:
    """Wait (at most ``limit_s``) until the machine is idle; returns the seconds waited."""
    started = time.monotonic()
    told = False
    while time.monotonic() - started < limit_s:
        before = machine_busy_s()
        time.sleep(sample_s)
        busy = 100 * (machine_busy_s() - before) / sample_s
        if busy < busy_pct:
            break
        if not told:
            print(f"  machine busy ({busy:.0f} % of one core); waiting for it to go idle …")
            told = True
    return time.monotonic() - started


def redis_cpu_s(cfg: Config) -> float:
    client = redis.Redis.from_url(cfg.redis_url)
    with contextlib.closing(client):
        info: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- processes --------------------------------------------------------------------------------


def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was healthy")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit("server not healthy in time")


class Generator:
    """bench/node/loadgen.js: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, cfg: Config, config: dict[str, Any], log: Path) -> None:
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            "w", prefix="aeturnis-loadgen-", suffix=".json", delete=False
        )
        json.dump(config, self._file)
        self._file.close()
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            pinned(cfg.gen_core, ["node", str(NODE_DIR / "loadgen.js"), self._file.name]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )

    def call(self, command: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"load generator did not answer {command['cmd']} in {timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({self.proc.poll()}); see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"load generator: {reply.get('error')}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call({"cmd": "quit"}, timeout=10)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        os.unlink(self._file.name)


# --- one server -------------------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    command: list[str]
    waited_idle_s: float = 0.0
    load_avg: str = ""
    baseline_rss_mb: float = 0.0
    storm: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    reconnect: dict[str, Any] = field(default_factory=dict)
    light: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    knee: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    log_problem_lines: int = 0
    log_excerpt: list[str] = field(default_factory=list)


def passes(cfg: Config, r: dict[str, Any]) -> bool:
    lat = r["latencyMs"]
    return (
        r["sent"] > 0
        and r["acked"] == r["sent"]
        and r["loss"] is not None
        and r["loss"] <= cfg.max_loss
        and lat["p99"] is not None
        and lat["p99"] <= cfg.p99_ms
    )


def run_step(
    cfg: Config, gen: Generator, deliveries: float, seconds: float, pid: int
) -> dict[str, Any]:
    """One open-loop chat step at ``deliveries``/s (after making sure everyone is connected)."""
    gen.call({"cmd": "connect", "concurrency": cfg.storm_concurrency})  # reopen any closed one
    settled = gen.call({"cmd": "settle", "quietMs": 300, "maxS": 20})
    redis_before = redis_cpu_s(cfg)
    pg_before = postgres_cpu_s()
    before = proc_sample(pid)
    r = gen.call(
        {
            "cmd": "step",
            "rate": deliveries / cfg.recipients,
            "warm": cfg.warm_seconds,
            "seconds": seconds,
            "drainMax": cfg.drain_seconds,
            "sendersPerZone": cfg.senders_per_zone,
        },
        timeout=seconds + cfg.warm_seconds + cfg.drain_seconds + 60,
    )
    after = proc_sample(pid)
    r["target"] = deliveries
    r["settleS"] = settled["settleS"]
    r["redisCpuPct"] = 100 * (redis_cpu_s(cfg) - redis_before) / (after.t - before.t)
    r["postgresCpuPct"] = 100 * (postgres_cpu_s() - pg_before) / (after.t - before.t)
    r["serverRssMb"] = after.rss_kb / 1024
    w = r["window"]
    r["serverCpuPct"] = 100 * w["serverCpuS"] / w["wallS"]
    r["genCpuPct"] = 100 * w["genCpuS"] / w["wallS"]
    r["machineCpuPct"] = 100 * w["machineCpuS"] / w["wallS"]
    # Everything else that ran meanwhile (other sessions' jobs on this shared machine).
    r["otherCpuPct"] = max(
        0.0,
        r["machineCpuPct"]
        - r["serverCpuPct"]
        - r["genCpuPct"]
        - r["redisCpuPct"]
        - r["postgresCpuPct"],
    )
    r["usPerDelivery"] = (
        1e6 * w["serverCpuS"] / r["windowDeliveries"] if r["windowDeliveries"] else None
    )
    r["pass"] = passes(cfg, r)
    lat = r["latencyMs"]
    print(
        f"  step {deliveries:>9,.0f}/s target: {r['deliveriesPerS']:>9,.0f}/s delivered, "
        f"p50 {lat['p50']} p99 {lat['p99']} ms, loss {100 * (r['loss'] or 0):.3f} %, "
        f"acked {r['acked']}/{r['sent']}, server {r['serverCpuPct']:.0f} %, "
        f"gen {r['genCpuPct']:.0f} %, redis {r['redisCpuPct']:.0f} %, "
        f"pg {r['postgresCpuPct']:.0f} %, other {r['otherCpuPct']:.0f} % "
        f"→ {'pass' if r['pass'] else 'FAIL'}",
        flush=True,
    )
    return r


def knee_search(
    cfg: Config, gen: Generator, pid: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    started = time.monotonic()

    def budget_left() -> bool:
        return time.monotonic() - started < cfg.knee_budget

    def attempt(rate: float) -> bool:
        r = run_step(cfg, gen, rate, cfg.step_seconds, pid)
        steps.append(r)
        if not r["pass"] and r["otherCpuPct"] > cfg.contended_pct and budget_left():
            # Other jobs took a core's share meanwhile: wait for quiet and try once more.
            r["contended"] = True
            wait_idle(cfg.wait_idle)
            r = run_step(cfg, gen, rate, cfg.step_seconds, pid)
            steps.append(r)
        return bool(r["pass"])

    lo: float | None = None
    hi: float | None = None
    rate = cfg.start_rate
    while budget_left():
        if attempt(rate):
            lo = rate
            if hi is not None:
                break
            rate *= cfg.factor
        else:
            hi = rate
            if lo is not None:
                break
            rate /= cfg.factor  # even the first step failed: go down
            if rate < cfg.light_rate / 4:
                break
    for _ in range(cfg.refine):
        if lo is None or hi is None or not budget_left():
            break
        mid = math.sqrt(lo * hi)
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    passed = [s for s in steps if s["pass"]]
    best = max(passed, key=lambda s: s["deliveriesPerS"]) if passed else None
    knee = {
        "max_sustained_deliveries_per_s": best["deliveriesPerS"] if best else None,
        "at_target": best["target"] if best else None,
        "first_failing_target": hi,
        "best_step": best["step"] if best else None,
        "gen_cpu_pct_at_best": best["genCpuPct"] if best else None,
        "server_cpu_pct_at_best": best["serverCpuPct"] if best else None,
        "gen_cpu_pct_max": max((s["genCpuPct"] for s in steps), default=None),
        "other_cpu_pct_max": max((s["otherCpuPct"] for s in steps), default=None),
        "budget_exhausted": not budget_left(),
    }
    return steps, knee


def perf_profile(cfg: Config, gen: Generator, pid: int, out: Path) -> dict[str, Any]:
    """A step at ``--profile-rate`` with ``perf record`` on the server: CPU by library."""
    seconds = cfg.step_seconds
    perf = subprocess.Popen(
        ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        step = run_step(cfg, gen, cfg.profile_rate, seconds, pid)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
    report = subprocess.run(
        ["perf", "report", "-i", str(out), "--no-children", "--sort", "dso", "--stdio"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    by_dso: dict[str, float] = {}
    for line in report.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%") and not line.startswith("#"):
            by_dso[parts[1].strip()] = float(parts[0].rstrip("%"))
    groups: dict[str, float] = {}
    for dso, pct in by_dso.items():
        groups[profile_group(dso)] = groups.get(profile_group(dso), 0.0) + pct
    symbols = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(out),
            "--no-children",
            "--sort",
            "dso,sym",
            "--stdio",
            "-g",
            "none",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    top = [
        " ".join(line.split())
        for line in symbols.splitlines()
        if line.strip() and not line.startswith("#") and "%" in line
    ][:25]
    return {
        "rate": cfg.profile_rate,
        "step": step,
        "samples_pct_by_group": {k: round(v, 1) for k, v in sorted(groups.items())},
        "by_dso_pct": by_dso,
        "top_symbols": top,
    }


def profile_group(dso: str) -> str:
    """A library of a perf report, as a row of the README's breakdown."""
    if dso.startswith("[kernel"):
        return "kernel (network stack, epoll, scheduling)"
    if dso.startswith("[JIT]") or dso == "[unknown]":
        return "JIT-compiled JavaScript"
    if dso == "node":
        return "node binary (V8 builtins, libuv, C++)"
    if dso.startswith("libpython"):
        return "Python interpreter"
    if dso.startswith(("libc.", "libm.", "ld-linux", "libpthread")):
        return "libc"
    return "extension modules and other libraries"


def run_server(cfg: Config, name: str, clients: list[dict[str, str]], suffix: str) -> ServerResult:
    reference = name == REFERENCE
    port = free_port()
    argv = server_argv(cfg, name, port)
    result = ServerResult(name=name, command=argv)
    log = RESULTS / f"{cfg.name}-{name}{suffix}.log"
    if not reference:
        clear_redis(cfg)
        clients = seed_world(cfg)  # fresh tokens, no chat rows of earlier servers
    print(f"\n== {name}: {' '.join(argv)}", flush=True)
    result.waited_idle_s = wait_idle(cfg.wait_idle)
    result.load_avg = load_average()
    proc = launch(cfg, name, argv, log)
    gen: Generator | None = None
    try:
        wait_healthy(port, proc)
        gen = start_generator(
            cfg, name, port, proc.pid, clients, RESULTS / f"{cfg.name}-{name}{suffix}-loadgen.log"
        )
        scenarios(cfg, gen, proc.pid, result, RESULTS / f"{cfg.name}-{name}{suffix}.perf.data")
        result.generator = gen.call({"cmd": "stats"})
    except BaseException:
        print(f"failed; server log tail ({log}):", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        raise
    finally:
        if gen is not None:
            gen.close()
        result.exit_code, _ = stop_server(proc)
    result.log_problem_lines, result.log_excerpt = log_problems(log)
    return result


def launch(cfg: Config, name: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start server ``name`` pinned to the server core, its output in ``log``."""
    if name == REFERENCE:
        env, cwd = {**os.environ}, NODE_DIR
    else:
        env, cwd = ours_env(cfg), cfg.app_dir
    with log.open("wb") as out:
        return subprocess.Popen(
            pinned(cfg.server_core, argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def start_generator(
    cfg: Config, name: str, port: int, pid: int, clients: list[dict[str, str]], log: Path
) -> Generator:
    """The load generator for server ``name`` (Socket.IO frames to the reference)."""
    config = {
        "proto": "sio" if name == REFERENCE else "native",
        "transport": cfg.transport,
        "port": port,
        "serverPid": pid,
        "clkTck": os.sysconf("SC_CLK_TCK"),
        "clients": clients,
    }
    return Generator(cfg, config, log)


def warm_up(cfg: Config, gen: Generator) -> None:
    """One connection per zone connects, selects and leaves (the server builds its runtime on
    the first connection; that is not per-connection memory or CPU)."""
    warm = [z * cfg.per_zone for z in range(cfg.zones)]
    gen.call({"cmd": "connect", "clients": warm, "concurrency": 1})
    gen.call({"cmd": "close", "clients": warm})
    time.sleep(1.0)


def scenarios(cfg: Config, gen: Generator, pid: int, result: ServerResult, perf_out: Path) -> None:
    n = cfg.clients
    warm_up(cfg, gen)
    base = proc_sample(pid)
    result.baseline_rss_mb = base.rss_kb / 1024

    pg_before, redis_before = postgres_cpu_s(), redis_cpu_s(cfg)
    storm = gen.call({"cmd": "connect", "concurrency": cfg.storm_concurrency})
    storm["serverCpuPct"] = 100 * storm["serverCpuS"] / storm["wallS"]
    storm["msPerConnect"] = 1000 * storm["serverCpuS"] / max(1, storm["connected"])
    # PostgreSQL and Redis are not pinned: part of their work per connect runs on the
    # server's core and takes it from the server (the wall-time figures show it).
    storm["pgMsPerConnect"] = 1000 * (postgres_cpu_s() - pg_before) / max(1, storm["connected"])
    storm["redisMsPerConnect"] = (
        1000 * (redis_cpu_s(cfg) - redis_before) / max(1, storm["connected"])
    )
    storm["connectsPerS"] = storm["connected"] / storm["wallS"]
    storm["genCpuPct"] = 100 * storm["genCpuS"] / storm["wallS"]
    storm["otherCpuPct"] = 100 * storm["machineCpuS"] / storm["wallS"] - storm["serverCpuPct"]
    storm["otherCpuPct"] -= storm["genCpuPct"]  # incl. PostgreSQL and Redis
    result.storm = storm
    print(
        f"  connect storm: {storm['connected']}/{n} in {storm['wallS']:.2f} s "
        f"({storm['connectsPerS']:.0f}/s), {storm['msPerConnect']:.2f} ms server CPU each "
        f"(server {storm['serverCpuPct']:.0f} %, generator {storm['genCpuPct']:.0f} %, others "
        f"incl. PG/Redis {storm['otherCpuPct']:.0f} %; PostgreSQL {storm['pgMsPerConnect']:.2f} "
        f"ms, Redis {storm['redisMsPerConnect']:.2f} ms each), "
        f"failures {storm['failures'] or 'none'}",
        flush=True,
    )

    time.sleep(2.0)  # the select broadcasts and any deferred work settle
    a = proc_sample(pid)
    time.sleep(cfg.idle_seconds)
    b = proc_sample(pid)
    connected = storm["connected"]
    result.idle = {
        "connected": connected,
        "rss_mb": b.rss_kb / 1024,
        "kb_per_connection": (b.rss_kb - base.rss_kb) / max(1, connected),
        "idle_cpu_pct": 100 * (b.cpu_s - a.cpu_s) / (b.t - a.t),
    }
    print(
        f"  idle: RSS {base.rss_kb / 1024:.1f} → {b.rss_kb / 1024:.1f} MB, "
        f"{result.idle['kb_per_connection']:.1f} KB per connection, "
        f"{result.idle['idle_cpu_pct']:.1f} % CPU idle",
        flush=True,
    )

    rc = gen.call({"cmd": "reconnect", "concurrency": cfg.storm_concurrency})
    rc["serverCpuPct"] = 100 * rc["serverCpuS"] / rc["wallS"]
    rc["otherCpuPct"] = 100 * (rc["machineCpuS"] - rc["serverCpuS"] - rc["genCpuS"]) / rc["wallS"]
    result.reconnect = rc
    print(
        f"  reconnect storm: {rc['connected']}/{rc['dropped']} served in {rc['wallS']:.2f} s "
        f"(server {rc['serverCpuPct']:.0f} %, others incl. PG/Redis {rc['otherCpuPct']:.0f} %), "
        f"failures {rc['failures'] or 'none'}",
        flush=True,
    )
    time.sleep(2.0)

    print("  light load:", flush=True)
    result.light = run_step(cfg, gen, cfg.light_rate, cfg.light_seconds, pid)
    print("  knee search:", flush=True)
    result.steps, result.knee = knee_search(cfg, gen, pid)
    if cfg.profile:
        print("  profile:", flush=True)
        result.profile = perf_profile(cfg, gen, pid, perf_out)


# --- report -----------------------------------------------------------------------------------

# (label, key, how to get the figure from a ServerResult, format); ratios are ours / node
FIGURES: list[tuple[str, str, Any, str]] = [
    ("max sustained deliveries/s", "knee_rate", lambda r: r.knee.get("max_sustained_deliveries_per_s"), "{:,.0f}"),  # noqa: E501
    ("µs server CPU / delivery @light", "light_us", lambda r: r.light.get("usPerDelivery"), "{:.1f}"),  # noqa: E501
    ("p50 latency @light (ms)", "light_p50", lambda r: r.light.get("latencyMs", {}).get("p50"), "{:.1f}"),  # noqa: E501
    ("p99 latency @light (ms)", "light_p99", lambda r: r.light.get("latencyMs", {}).get("p99"), "{:.1f}"),  # noqa: E501
    ("connect+select CPU (ms)", "storm_ms", lambda r: r.storm.get("msPerConnect"), "{:.2f}"),
    ("connections/s (storm)", "storm_rate", lambda r: r.storm.get("connectsPerS"), "{:,.0f}"),
    ("reconnect storm served (s)", "reconnect_s", lambda r: r.reconnect.get("wallS"), "{:.2f}"),
    ("idle memory / connection (KB)", "idle_kb", lambda r: r.idle.get("kb_per_connection"), "{:.1f}"),  # noqa: E501
]  # fmt: skip
EXTRAS: list[tuple[str, Any, str]] = [
    ("server CPU in connect storm (%)", lambda r: r.storm.get("serverCpuPct"), "{:.0f}"),
    ("PostgreSQL CPU / connect+select (ms)", lambda r: r.storm.get("pgMsPerConnect"), "{:.2f}"),
    ("Redis CPU / connect+select (ms)", lambda r: r.storm.get("redisMsPerConnect"), "{:.2f}"),
    ("idle CPU, 1,000 connected (%)", lambda r: r.idle.get("idle_cpu_pct"), "{:.1f}"),
    ("server RSS idle (MB)", lambda r: r.idle.get("rss_mb"), "{:.0f}"),
    ("server CPU @light (%)", lambda r: r.light.get("serverCpuPct"), "{:.0f}"),
    ("server CPU at knee step (%)", lambda r: r.knee.get("server_cpu_pct_at_best"), "{:.0f}"),
    ("generator CPU at knee step (%)", lambda r: r.knee.get("gen_cpu_pct_at_best"), "{:.0f}"),
    ("generator CPU, max of all steps (%)", lambda r: r.knee.get("gen_cpu_pct_max"), "{:.0f}"),
    ("other processes' CPU, max of steps (%)", lambda r: r.knee.get("other_cpu_pct_max"), "{:.0f}"),
    ("first failing step (deliveries/s)", lambda r: r.knee.get("first_failing_target"), "{:,.0f}"),
    ("log problem lines", lambda r: r.log_problem_lines, "{}"),
]  # fmt: skip


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return spec.format(value)


def figures(r: ServerResult) -> dict[str, float | None]:
    return {key: get(r) for _, key, get, _ in FIGURES}


def table(cfg: Config, runs: list[dict[str, ServerResult]]) -> tuple[str, dict[str, Any]]:
    """The printed table (median over repeats, with the range when repeated) and its numbers."""
    servers = list(runs[0])
    ref = REFERENCE if REFERENCE in servers else None
    summary: dict[str, Any] = {}
    rows: list[list[str]] = [["", *servers]]
    for label, key, _, spec in FIGURES:
        row = [label]
        for s in servers:
            values = [figures(run[s])[key] for run in runs if s in run]
            values = [v for v in values if v is not None]
            ratios = []
            if ref is not None and s != ref:
                for run in runs:
                    mine, theirs = figures(run[s])[key], figures(run[ref])[key]
                    if mine is not None and theirs:
                        ratios.append(mine / theirs)
            cell = fmt(statistics.median(values), spec) if values else "—"
            if len(values) > 1:
                cell += f" [{fmt(min(values), spec)}-{fmt(max(values), spec)}]"
            if ratios:
                cell += f" (x{statistics.median(ratios):.2f}"
                cell += f" [{min(ratios):.2f}-{max(ratios):.2f}])" if len(ratios) > 1 else ")"
            row.append(cell)
            summary.setdefault(key, {})[s] = {"values": values, "ratios_to_node": ratios}
        rows.append(row)
    for label, get, spec in EXTRAS:
        row = [label]
        for s in servers:
            values = [get(run[s]) for run in runs if s in run]
            row.append(" / ".join(fmt(v, spec) for v in values))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    source = app_source(cfg.app_dir)
    print(f"code served: {source}; load average {load_average()}", flush=True)
    t0 = time.monotonic()
    prepare_database(cfg)
    clients = seed_world(cfg)
    print(f"database ready in {time.monotonic() - t0:.1f} s ({len(clients)} clients)", flush=True)
    runs: list[dict[str, ServerResult]] = []
    out = RESULTS / f"{cfg.name}.json"
    started = time.strftime("%Y-%m-%d %H:%M:%S")

    def save(text: str = "", summary: dict[str, Any] | None = None) -> None:
        """Written after every server too, so an interrupted run keeps what it measured."""
        data = {
            "source": source,
            "config": {**asdict(cfg), "app_dir": str(cfg.app_dir)},
            "started": started,
            "summary": summary or {},
            "table": text,
            "runs": [{name: asdict(r) for name, r in run.items()} for run in runs],
        }
        out.write_text(json.dumps(finite(data), indent=1, default=str, allow_nan=False) + "\n")

    for i in range(cfg.repeat):
        suffix = f"-run{i + 1}" if cfg.repeat > 1 else ""
        if cfg.repeat > 1:
            print(f"\n##### run {i + 1} of {cfg.repeat}", flush=True)
        runs.append({})
        for name in cfg.servers:
            runs[-1][name] = run_server(cfg, name, clients, suffix)
            save()
    text, summary = table(cfg, runs)
    print(
        f"\ncode served: {source}; {cfg.clients} clients, {cfg.zones} zones, "
        f"{cfg.zones * cfg.senders_per_zone} senders; ratios are to {REFERENCE}; "
        f"total {time.monotonic() - t0:.0f} s\n"
    )
    print(text)
    for run in runs:
        for r in run.values():
            if r.log_excerpt:
                print(f"\n{r.name}: {r.log_problem_lines} log problem lines, e.g.")
                print("\n".join(r.log_excerpt[:12]))
    save(text, summary)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
