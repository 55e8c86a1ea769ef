"""Structured logging: one JSON object per line, per-connection context, never a token.

``AETURNIS_LOG_JSON=1`` makes the console handler use ``JsonFormatter`` (settings ``LOGGING``);
by default ``RedactingFormatter`` keeps lines human-readable. Both pass what they write through
``redact()``, a safety net for tokens that reach a message anyway (a handshake path with
``?token=``, an ``Authorization`` header, a ``bearer.<token>`` subprotocol, a payload).

The consumers ``bind()`` the connection's ``socket_id`` and, once known, its ``user_id``. The
binding lives in a ``ContextVar`` of the connection's task: everything logged while handling that
connection carries it, including tasks it starts (asyncio copies the context) and calls on the
ORM thread (asgiref's ``sync_to_async`` copies it too). This module imports no Django: the
logging configuration loads it before the apps are ready.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

REDACTED = "[REDACTED]"

# Fields a connection binds; a record's own ``extra`` of the same name wins.
CONTEXT_FIELDS = ("socket_id", "user_id")

_fields: ContextVar[dict[str, object] | None] = ContextVar("aeturnis_log_fields", default=None)

# Each pattern with the lower-case strings one of which any match contains: on ASCII text a
# pattern runs only when its text is there (regular expressions that begin with ``\w*`` try
# every position of the line: all five cost ~36 µs on a 90-character log line, the checks ~2).
_SECRETS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    # ?token=..., &access_token=... in paths and query strings
    (re.compile(r"(?i)(\w*token=)[^&\s\"'<>;,]+"), rf"\g<1>{REDACTED}", ("token=",)),
    # ?sid=<node>.<secret>: an Engine.IO sid authorises the requests of its session (the node
    # id, which only says which process holds it, is kept)
    (re.compile(r"([?&]sid=(?:[\w-]+\.)?)[^&\s\"'<>;,]+"), rf"\g<1>{REDACTED}", ("sid=",)),
    # "Authorization: Bearer <token>" and the "bearer.<token>" subprotocol
    (re.compile(r"(?i)(\bbearer[ .]\s*)[\w.~+/=-]+"), rf"\g<1>{REDACTED}", ("bearer",)),
    # "token": "...", 'refresh': '...', password='...' in payloads and reprs
    (
        re.compile(
            r"""(?i)(["']?\b(?:\w*token|refresh|access|password|secret)["']?\s*[:=]\s*["'])"""
            r"""[^"']*"""
        ),
        rf"\g<1>{REDACTED}",
        ("token", "refresh", "access", "password", "secret"),
    ),
    # anything else shaped like a JWT
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), REDACTED, ("eyj",)),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a token or credential replaced by ``[REDACTED]``."""
    if not text.isascii():  # case-insensitive matching beyond ASCII (U+017F is 's'): every pattern
        for pattern, replacement, _ in _SECRETS:
            text = pattern.sub(replacement, text)
        return text
    lowered = text.lower()
    for pattern, replacement, needles in _SECRETS:
        for needle in needles:
            if needle in lowered:
                text = pattern.sub(replacement, text)
                lowered = text.lower()
                break
    return text


def bind(**fields: object) -> None:
    """Add ``fields`` to the log context of the current task (and of tasks it starts later)."""
    _fields.set({**(_fields.get() or {}), **fields})


def bound() -> dict[str, object]:
    """The log context of the current task."""
    return dict(_fields.get() or {})


class RedactingFormatter(logging.Formatter):
    """The standard text formatter, with tokens redacted from the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = _fields.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, context.get(name))
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(entry, default=str).decode()
