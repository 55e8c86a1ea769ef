"""Names for the few statements written by hand on the connect path (the handshake's account
check, the account's state): building and compiling a queryset there costs many times the CPU
of running it (bench/README.md). Names come from the models, so a renamed column or table
follows; values are always parameters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.utils.dateparse import parse_datetime


def table(model: type[Model]) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def pk(model: type[Model], alias: str) -> str:
    return f"{alias}.{connection.ops.quote_name(model._meta.pk.column)}"


def column(model: type[Model], name: str, alias: str) -> str:
    """``alias.column`` of the concrete field ``name`` (a foreign key: its id column)."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column, name
    return f"{alias}.{connection.ops.quote_name(field.column)}"


def datetime_value(value: Any) -> datetime | None:
    """A datetime column read by hand, as the ORM would give it: aware (SQLite returns text)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
