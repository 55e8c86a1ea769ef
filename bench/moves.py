"""Movement load benchmark: N players walk continuously against one server process.

    .venv/bin/python bench/moves.py --players 200 --seconds 20 [--server daphne|uvicorn]
                                    [--redis | --no-redis] [--contention] [--cheaters N]
                                    [--no-seq]

Prepares a dedicated database (PostgreSQL ``aeturnis_bench`` + Redis prefix ``bench``, or a
temporary SQLite file with in-process layers for ``--no-redis``), seeds ``player0001`` …
``playerN``, starts one server process, logs every player in over ``POST /api/auth/token/``,
opens one native WebSocket per player, selects its character and then moves it at ~8 units/s
in small steps, each move with an ``ack`` and an increasing ``seq`` so the round trip of every
move is timed. ``--cheaters N`` makes N of the players walk at 1.15 x the server's speed limit
instead, and ``--contention`` burns a core's worth of CPU next to the server during the window
(issue #16). Reports accepted moves/s, rejections (honest clients and cheaters apart), ack
latency, ``character:moved`` fan-out, server CPU and RSS, and
how many database writes the moves caused (write-behind, PROTOCOL.md §5.2 / README); finally
SIGTERMs the server and checks that every character's last accepted position reached the
database. Results go to ``bench/results/moves-<server>-<mode>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The speed tolerance is a constant of the pure rules (no Django), not a setting.
from characters.rules import SPEED_TOLERANCE  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
RESULTS = ROOT / "bench" / "results"
PASSWORD = "aeturnis-demo"  # the public demo password (PROTOCOL.md §9)
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/aeturnis_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
REDIS_PREFIX = "bench"
RATE_LIMITS = {
    "character:move": "100000/60",
    "character:select": "100000/60",
    "connect": "100000/60",
}
ACK_TIMEOUT_S = 10.0
MOVED_PREFIX = '{"event":"character:moved"'
ACK_PREFIX = '{"ack":'
LAG_SAMPLE_EVERY = 10  # parse one character:moved frame in ten to measure its delivery lag
WALK_RADIUS = 25.0  # players walk back and forth within this distance of their spawn
POSITION_EPS = 1e-6
DEFAULT_FLUSH_S = 5.0  # the server's AETURNIS_POSITION_FLUSH_S default
CHEAT_FACTOR = 1.15  # cheaters walk at 1.15 x the limit, i.e. MAX_SPEED x (1 + tolerance) x 1.15
EDGE_MARGIN = 1.0  # cheaters stop this far from the zone's edge
BURNER = "while True: pass"  # --contention: one busy Python process, not pinned to a core

# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    players: int
    seconds: float
    server: str
    use_redis: bool
    step: float
    interval: float
    port: int
    database_url: str
    redis_url: str
    flush_s: float | None
    token_concurrency: int
    connect_concurrency: int
    cold_connect: bool
    app_dir: Path
    tag: str
    wait_idle: float
    cheaters: int
    contention: bool
    seq: bool
    max_speed: float
    burst_s: float
    move_violations: int | None

    @property
    def mode(self) -> str:
        return "pg-redis" if self.use_redis else "embedded"

    @property
    def rate(self) -> float:
        """The server's speed limit, units/s: the budget's refill (characters.rules)."""
        return self.max_speed * (1.0 + SPEED_TOLERANCE)

    @property
    def capacity(self) -> float:
        """The server's burst, units: what the budget carries from one move to the next."""
        return self.rate * self.burst_s

    @property
    def cheat_speed(self) -> float:
        return CHEAT_FACTOR * self.rate

    @property
    def name(self) -> str:
        """File name of the results: ``moves-<server>-<mode>[-contention][-cheatersN][-<tag>]``."""
        parts = ["moves", self.server, self.mode]
        parts += ["contention"] if self.contention else []
        parts += [f"cheaters{self.cheaters}"] if self.cheaters else []
        parts += [self.tag] if self.tag else []
        return "-".join(parts)


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--players", type=int, default=200)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the measured window")
    p.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    p.add_argument(
        "--redis",
        dest="use_redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL + Redis (default), or --no-redis: SQLite + in-process layers",
    )
    p.add_argument("--step", type=float, default=0.8, help="units per move (default 0.8)")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between moves (0.1)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument(
        "--flush-s", type=float, default=None, help="AETURNIS_POSITION_FLUSH_S (server default 5)"
    )
    p.add_argument("--token-concurrency", type=int, default=8)
    p.add_argument("--connect-concurrency", type=int, default=20)
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before the measured window, wait up to S seconds for the machine to be idle",
    )
    p.add_argument("--tag", default="", help="suffix of the results' file name")
    p.add_argument(
        "--cheaters",
        type=int,
        default=0,
        metavar="N",
        help="N of the players walk straight at 1.15 x the limit (MAX_SPEED x 1.1 x 1.15 units/s,\n"
        "as far as their zone allows) and ignore the server's corrections",
    )
    p.add_argument(
        "--contention",
        action="store_true",
        help="run one CPU-burning process (a Python busy loop, not pinned) during the window",
    )
    p.add_argument(
        "--seq",
        dest="seq",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send an increasing seq with every move (default), or --no-seq: none, as old clients",
    )
    p.add_argument(
        "--max-speed", type=float, default=10.0, help="AETURNIS_MAX_SPEED given to the server (10)"
    )
    p.add_argument(
        "--burst-s",
        type=float,
        default=0.5,
        help="AETURNIS_MOVE_BURST_S given to the server (0.5)",
    )
    p.add_argument(
        "--move-violations",
        type=int,
        default=None,
        metavar="N",
        help="AETURNIS_MOVE_VIOLATIONS for the server (its default, 10, closes a cheater 4003 "
        "after 10 refused moves in a minute)",
    )
    p.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="the project to serve (default: this checkout); e.g. a `git archive` export",
    )
    p.add_argument(
        "--cold-connect",
        action="store_true",
        help="open all clients concurrently on the fresh server (no single first connection)",
    )
    a = p.parse_args(argv)
    if a.players < 1 or a.seconds <= 0 or a.step <= 0 or a.interval <= 0:
        p.error("--players, --seconds, --step and --interval must be positive")
    if not 0 <= a.cheaters < a.players:
        p.error("--cheaters must be at least 0 and leave at least one honest player")
    if not (a.max_speed > 0 and 0 <= a.burst_s <= 60):
        p.error("--max-speed must be positive and --burst-s within 0-60")
    return Config(
        players=a.players,
        seconds=a.seconds,
        server=a.server,
        use_redis=a.use_redis,
        step=a.step,
        interval=a.interval,
        port=a.port or free_port(),
        database_url=a.database_url,
        redis_url=a.redis_url,
        flush_s=a.flush_s,
        token_concurrency=a.token_concurrency,
        connect_concurrency=a.connect_concurrency,
        cold_connect=a.cold_connect,
        app_dir=a.app_dir.resolve(),
        tag=a.tag,
        wait_idle=a.wait_idle,
        cheaters=a.cheaters,
        contention=a.contention,
        seq=a.seq,
        max_speed=a.max_speed,
        burst_s=a.burst_s,
        move_violations=a.move_violations,
    )


