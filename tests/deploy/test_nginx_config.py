"""deploy/nginx/aeturnis.conf is a valid nginx configuration that says what the servers need.

``nginx -t`` on the file rendered for temporary ports and a test certificate; the e2e test
(tests/e2e/test_deploy_e2e.py) runs real clients through it.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from tests.deploy.nginx import SITE_CONF, config_test, write_site


def location_block(text: str, location: str) -> str:
    start = text.index(f"location {location} {{")
    return text[start : text.index("}", start)]


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_rendered_config_passes_nginx_t(tmp_path: Path) -> None:
    site = write_site(tmp_path / "nginx", backends=[18001, 18002])
    result = config_test(site)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_websocket_locations_upgrade_and_outlast_the_heartbeats() -> None:
    text = SITE_CONF.read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $aeturnis_connection;" in text
    assert "proxy_http_version 1.1;" in text
    heartbeat_s = (
        settings.AETURNIS_SIO_PING_INTERVAL_MS + settings.AETURNIS_SIO_PING_TIMEOUT_MS
    ) / 1000
    for location in ("/ws/game/", "/socket.io/"):
        block = location_block(text, location)
        read = re.search(r"proxy_read_timeout (\S+);", block)
        assert read, f"{location} sets no proxy_read_timeout"
        assert seconds(read.group(1)) > heartbeat_s, (location, read.group(1))


def test_forwarded_headers_are_set_for_the_trusted_proxy_logic() -> None:
    text = SITE_CONF.read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in text


def test_every_process_has_a_sticky_route_by_its_node_id() -> None:
    text = SITE_CONF.read_text()
    group = re.search(r"upstream aeturnis \{(.*?)\}", text, re.S)
    assert group
    ports = re.findall(r"server 127\.0\.0\.1:(\d+)", group.group(1))
    assert ports == ["8001", "8002"]
    for number, port in enumerate(ports, start=1):
        node = re.search(rf"upstream aeturnis_n{number} \{{\s*server 127\.0\.0\.1:(\d+);", text)
        assert node and node.group(1) == port, f"aeturnis_n{number} must be 127.0.0.1:{port}"
        assert re.search(rf"~\^n{number}\\\.\s+aeturnis_n{number};", text), number
    assert "proxy_pass http://$aeturnis_backend;" in location_block(text, "/socket.io/")
