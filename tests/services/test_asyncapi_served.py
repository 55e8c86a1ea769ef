"""``/api/asyncapi.json`` and ``/api/asyncapi/``: served to anyone, valid AsyncAPI 3.0, readable.

The document is validated against the official AsyncAPI 3.0.0 JSON Schema from the npm package
``@asyncapi/specs`` (pinned in ``tests/asyncapi/package.json``, installed here with ``npm ci``
when missing); ``node`` and ``npm`` must be on PATH.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Registry
from referencing.jsonschema import DRAFT7

from realtime.handlers.dispatch import ROUTES
from realtime.ops.asyncapi import build_document
from realtime.protocol.outbound.catalog import EVENTS

SPEC_DIR = Path(__file__).resolve().parent.parent / "asyncapi"
SPEC_PACKAGE = SPEC_DIR / "node_modules" / "@asyncapi" / "specs"
NPM_TIMEOUT_S = 300.0


def _pinned() -> str:
    return str(
        json.loads((SPEC_DIR / "package.json").read_text())["dependencies"]["@asyncapi/specs"]
    )


def _installed() -> str | None:
    manifest = SPEC_PACKAGE / "package.json"
    return str(json.loads(manifest.read_text())["version"]) if manifest.exists() else None


@pytest.fixture(scope="session")
def asyncapi_3_validator() -> Draft7Validator:
    """A validator for the official AsyncAPI 3.0.0 JSON Schema (``npm ci`` first if needed)."""
    if _installed() != _pinned():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is needed to install @asyncapi/specs into {SPEC_DIR}", pytrace=False)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SPEC_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
        assert _installed() == _pinned()
    spec = json.loads((SPEC_PACKAGE / "schemas" / "3.0.0.json").read_text())
    # The bundle embeds each definition under its own $id; register them all.
    resources = [spec, *(d for d in spec["definitions"].values() if "$id" in d)]
    registry = META_SCHEMAS.combine(
        Registry().with_resources((r["$id"], DRAFT7.create_resource(r)) for r in resources)
    )
    return Draft7Validator(spec, registry=registry)


def test_the_document_is_valid_asyncapi_3(asyncapi_3_validator: Draft7Validator) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in asyncapi_3_validator.iter_errors(build_document())
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("where", "breakage"),
    [
        (("operations", "receive.ping", "action"), "listen"),
        (("components", "schemas", "Position", "type"), "vector"),
        (("channels", "game", "address"), 42),
    ],
)
def test_the_validation_catches_an_invalid_document(
    asyncapi_3_validator: Draft7Validator, where: tuple[str, ...], breakage: Any
) -> None:
    broken = copy.deepcopy(build_document())
    node = broken
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = breakage
    assert not asyncapi_3_validator.is_valid(broken)


def test_the_json_is_served_to_anyone(client: Any) -> None:
    response = client.get("/api/asyncapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(build_document()))
    assert client.post("/api/asyncapi.json").status_code == 405


def test_the_page_renders_every_event_with_nothing_from_elsewhere(client: Any) -> None:
    response = client.get("/api/asyncapi/")
    assert response.status_code == 200
    html = response.content.decode()
    for event in [*ROUTES, *EVENTS, "chat:error", "combat:error"]:
        assert f"<h3>{event}</h3>" in html or f"<td>{event}</td>" in html, event
    assert 'href="/api/asyncapi.json"' in html
    assert '<a href="#schema-ChatMessagePayload">ChatMessagePayload</a>' in html
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