def app_source(app_dir: Path) -> str:
    """Which code was served: a commit (``+dirty`` with local changes), or the export's note."""
    note = app_dir / ".bench-source"
    if note.is_file():
        return note.read_text().strip()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=app_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=app_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{app_dir} (not a git checkout)"
    return f"{sha}+dirty" if changes else sha


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(cfg: Config, sqlite_path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["AETURNIS_RATE_LIMITS"] = json.dumps(RATE_LIMITS)
    env["PYTHONUNBUFFERED"] = "1"
    # Every player logs in before the measurement, --token-concurrency at a time: the server
    # checks one password at a time and refuses a login that waited 2 s (429 login_busy), so
    # let them queue instead.
    env["AETURNIS_PASSWORD_HASH_WAIT_S"] = "60"
    if cfg.use_redis:
        env["DATABASE_URL"] = cfg.database_url
        env["REDIS_URL"] = cfg.redis_url
        env["AETURNIS_REDIS_PREFIX"] = REDIS_PREFIX
    else:
        env["AETURNIS_SQLITE_PATH"] = sqlite_path
    if cfg.flush_s is not None:
        env["AETURNIS_POSITION_FLUSH_S"] = str(cfg.flush_s)
    # Set explicitly: the cheaters' accounting uses the same limit as the server.
    env["AETURNIS_MAX_SPEED"] = repr(cfg.max_speed)
    env["AETURNIS_MOVE_BURST_S"] = repr(cfg.burst_s)
    if cfg.move_violations is not None:
        env["AETURNIS_MOVE_VIOLATIONS"] = str(cfg.move_violations)
    return env


# --- database -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Player:
    username: str
    character_id: int
    zone: str
    bounds: tuple[float, float, float, float]  # min_x, max_x, min_y, max_y
    spawn: tuple[float, float, float, float]  # x, y, z, direction as seeded


class Database:
    """Just enough SQL for the bench, on PostgreSQL (psycopg) or SQLite (sqlite3)."""

    def __init__(self, cfg: Config, sqlite_path: str) -> None:
        self.pg = cfg.use_redis
        self.url = cfg.database_url
        self.sqlite_path = sqlite_path

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``%s`` placeholders, ``%%`` for a literal ``%``); its rows."""
        if self.pg:
            with psycopg.connect(self.url, autocommit=True) as conn:
                cursor = conn.execute(sql, params)  # type: ignore[arg-type]
                return cursor.fetchall() if cursor.description is not None else []
        with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn:
            rows = conn.execute(sql.replace("%s", "?").replace("%%", "%"), params).fetchall()
            conn.commit()
            return rows

    def create_if_missing(self) -> None:
        if not self.pg:
            return
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        name = str(info.get("dbname") or "")
        admin = psycopg.conninfo.make_conninfo(self.url, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if found is None:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
                )
                print(f"created database {name}")

    def reset_load_positions(self) -> None:
        """Put every load player's character back at its zone's spawn (earlier runs moved them)."""
        self.query(
            "UPDATE characters_character SET pos_x = z.spawn_x, pos_y = z.spawn_y, "
            "pos_z = z.spawn_z, direction = 0 FROM characters_zone AS z, auth_user AS u "
            "WHERE characters_character.zone_id = z.id AND characters_character.owner_id = u.id "
            "AND u.username LIKE 'player%%'"
        )

    def players(self, n: int) -> list[Player]:
        wanted = {f"player{i:04d}" for i in range(1, n + 1)}
        rows = self.query(
            "SELECT u.username, c.id, z.key, z.min_x, z.max_x, z.min_y, z.max_y, "
            "c.pos_x, c.pos_y, c.pos_z, c.direction FROM characters_character AS c "
            "JOIN auth_user AS u ON u.id = c.owner_id "
            "JOIN characters_zone AS z ON z.id = c.zone_id "
            "WHERE u.username LIKE 'player%%' ORDER BY u.username"
        )
        players = [
            Player(r[0], int(r[1]), r[2], (r[3], r[4], r[5], r[6]), (r[7], r[8], r[9], r[10]))
            for r in rows
            if r[0] in wanted
        ]
        if len(players) != n:
            raise SystemExit(f"expected {n} load characters, found {len(players)}")
        return players

    def positions(self, ids: list[int]) -> dict[int, tuple[float, float, float, float]]:
        rows = self.query("SELECT id, pos_x, pos_y, pos_z, direction FROM characters_character")
        wanted = set(ids)
        return {int(r[0]): (r[1], r[2], r[3], r[4]) for r in rows if int(r[0]) in wanted}

    def character_updates(self) -> int | None:
        """``n_tup_upd`` of the characters table (PostgreSQL only).

        A backend publishes its counts when idle, at most once a second and within ~10 s, so
        this is exact only once the server's connections are gone (read it after the exit).
        """
        if not self.pg:
            return None
        rows = self.query(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'characters_character'"
        )
        return int(rows[0][0]) if rows else None


def manage(cfg: Config, env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=cfg.app_dir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def clear_redis(cfg: Config) -> None:
    """Drop the bench prefix's keys: live positions left by an earlier run would be reused."""
    if not cfg.use_redis:
        return
    client = redis.Redis.from_url(cfg.redis_url)
    with contextlib.closing(client):
        keys = list(client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


def redis_counters(cfg: Config) -> tuple[float, int] | None:
    """Redis server CPU seconds and commands processed (the whole Redis server, not only ours)."""
    if not cfg.use_redis:
        return None
    client = redis.Redis.from_url(cfg.redis_url)
    with contextlib.closing(client):
        info: dict[str, Any] = client.info()  # type: ignore[assignment]
    cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return cpu, int(info["total_commands_processed"])


# --- the server process ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    t: float
    cpu_s: float
    rss_kb: int
    hwm_kb: int


def proc_sample(pid: int) -> ProcSample:
    """CPU seconds (utime + stime) and RSS of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return ProcSample(
        time.monotonic(),
        cpu,
        int(status["VmRSS"].split()[0]),
        int(status["VmHWM"].split()[0]),
    )


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy and stolen (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    busy = sum(fields[:8]) - idle - steal
    return busy / ticks, steal / ticks


IDLE_BUSY_PCT = 25.0  # "idle": the whole machine busy less than a quarter of one core
IDLE_SAMPLE_S = 3.0


async def wait_idle(limit_s: float) -> None:
    """Wait (at most ``limit_s``) until the machine is idle: other jobs skew the figures."""
    deadline = time.monotonic() + limit_s
    told = False
    while time.monotonic() < deadline:
        before = machine_cpu()[0]
        await asyncio.sleep(IDLE_SAMPLE_S)
        busy = 100 * (machine_cpu()[0] - before) / IDLE_SAMPLE_S
        if busy < IDLE_BUSY_PCT:
            return
        if not told:
            print(f"machine busy ({busy:.0f} % of one core); waiting for it to go idle …")
            told = True
    print("machine still busy; measuring anyway", flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_server(cfg: Config, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    venv = ROOT / ".venv" / "bin"
    if cfg.server == "daphne":
        cmd = [
            str(venv / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(cfg.port),
            "aeturnis.asgi:application",
        ]
    else:
        cmd = [
            str(venv / "uvicorn"),
            "aeturnis.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(cfg.port),
            "--ws",
            "realtime.transport.uvicorn:WebSocketProtocol",
            "--ws-per-message-deflate",
            "false",
            "--lifespan",
            "off",
            "--ws-max-size",
            "1048576",
        ]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=cfg.app_dir, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(cfg: Config, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{cfg.port}/healthz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was healthy")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit("server not healthy in time")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> tuple[int, float]:
    """SIGTERM the server and wait; returns its exit code and how long it took to exit."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode), time.monotonic() - started


def log_problems(log: Path, limit: int = 60) -> tuple[int, list[str]]:
    """Count tracebacks / ERROR / WARNING lines in the server log, with an excerpt."""
    lines = log.read_text(errors="replace").splitlines()
    markers = ("Traceback", "ERROR", "Error", "Exception", "WARNING", "CRITICAL")
    hits = [i for i, line in enumerate(lines) if any(m in line for m in markers)]
    excerpt: list[str] = []
    for i in hits:
        for line in lines[i : i + 25]:
            if len(excerpt) >= limit:
                break
            if line not in excerpt[-25:]:
                excerpt.append(line)
    return len(hits), excerpt


# --- tokens ------------------------------------------------------------------------------------


def fetch_token(port: int, username: str) -> str:
    body = json.dumps({"username": username, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/token/", body, {"Content-Type": "application/json"}
    )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return str(json.load(response)["access"])
        except (urllib.error.URLError, TimeoutError):
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def fetch_tokens(cfg: Config, players: list[Player]) -> dict[str, str]:
    gate = asyncio.Semaphore(cfg.token_concurrency)

    async def one(username: str) -> tuple[str, str]:
        async with gate:
            return username, await asyncio.to_thread(fetch_token, cfg.port, username)

    return dict(await asyncio.gather(*(one(p.username) for p in players)))


# --- clients -----------------------------------------------------------------------------------


class Closed(Exception):
    """The socket closed while a request waited for its ack."""


@dataclass
class Window:
    """The measured window, in the client's monotonic clock."""

    start: float = math.inf
    end: float = math.inf
    first_connect: float = math.nan  # ≈ when the server started its runtime and flush timer

    def inside(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass
class ClientStats:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    moved: int = 0  # character:moved frames received inside the window
    moved_total: int = 0
    moved_lag_ms: list[float] = field(default_factory=list)
    other_events: Counter[str] = field(default_factory=Counter)
    close_code: int | None = None
    close_reason: str = ""


@dataclass(frozen=True)
class SentMove:
    """A cheater's move as sent: when (client monotonic clock), where, and what came back."""

    sent: float
    x: float
    y: float
    outcome: str  # "ok", the error code (with ":reason"), or "timeout"


class Client:
    """One player: a socket, a reader task that matches acks, and a walking loop.

    An honest client walks back and forth at ``step / interval`` and snaps back to the
    server's position after a rejection. A cheater walks straight at ``cfg.cheat_speed`` in
    real time (its step is that speed times the time since its previous move, so a slow server
    does not slow it down), never snaps back, and stops at its zone's edge.
    """

    def __init__(
        self, player: Player, token: str, cfg: Config, window: Window, *, cheater: bool = False
    ) -> None:
        self.player = player
        self.token = token
        self.cfg = cfg
        self.window = window
        self.cheater = cheater
        self.stats = ClientStats()
        self.seq = 0
        self.sent_moves: list[SentMove] = []  # cheaters only
        self.heading_xy = (1.0, 0.0)  # cheaters: the straight line they walk
        self.room = 0.0  # cheaters: how far they can walk before the edge
        self.walked = 0.0
        self.origin = (0.0, 0.0)
        self.last_sent: float | None = None
        self.edge_reached_at: float | None = None
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.next_ack = 0
        x, y, z, d = player.spawn
        self.position = (x, y, z, d)
        self.last_acked = self.position
        self.heading = 1.0

    async def open(self) -> None:
        url = f"ws://127.0.0.1:{self.cfg.port}/ws/game/?token={self.token}"
        self.ws = await connect(
            url, compression=None, ping_interval=None, open_timeout=60, max_size=None
        )
        first = orjson.loads(await self.ws.recv())
        if first.get("event") != "sync:initial":
            raise RuntimeError(f"{self.player.username}: first frame {first!r}")
        self.reader = asyncio.create_task(self._read())
        reply = await self.request(
            "character:select", {"characterId": str(self.player.character_id)}
        )
        if not reply.get("ok"):
            raise RuntimeError(f"{self.player.username}: select failed {reply!r}")
        p = reply["character"]["position"]
        self.position = self.last_acked = (p["x"], p["y"], p["z"], p["direction"])
        if self.cheater:
            self._aim()

    def _aim(self) -> None:
        """Point a cheater along the axis direction with the most room inside its zone."""
        min_x, max_x, min_y, max_y = self.player.bounds
        x, y, _, _ = self.position
        options = [
            (max_x - x, (1.0, 0.0)),
            (x - min_x, (-1.0, 0.0)),
            (max_y - y, (0.0, 1.0)),
            (y - min_y, (0.0, -1.0)),
        ]
        room, self.heading_xy = max(options)
        self.room = max(0.0, room - EDGE_MARGIN)
        self.origin = (x, y)

    async def request(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        _, reply = await self._send(event, data)
        return reply

    async def _send(self, event: str, data: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        assert self.ws is not None
        self.next_ack += 1
        ack = self.next_ack
        future: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[ack] = future
        await self.ws.send(orjson.dumps({"event": event, "data": data, "ack": ack}).decode())
        try:
            return await asyncio.wait_for(future, ACK_TIMEOUT_S)
        finally:
            self.pending.pop(ack, None)

    async def _read(self) -> None:
        assert self.ws is not None
        s = self.stats
        try:
            async for raw in self.ws:
                now = time.monotonic()
                frame = raw if isinstance(raw, str) else raw.decode()
                if frame.startswith(MOVED_PREFIX):
                    s.moved_total += 1
                    if self.window.inside(now):
                        s.moved += 1
                        if s.moved % LAG_SAMPLE_EVERY == 0:
                            sent_ms = orjson.loads(frame)["data"]["timestamp"]
                            s.moved_lag_ms.append(time.time() * 1000 - sent_ms)
                elif frame.startswith(ACK_PREFIX):
                    message = orjson.loads(frame)
                    future = self.pending.get(message["ack"])
                    if future is not None and not future.done():
                        future.set_result((now, message["data"]))
                else:
                    s.other_events[str(orjson.loads(frame).get("event"))] += 1
        except ConnectionClosed:
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(Closed())
            if self.ws.close_code is not None:
                s.close_code = self.ws.close_code
                s.close_reason = self.ws.close_reason or ""

    def _target(self) -> tuple[float, float, float, float]:
        """The next point of a back-and-forth walk along x on one side of the spawn.

        The walk stays between one step and ``WALK_RADIUS`` from the spawn (on the side that
        fits inside the zone), so an accepted move never lands on the seeded position again.
        """
        _, max_x, _, _ = self.player.bounds
        x, y, z, _ = self.position
        spawn_x = self.player.spawn[0]
        side = 1.0 if spawn_x + WALK_RADIUS <= max_x - 1.0 else -1.0
        near, far = spawn_x + side * self.cfg.step, spawn_x + side * WALK_RADIUS
        lo, hi = min(near, far), max(near, far)
        if not lo <= x <= hi:  # at the spawn (or snapped back to it): walk away from it
            self.heading = side
        nx = x + self.heading * self.cfg.step
        if not lo <= nx <= hi:
            self.heading = -self.heading
            nx = x + self.heading * self.cfg.step
        return (round(nx, 6), y, z, 0.0 if self.heading > 0 else round(math.pi, 6))

    def _cheat_target(self, sent: float) -> tuple[float, float, float, float] | None:
        """A cheater's next point: ``cheat_speed`` x the time since its previous move further
        along its line (one interval for the first move); None once that is past the edge."""
        dt = self.cfg.interval if self.last_sent is None else sent - self.last_sent
        step = self.cfg.cheat_speed * dt
        if self.walked + step > self.room:
            return None
        self.last_sent = sent
        self.walked += step
        (x0, y0), (dx, dy) = self.origin, self.heading_xy
        z = self.position[2]
        return (round(x0 + dx * self.walked, 6), round(y0 + dy * self.walked, 6), z, 0.0)

    async def move_once(self) -> bool:
        """Send one move and wait for its ack; False when a cheater has reached its edge."""
        sent = time.monotonic()
        target = self._cheat_target(sent) if self.cheater else self._target()
        if target is None:
            self.edge_reached_at = sent
            return False
        x, y, z, d = target
        data: dict[str, Any] = {"x": x, "y": y, "z": z, "direction": d}
        if self.cfg.seq:
            self.seq += 1
            data["seq"] = self.seq
        outcome = "timeout"
        try:
            acked_at, reply = await self._send("character:move", data)
        except TimeoutError:
            self.stats.timeouts += 1
        else:
            outcome = self._answered(target, sent, acked_at, reply)
        if self.cheater:
            self.position = target  # its own trajectory, whatever the server said
            self.sent_moves.append(SentMove(sent, x, y, outcome))
        return True

    def _answered(
        self,
        target: tuple[float, float, float, float],
        sent: float,
        acked_at: float,
        reply: dict[str, Any],
    ) -> str:
        s = self.stats
        s.latencies.append((sent, acked_at - sent))
        if reply.get("ok"):
            s.accepted += 1
            self.position = self.last_acked = target
            return "ok"
        error = reply.get("error") or {}
        code = str(error.get("code"))
        if error.get("reason"):
            code = f"{code}:{error['reason']}"
        s.rejected[code] += 1
        p = error.get("position")
        if p and not self.cheater:  # the authoritative position: snap back (PROTOCOL.md §5.2)
            self.position = (p["x"], p["y"], p["z"], p["direction"])
        return code

    async def walk(self) -> None:
        """One move in flight at a time: a move every ``interval`` after the previous was sent,
        or right after its ack when the ack took longer (no catch-up bursts)."""
        next_send = self.window.start + random.uniform(0, self.cfg.interval)
        while True:
            delay = min(next_send, self.window.end) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.monotonic()
            if sent >= self.window.end or self.ws is None or self.ws.close_code is not None:
                return
            try:
                if not await self.move_once():
                    return
            except (ConnectionClosed, Closed):
                return
            next_send = sent + self.cfg.interval


async def open_clients(
    cfg: Config, players: list[Player], tokens: dict[str, str], window: Window
) -> list[Client]:
    """Open every client, ``connect_concurrency`` at a time.

    Unless ``cold_connect``, the first client connects alone: the server builds its per-process
    runtime on the first connection, and concurrent first connections on a fresh process can
    each build their own (see bench/README.md), which is not the steady state measured here.
    """
    gate = asyncio.Semaphore(cfg.connect_concurrency)
    # The last N players cheat: round-robin seeding spreads them over the zones too.
    first_cheater = len(players) - cfg.cheaters
    clients = [
        Client(p, tokens[p.username], cfg, window, cheater=i >= first_cheater)
        for i, p in enumerate(players)
    ]

    async def one(client: Client) -> None:
        async with gate:
            await client.open()

    rest = clients
    window.first_connect = time.monotonic()
    if not cfg.cold_connect:
        await clients[0].open()
        rest = clients[1:]
    await asyncio.gather(*(one(c) for c in rest))
    return clients


# --- statistics --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def latency_summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else math.nan,
        "mean": statistics.fmean(ms) if ms else math.nan,
    }


def per_second(clients: list[Client], window: Window) -> list[dict[str, float]]:
    buckets: dict[int, list[float]] = {}
    for c in clients:
        for sent, latency in c.stats.latencies:
            buckets.setdefault(int(sent - window.start), []).append(latency * 1000)
    return [
        {
            "second": s,
            "moves": len(v),
            "p50_ms": round(percentile(v, 50), 2),
            "p99_ms": round(percentile(v, 99), 2),
            "max_ms": round(max(v), 2),
        }
        for s, v in sorted(buckets.items())
    ]


def flush_phase(clients: list[Client], window: Window, flush_s: float) -> dict[str, Any]:
    """Ack latency of moves in flight around a write-behind flush vs all other moves.

    The server's flush timer starts with its runtime (the first connection) and fires every
    ``flush_s`` (plus each flush's own duration, ignored here), so the flush times are
    estimates. "Near" means the move was in flight between 50 ms before and 500 ms after one.
    """
    if math.isnan(window.first_connect):
        return {}
    k0 = math.ceil((window.start - window.first_connect) / flush_s)
    flushes = [
        window.first_connect + k * flush_s
        for k in range(max(1, k0 - 1), k0 + math.ceil((window.end - window.start) / flush_s) + 1)
    ]
    near: list[float] = []
    away: list[float] = []
    for c in clients:
        for sent, latency in c.stats.latencies:
            hit = any(sent <= f + 0.5 and sent + latency >= f - 0.05 for f in flushes)
            (near if hit else away).append(latency)
    in_window = [round(f - window.start, 2) for f in flushes if window.start <= f < window.end]
    return {
        "flush_at_s": in_window,
        "near_flush_moves": len(near),
        "near_flush_ms": latency_summary(near),
        "other_ms": latency_summary(away),
    }


def cheater_summary(clients: list[Client], cfg: Config) -> dict[str, Any]:
    """The cheaters' moves, counted from what they sent and what came back.

    A cheater's move fits in its burst when the distance from its first move's point to this
    one is at most ``capacity + rate x (sent - first sent)``: what the server's budget allows a
    client whose first move spent the pause before it (the window starts at least a second
    after the selection) and whose moves arrive as they are sent. Every other move is "beyond
    the burst" and should be refused; moves that got no answer (timeouts) are left out.
    """
    cheaters = [c for c in clients if c.cheater]
    within: Counter[str] = Counter()
    beyond: Counter[str] = Counter()
    for c in cheaters:
        if not c.sent_moves:
            continue
        first = c.sent_moves[0]
        for move in c.sent_moves:
            if move.outcome == "timeout":
                continue
            ahead = math.hypot(move.x - first.x, move.y - first.y)
            allowed = cfg.capacity + cfg.rate * (move.sent - first.sent)
            (beyond if ahead > allowed + POSITION_EPS else within)[move.outcome] += 1
    beyond_total = sum(beyond.values())
    beyond_refused = beyond_total - beyond["ok"]
    return {
        "cheaters": len(cheaters),
        "speed": round(cfg.cheat_speed, 4),
        "limit": round(cfg.rate, 4),
        "capacity": round(cfg.capacity, 4),
        "moves_sent": sum(len(c.sent_moves) for c in cheaters),
        "timeouts": sum(m.outcome == "timeout" for c in cheaters for m in c.sent_moves),
        "within_burst": dict(within),
        "beyond_burst": dict(beyond),
        "beyond_burst_moves": beyond_total,
        "beyond_burst_refused": beyond_refused,
        "beyond_burst_refused_pct": 100 * beyond_refused / beyond_total if beyond_total else None,
        "closed_4003": sum(c.stats.close_code == 4003 for c in cheaters),
        "reached_edge": sum(c.edge_reached_at is not None for c in cheaters),
    }


class Burner:
    """``--contention``: one CPU-burning process on the same cores as the server, for the
    measured window only. Not pinned: the scheduler shares the cores as it would with any
    other busy neighbour. Records how much CPU it actually took, so a run shows it ran."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.before: ProcSample | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BURNER])
        self.before = proc_sample(self.proc.pid)

    def stop(self) -> dict[str, Any]:
        if self.proc is None or self.before is None:
            return {"ran": False}
        after = proc_sample(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        elapsed = after.t - self.before.t
        return {
            "ran": True,
            "command": f"{sys.executable} -c {BURNER!r}",
            "pid": self.proc.pid,
            "seconds": round(elapsed, 2),
            "cpu_pct": round(100 * (after.cpu_s - self.before.cpu_s) / elapsed, 1)
            if elapsed > 0
            else None,
        }


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Result:
    config: dict[str, Any]
    source: str
    players: int
    seconds: float
    accepted: int = 0
    accepted_per_s: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    max_rejected_one_client: int = 0
    honest_moves: int = 0
    honest_rejected: dict[str, int] = field(default_factory=dict)
    honest_max_rejected_one_client: int = 0
    cheaters: dict[str, Any] = field(default_factory=dict)
    contention: dict[str, Any] = field(default_factory=dict)
    ack_timeouts: int = 0
    ack_latency_ms: dict[str, float] = field(default_factory=dict)
    moved_events: int = 0
    moved_per_s: float = 0.0
    moved_lag_ms: dict[str, float] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)
    server_cpu_pct: float = 0.0
    server_rss_mb_before: float = 0.0
    server_rss_mb_after: float = 0.0
    server_rss_mb_peak: float = 0.0
    client_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0  # all cores together: up to 100 * cores
    other_cpu_pct: float = 0.0  # machine - server - client - Redis - the --contention burner
    steal_pct: float = 0.0
    load_avg_before: str = ""
    redis_cpu_pct: float | None = None
    redis_commands_per_move: float | None = None
    rows_moved_before_shutdown: int = 0
    rows_at_last_ack_before_shutdown: int = 0
    rows_at_last_ack_after_shutdown: int = 0
    character_updates: int | None = None
    server_exit_code: int = 0
    server_exit_s: float = 0.0
    close_codes: dict[str, int] = field(default_factory=dict)
    log_problem_lines: int = 0
    log_excerpt: list[str] = field(default_factory=list)
    per_second: list[dict[str, float]] = field(default_factory=list)
    flush_phase: dict[str, Any] = field(default_factory=dict)
    setup_s: dict[str, float] = field(default_factory=dict)


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities (empty statistics) replaced by None, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= POSITION_EPS for x, y in zip(a, b, strict=True))


async def measure(
    cfg: Config, proc: subprocess.Popen[bytes], players: list[Player], result: Result
) -> list[Client]:
    t0 = time.monotonic()
    tokens = await fetch_tokens(cfg, players)
    result.setup_s["tokens"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    window = Window()
    clients = await open_clients(cfg, players, tokens, window)
    result.setup_s["connect_select"] = round(time.monotonic() - t0, 1)
    await asyncio.sleep(1.0)  # let the character:online burst settle
    if cfg.wait_idle > 0:
        t0 = time.monotonic()
        await wait_idle(cfg.wait_idle)
        result.setup_s["wait_idle"] = round(time.monotonic() - t0, 1)
    print(f"{len(clients)} clients selected; moving for {cfg.seconds:g} s …", flush=True)

    before = proc_sample(proc.pid)
    redis_before = redis_counters(cfg)
    own_before = sum(os.times()[:2])
    machine_before = machine_cpu()
    result.load_avg_before = load_average()
    burner = Burner()
    if cfg.contention:
        burner.start()
    window.start = time.monotonic() + 0.05
    window.end = window.start + cfg.seconds
    try:
        await asyncio.gather(*(c.walk() for c in clients))
    finally:
        result.contention = burner.stop()
    after = proc_sample(proc.pid)
    redis_after = redis_counters(cfg)
    own_after = sum(os.times()[:2])
    machine_after = machine_cpu()
    elapsed = after.t - before.t

    stats = [c.stats for c in clients]
    result.accepted = sum(s.accepted for s in stats)
    result.accepted_per_s = result.accepted / cfg.seconds
    result.rejected = dict(sum((s.rejected for s in stats), Counter()))
    result.max_rejected_one_client = max(sum(s.rejected.values()) for s in stats)
    honest = [c.stats for c in clients if not c.cheater]
    result.honest_moves = sum(s.accepted + sum(s.rejected.values()) for s in honest)
    result.honest_rejected = dict(sum((s.rejected for s in honest), Counter()))
    result.honest_max_rejected_one_client = max(sum(s.rejected.values()) for s in honest)
    if cfg.cheaters:
        result.cheaters = cheater_summary(clients, cfg)
    result.ack_timeouts = sum(s.timeouts for s in stats)
    result.ack_latency_ms = latency_summary([lat for s in stats for _, lat in s.latencies])
    result.moved_events = sum(s.moved for s in stats)
    result.moved_per_s = result.moved_events / cfg.seconds
    result.moved_lag_ms = latency_summary([v / 1000 for s in stats for v in s.moved_lag_ms])
    result.server_cpu_pct = 100 * (after.cpu_s - before.cpu_s) / elapsed
    result.client_cpu_pct = 100 * (own_after - own_before) / elapsed
    result.machine_cpu_pct = 100 * (machine_after[0] - machine_before[0]) / elapsed
    result.steal_pct = 100 * (machine_after[1] - machine_before[1]) / elapsed
    if redis_before is not None and redis_after is not None:
        result.redis_cpu_pct = 100 * (redis_after[0] - redis_before[0]) / elapsed
        moves = result.accepted + sum(result.rejected.values())
        result.redis_commands_per_move = (redis_after[1] - redis_before[1]) / max(1, moves)
    result.other_cpu_pct = (
        result.machine_cpu_pct
        - result.server_cpu_pct
        - result.client_cpu_pct
        - (result.redis_cpu_pct or 0.0)
        - (result.contention.get("cpu_pct") or 0.0)
    )
    result.server_rss_mb_before = before.rss_kb / 1024
    result.server_rss_mb_after = after.rss_kb / 1024
    result.server_rss_mb_peak = after.hwm_kb / 1024
    result.per_second = per_second(clients, window)
    result.flush_phase = flush_phase(clients, window, cfg.flush_s or DEFAULT_FLUSH_S)
    return clients


async def shut_down(
    cfg: Config, proc: subprocess.Popen[bytes], db: Database, clients: list[Client], result: Result
) -> None:
    ids = [c.player.character_id for c in clients]
    stored = await asyncio.to_thread(db.positions, ids)
    result.rows_moved_before_shutdown = sum(
        not same(stored[c.player.character_id], c.player.spawn) for c in clients
    )
    result.rows_at_last_ack_before_shutdown = sum(
        same(stored[c.player.character_id], c.last_acked) for c in clients
    )
    result.server_exit_code, result.server_exit_s = await asyncio.to_thread(stop_server, proc)
    readers = [c.reader for c in clients if c.reader is not None]
    _, late = await asyncio.wait(readers, timeout=10) if readers else (set(), set())
    for task in late:
        task.cancel()
    for c in clients:
        if c.ws is not None:
            with contextlib.suppress(Exception):
                await c.ws.close()
    stored = await asyncio.to_thread(db.positions, ids)
    result.rows_at_last_ack_after_shutdown = sum(
        same(stored[c.player.character_id], c.last_acked) for c in clients
    )
    codes = Counter(f"{c.stats.close_code} {c.stats.close_reason}".strip() for c in clients)
    result.close_codes = dict(codes)
    events: Counter[str] = Counter()
    for c in clients:
        events.update(c.stats.other_events)
    result.other_events = dict(events)


def prepare(cfg: Config, env: dict[str, str], db: Database) -> tuple[list[Player], int | None]:
    db.create_if_missing()
    manage(cfg, env, "migrate", "--noinput")
    manage(cfg, env, "seed_demo", "--players", str(cfg.players))
    db.reset_load_positions()
    clear_redis(cfg)
    return db.players(cfg.players), db.character_updates()


async def run(cfg: Config) -> Result:
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = cfg.name
    log = RESULTS / f"{name}.log"
    result = Result(
        config=asdict(cfg), source=app_source(cfg.app_dir), players=cfg.players, seconds=cfg.seconds
    )
    with tempfile.TemporaryDirectory(prefix="aeturnis-bench-") as tmp:
        sqlite_path = str(Path(tmp) / "bench.sqlite3")
        env = server_env(cfg, sqlite_path)
        db = Database(cfg, sqlite_path)
        t0 = time.monotonic()
        players, updates_before = prepare(cfg, env, db)
        result.setup_s["prepare_db"] = round(time.monotonic() - t0, 1)
        proc = start_server(cfg, env, log)
        try:
            wait_healthy(cfg, proc)
            clients = await measure(cfg, proc, players, result)
            await shut_down(cfg, proc, db, clients, result)
        except BaseException:
            print(f"failed; server log tail ({log}):", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            stop_server(proc)
        # After the server exited its backends have flushed their statistics.
        updates_after = db.character_updates()
        if updates_before is not None and updates_after is not None:
            result.character_updates = updates_after - updates_before
    result.log_problem_lines, result.log_excerpt = log_problems(log)
    text = json.dumps(finite(asdict(result)), indent=2, default=str, allow_nan=False)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    return result


# --- report ------------------------------------------------------------------------------------


def cheaters_line(c: dict[str, Any]) -> str:
    if not c:
        return "none"
    pct = c["beyond_burst_refused_pct"]
    return (
        f"{c['cheaters']} at {c['speed']:g} units/s (limit {c['limit']:g}, burst "
        f"{c['capacity']:g} units): beyond the burst {c['beyond_burst_refused']} of "
        f"{c['beyond_burst_moves']} refused ({'n/a' if pct is None else f'{pct:.1f} %'}) "
        f"{c['beyond_burst']}; within it {c['within_burst']}; {c['timeouts']} timeouts, "
        f"{c['closed_4003']} closed 4003, {c['reached_edge']} reached their zone's edge"
    )


def contention_line(c: dict[str, Any]) -> str:
    if not c.get("ran"):
        return "none"
    return f"one busy process (pid {c['pid']}) took {c['cpu_pct']} % of a core for {c['seconds']} s"


def report(cfg: Config, r: Result) -> None:
    lat, lag = r.ack_latency_ms, r.moved_lag_ms
    rejected = sum(r.rejected.values())
    writes = "n/a (SQLite)" if r.character_updates is None else str(r.character_updates)
    rows = [
        ("server / mode", f"{cfg.server} / {cfg.mode}, {r.players} players, {r.seconds:g} s"),
        ("code served", r.source),
        (
            "accepted moves",
            f"{r.accepted} ({r.accepted_per_s:.0f}/s; offered "
            f"{r.players / cfg.interval:.0f}/s, one move in flight per client)",
        ),
        (
            "rejected moves",
            f"{rejected} {r.rejected or ''} (at most {r.max_rejected_one_client} for one client)",
        ),
        (
            "honest rejected",
            f"{sum(r.honest_rejected.values())} of {r.honest_moves} {r.honest_rejected or ''} "
            f"(at most {r.honest_max_rejected_one_client} for one client; "
            f"seq {'on' if cfg.seq else 'off'})",
        ),
        ("cheaters", cheaters_line(r.cheaters)),
        ("contention", contention_line(r.contention)),
        ("ack timeouts", str(r.ack_timeouts)),
        (
            "ack latency ms",
            f"p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  "
            f"p99 {lat['p99']:.1f}  max {lat['max']:.1f}",
        ),
        ("character:moved recv", f"{r.moved_events} ({r.moved_per_s:.0f}/s)"),
        (
            "moved delivery lag ms",
            f"p50 {lag['p50']:.1f}  p99 {lag['p99']:.1f}  max {lag['max']:.1f}",
        ),
        ("server CPU", f"{r.server_cpu_pct:.0f} % (of one core)"),
        (
            "server RSS MB",
            f"{r.server_rss_mb_before:.0f} → {r.server_rss_mb_after:.0f} "
            f"(peak {r.server_rss_mb_peak:.0f})",
        ),
        ("client CPU", f"{r.client_cpu_pct:.0f} % (load generator, same machine)"),
        (
            "machine CPU",
            f"{r.machine_cpu_pct:.0f} % of {100 * (os.cpu_count() or 1)} % "
            f"(other processes incl. PostgreSQL {r.other_cpu_pct:.0f} %, steal "
            f"{r.steal_pct:.0f} %; load avg before {r.load_avg_before})",
        ),
        (
            "redis",
            "n/a"
            if r.redis_cpu_pct is None or r.redis_commands_per_move is None
            else f"CPU {r.redis_cpu_pct:.0f} %, {r.redis_commands_per_move:.1f} commands per move",
        ),
        ("rows moved (pre-TERM)", f"{r.rows_moved_before_shutdown} / {r.players}"),
        ("characters n_tup_upd", f"{writes} (whole run incl. shutdown) vs {r.accepted} moves"),
        (
            "rows = last ack",
            f"{r.rows_at_last_ack_before_shutdown} before SIGTERM, "
            f"{r.rows_at_last_ack_after_shutdown} after (of {r.players})",
        ),
        ("server exit", f"code {r.server_exit_code} after {r.server_exit_s:.1f} s"),
        ("close codes", ", ".join(f"{k}: {v}" for k, v in r.close_codes.items())),
        ("log problem lines", str(r.log_problem_lines)),
        ("setup s", ", ".join(f"{k} {v}" for k, v in r.setup_s.items())),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    p99 = " ".join(f"{b['p99_ms']:.0f}" for b in r.per_second)
    print(f"{'p99 ms per second':<{width}}  {p99}")
    fp = r.flush_phase
    if fp:
        near, other = fp["near_flush_ms"], fp["other_ms"]
        print(
            f"{'ack ms near flush':<{width}}  p50 {near['p50']:.1f}  p99 {near['p99']:.1f}  "
            f"max {near['max']:.1f} ({fp['near_flush_moves']} moves; flushes ≈ "
            f"{', '.join(f'{t:g}' for t in fp['flush_at_s'])} s) vs other: "
            f"p50 {other['p50']:.1f}  p99 {other['p99']:.1f}  max {other['max']:.1f}"
        )
    if r.log_excerpt:
        print("\nserver log excerpt:")
        print("\n".join(r.log_excerpt[:40]))
    print(f"\nresults: {RESULTS / f'{cfg.name}.json'}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(cfg))
    else:
        result = uvloop.run(run(cfg))
    report(cfg, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
