"""Structured logs: one JSON object per line, the connection's ids, and never a token."""

from __future__ import annotations

import contextvars
import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.core import logs
from realtime.core.logs import REDACTED, JsonFormatter, RedactingFormatter, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ1c2VyX2lkIjo3LCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
ROOT = Path(__file__).resolve().parents[2]


def record(
    msg: str, *args: object, exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord("aeturnis.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


def as_json(rec: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def raised(message: str) -> ValueError:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_json_line_has_time_level_logger_and_the_formatted_message() -> None:
    entry = as_json(record("player %s moved\nto %d", "alice", 3))
    assert entry["level"] == "WARNING" and entry["logger"] == "aeturnis.test"
    assert entry["message"] == "player alice moved\nto 3"
    assert isinstance(entry["time"], str) and entry["time"].startswith("20")
    assert "exc_info" not in entry and "socket_id" not in entry and "user_id" not in entry


def test_json_line_carries_the_fields_bound_in_its_context() -> None:
    def in_connection() -> dict[str, object]:
        logs.bind(socket_id="abc123")
        logs.bind(user_id=7)
        return as_json(record("hello"))

    entry = contextvars.copy_context().run(in_connection)
    assert entry["socket_id"] == "abc123" and entry["user_id"] == 7
    # The binding stayed in that context.
    assert logs.bound() == {}
    assert "socket_id" not in as_json(record("outside"))


def test_a_records_own_extra_wins_over_the_context() -> None:
    def in_connection() -> dict[str, object]:
        logs.bind(socket_id="abc123", user_id=7)
        return as_json(record("hello", user_id=9))

    entry = contextvars.copy_context().run(in_connection)
    assert entry["socket_id"] == "abc123" and entry["user_id"] == 9


def test_exception_text_is_one_escaped_field_without_the_token() -> None:
    entry = as_json(record("handler failed", exc=raised(f"bad token {JWT}")))
    text = entry["exc_info"]
    assert isinstance(text, str)
    assert "Traceback" in text and "ValueError: bad token" in text
    assert JWT not in text and REDACTED in text


def test_tokens_are_redacted_from_the_message_and_its_args() -> None:
    entry = as_json(
        record(
            'WebSocket /ws/game/?token=%s&x=1 "%s" %s',
            JWT,
            "Authorization: Bearer opaque-token-value",
            ["aeturnis.v1", f"bearer.{JWT}"],
        )
    )
    message = entry["message"]
    assert isinstance(message, str)
    assert JWT not in message and "opaque-token-value" not in message
    assert message.startswith(f"WebSocket /ws/game/?token={REDACTED}&x=1")


def test_plain_formatter_redacts_the_whole_line() -> None:
    line = RedactingFormatter("%(levelname)s %(message)s").format(
        record("auth frame %r", {"event": "auth", "data": {"token": "not-a-jwt-but-secret"}})
    )
    assert line.startswith("WARNING auth frame")
    assert "not-a-jwt-but-secret" not in line and REDACTED in line
    line = RedactingFormatter("%(message)s").format(record("boom", exc=raised(f"token={JWT}")))
    assert JWT not in line and "ValueError" in line


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET /ws/game/?token={JWT}", JWT),
        ("GET /socket.io/?EIO=4&access_token=s3cr3t&transport=websocket", "s3cr3t"),
        ("GET /socket.io/?EIO=4&transport=polling&sid=n1.Xy3s3cr3tXy3s3cr3t&t=a", "Xy3s3cr3t"),
        ("GET /socket.io/?sid=plainS3cretSid&EIO=4", "plainS3cretSid"),
        ("Authorization: Bearer s3cr3t.value", "s3cr3t.value"),
        ("authorization: bearer s3cr3t", "s3cr3t"),
        ("subprotocols ['aeturnis.v1', 'bearer.s3cr3t-xyz']", "s3cr3t-xyz"),
        ('{"event": "auth", "data": {"token": "s3cr3t"}}', "s3cr3t"),
        ("{'refresh': 's3cr3t'}", "s3cr3t"),
        ("password='s3cr3t'", "s3cr3t"),
        (f"something odd: {JWT} here", JWT),
    ],
)
def test_redact_removes_every_token_shape(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "user 7 joined zone:starting_village (socket ab12) after 3 tokens of patience"
    assert redact(text) == text


def every_pattern(text: str) -> str:
    for pattern, replacement, _ in logs._SECRETS:
        text = pattern.sub(replacement, text)
    return text


FRAGMENTS = [
    "token=", "TOKEN=", "Access_Token=", "sid=", "?sid=", "&sid=n1.", "bearer", "Bearer ",
    "bearer.", "refresh", "ACCESS", "password", "secret", "eyJ", "eyj", JWT, "'", '"', ":", "=",
    " ", ".", "&", "?", "x", "7", "\u017fecret", "\u212aey", "é", "uvicorn.access",
]  # fmt: skip


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
def test_redact_skips_only_patterns_that_cannot_match(text: str) -> None:
    assert redact(text) == every_pattern(text)


def test_a_line_with_no_secret_shape_is_not_searched() -> None:
    line = '127.0.0.1:54180 - "WebSocket /ws/game/" [accepted]'
    assert not any(needle in line.lower() for *_, needles in logs._SECRETS for needle in needles)
    assert redact(line) == line


def _log_from_configured_process(json_logs: bool) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aeturnis.settings", "LOG_LEVEL": "INFO"}
    env["AETURNIS_LOG_JSON"] = "1" if json_logs else "0"
    script = (
        "import logging, django; django.setup(); "
        f"logging.getLogger('realtime.test').warning('open /ws/game/?token=%s', '{JWT}')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.strip()


def test_aeturnis_log_json_switches_the_root_handler_to_json_lines() -> None:
    line = _log_from_configured_process(json_logs=True)
    entry = orjson.loads(line)
    assert entry["logger"] == "realtime.test" and entry["level"] == "WARNING"
    assert entry["message"] == f"open /ws/game/?token={REDACTED}"


def test_default_logs_stay_human_readable_and_redacted() -> None:
    line = _log_from_configured_process(json_logs=False)
    assert not line.startswith("{")
    assert line.endswith(f"WARNING realtime.test open /ws/game/?token={REDACTED}")
