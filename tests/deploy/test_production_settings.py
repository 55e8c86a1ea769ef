"""deploy/production.env.example: complete, and with it Django's deployment checks pass.

Settings are read once from the environment, so each case runs in a fresh ``python``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aeturnis.settings import cors_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "deploy" / "production.env.example"
SETTINGS = REPO_ROOT / "aeturnis" / "settings.py"
README = REPO_ROOT / "README.md"

REPORT = """
import json
import django
from django.conf import settings
from django.core.management import call_command
django.setup()
call_command("check", "--deploy", "--fail-level", "WARNING")
print(json.dumps({name: getattr(settings, name) for name in [
    "DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS",
    "CORS_ALLOWED_ORIGINS", "CORS_ALLOW_ALL_ORIGINS", "CORS_ALLOW_CREDENTIALS", "STATIC_ROOT",
]} | {"storage": settings.STORAGES["staticfiles"]["BACKEND"]}))
"""


def example_values() -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile reads them (comments skipped)."""
    values = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and name == name.strip() and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
            values[name] = value.strip("'\"")
    return values


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in example_values()}
    return subprocess.run(
        [sys.executable, "-c", REPORT],
        cwd=REPO_ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "aeturnis.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_the_example_and_a_real_secret() -> None:
    result = run_settings({**example_values(), "SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert loaded["DEBUG"] is False and loaded["ALLOWED_HOSTS"] == ["game.example.com"]
    assert loaded["SECURE_SSL_REDIRECT"] and loaded["SESSION_COOKIE_SECURE"]
    assert loaded["CSRF_COOKIE_SECURE"] and loaded["SECURE_HSTS_SECONDS"] == 31536000
    # The scheme header is believed from TRUSTED_PROXIES only (aeturnis.proxy), not by Django.
    assert loaded["SECURE_PROXY_SSL_HEADER"] is None
    origins = ["https://game.example.com", "https://play.example.com"]
    assert loaded["CSRF_TRUSTED_ORIGINS"] == origins
    assert loaded["CORS_ALLOWED_ORIGINS"] == origins and loaded["CORS_ALLOW_CREDENTIALS"]
    assert not loaded["CORS_ALLOW_ALL_ORIGINS"]
    assert loaded["storage"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({}, "SECRET_KEY"),  # the example's placeholder
        ({"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    ],
    ids=["placeholder-secret", "no-allowed-hosts"],
)
def test_debug_off_refuses_to_start_without_a_secret_or_hosts(
    change: dict[str, str], complaint: str
) -> None:
    result = run_settings({**example_values(), **change})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


def settings_read_from_environment() -> set[str]:
    source = SETTINGS.read_text()
    return set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_every_setting_is_in_the_example_and_the_readme() -> None:
    names = settings_read_from_environment() | {"PROMETHEUS_MULTIPROC_DIR", "AETURNIS_NODE_ID"}
    assert {"DEBUG", "CSRF_TRUSTED_ORIGINS", "AETURNIS_HTTPS", "REDIS_URL"} <= names
    example = EXAMPLE.read_text()
    readme = README.read_text()
    for name in sorted(names):
        assert re.search(rf"^#? ?{name}=", example, re.M), f"{name} missing from {EXAMPLE.name}"
        assert f"`{name}`" in readme, f"{name} missing from README.md"


def test_cors_allows_listed_origins_with_credentials_and_a_wildcard_without() -> None:
    listed = cors_settings(["https://play.example.com/"], debug=False)
    assert listed == {
        "CORS_ALLOW_ALL_ORIGINS": False,
        "CORS_ALLOWED_ORIGINS": ["https://play.example.com"],
        "CORS_ALLOW_CREDENTIALS": True,
    }
    for wildcard in (cors_settings(["*"], debug=False), cors_settings([], debug=True)):
        assert wildcard["CORS_ALLOW_ALL_ORIGINS"] and not wildcard["CORS_ALLOW_CREDENTIALS"]
    assert cors_settings([], debug=False)["CORS_ALLOWED_ORIGINS"] == []
