"""deploy/nginx/aeturnis.conf, rendered for temporary ports and run by a real nginx.

The deploy file is the operator's example (ports 8001.., 80, 443, certbot paths). A test renders
it by replacing exactly those values, failing if one is no longer in the file, and wraps it in
a minimal main configuration whose pid, logs and temp paths live under a temporary prefix: no
system-wide nginx is touched or started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = REPO_ROOT / "deploy" / "nginx" / "aeturnis.conf"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Test-only: which process answered a /socket.io/ request (checks the sticky routing).
UPSTREAM_HEADER = "X-Test-Upstream"


def nginx_binary() -> str:
    """The nginx executable; CI installs it (.ci/run), elsewhere the test is skipped."""
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        message = "nginx is not installed (apt-get install nginx; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, valid for two days."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate", pytrace=False)
    subprocess.run(
        [
            openssl, "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def render_site(
    *, backends: list[int], http_port: int, https_port: int, cert: Path, key: Path, logs: Path
) -> str:
    """The deploy file with the test's ports and certificate; fails if an edit point moved."""
    text = SITE_CONF.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "/etc/letsencrypt/live/game.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/game.example.com/privkey.pem": str(key),
        "/var/log/nginx/aeturnis.access.log": str(logs / "aeturnis.access.log"),
        "location /socket.io/ {": (
            f"location /socket.io/ {{\n        add_header {UPSTREAM_HEADER} $upstream_addr always;"
        ),
    }
    for number, port in enumerate(backends, start=1):
        replacements[f"127.0.0.1:800{number}"] = f"127.0.0.1:{port}"
    for old in replacements:
        assert old in text, f"{SITE_CONF} no longer contains {old!r}: update tests/deploy/nginx.py"
    pattern = re.compile("|".join(re.escape(old) for old in replacements))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


def main_config(prefix: Path, site: Path) -> str:
    """A whole nginx.conf around ``site``, everything it writes kept under ``prefix``."""
    # Workers run as the invoking user: under root they would become `nobody`, who cannot
    # enter pytest's 0700 temporary directories to buffer a large response.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


@dataclass
class NginxSite:
    prefix: Path
    conf: Path
    http_port: int
    https_port: int
    cert: Path

    def command(self, *args: str) -> list[str]:
        return [
            nginx_binary(), "-p", f"{self.prefix}/", "-c", str(self.conf),
            "-e", str(self.prefix / "error.log"), *args,
        ]  # fmt: skip

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_site(prefix: Path, *, backends: list[int]) -> NginxSite:
    """Render the deploy file and its main configuration under ``prefix``."""
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(prefix)
    http_port, https_port = free_port(), free_port()
    site = prefix / "aeturnis.conf"
    site.write_text(
        render_site(
            backends=backends,
            http_port=http_port,
            https_port=https_port,
            cert=cert,
            key=key,
            logs=prefix,
        )
    )
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    return NginxSite(prefix, conf, http_port, https_port, cert)


def config_test(site: NginxSite) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the rendered configuration."""
    return subprocess.run(
        site.command("-t"), capture_output=True, text=True, timeout=30, check=False
    )


class RunningNginx:
    """nginx in the foreground (``daemon off``), serving ``site`` until ``stop()``."""

    def __init__(self, site: NginxSite) -> None:
        self.site = site
        log = (site.prefix / "nginx.out").open("wb")
        self.proc = subprocess.Popen(
            site.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"nginx did not start:\n{site.error_log()}", pytrace=False)
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.site.https_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
