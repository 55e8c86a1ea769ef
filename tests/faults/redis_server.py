"""A private ``redis-server`` the fault tests may stop, kill and start again on the same port.

No persistence (``--save "" --appendonly no``): like a cache-only production Redis, it comes
back empty after a restart, which is what the contract's "Redis restart" means (offsets,
history, revocations in Redis are gone; PROTOCOL.md §8, §8a). Its files live in the test's own
temporary directory, never in the machine's Redis.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port`` (the port survives restarts)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        """A client straight to this server (not through any proxy), which fails at once when
        the server is down (no retries); close it after use."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
        )

    def start(self) -> RedisServer:
        """Start (or start again) and return once it answers PING."""
        assert not self.running(), "already running"
        binary = redis_server_binary()
        assert binary is not None, "redis-server is not installed"
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.proc.returncode}:\n{self.log_text()}"
                    )
                try:
                    if client.ping():
                        return self
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server not answering:\n{self.log_text()}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (a clean shutdown; nothing is saved) and wait for the exit."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, its connections are closed by the kernel."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
