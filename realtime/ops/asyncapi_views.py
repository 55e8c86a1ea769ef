"""``GET /api/asyncapi.json`` (the AsyncAPI document) and ``/api/asyncapi/`` (a page rendering it).

Both are anonymous: the protocol is public to every client developer. The page is rendered on
the server from the document itself, with the admin's nothing-from-elsewhere rule: no script,
no CDN, one inline style sheet.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from realtime.ops.asyncapi import SCHEMAS, document

_PRIMITIVE_KEYS = ("const", "enum", "pattern", "minimum", "maximum")


@require_safe
def asyncapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(orjson.dumps(document()), content_type="application/json")


def type_html(schema: dict[str, Any]) -> SafeString:
    """A short, linked description of a JSON Schema's type (``Position | null``, ...)."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(SCHEMAS)
        return format_html('<a href="#schema-{}">{}</a>', name, name)
    if "anyOf" in schema or "oneOf" in schema:
        parts = [type_html(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
        return mark_safe(" | ".join(parts))  # noqa: S308 - each part is escaped
    if "const" in schema:
        return format_html("<code>{}</code>", orjson.dumps(schema["const"]).decode())
    if "enum" in schema:
        values = format_html_join(" ", "<code>{}</code>", ((v,) for v in schema["enum"]))
        return format_html("one of {}", values)
    kind = schema.get("type", "any")
    if kind == "array":
        return format_html("array of {}", type_html(schema.get("items", {})))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return format_html("map of {}", type_html(schema["additionalProperties"]))
    extra = [f"{key} {schema[key]}" for key in _PRIMITIVE_KEYS if key in schema]
    if extra:
        return format_html("{} <small>({})</small>", kind, ", ".join(extra))
    return format_html("{}", kind)


def fields_of(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per property of an object schema: name, linked type, required, description."""
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": type_html(prop),
            "required": name in required,
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation_rows(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    messages = doc["components"]["messages"]
    rows = []
    for key, operation in doc["operations"].items():
        if operation["action"] != action:
            continue
        message = messages[operation["messages"][0]["$ref"].rsplit("/", 1)[1]]
        replies = [
            ref["$ref"].rsplit("/", 1)[1] for ref in operation.get("reply", {}).get("messages", [])
        ]
        rows.append(
            {
                "id": key,
                "event": operation["title"],
                "summary": operation.get("summary", ""),
                "frame": fields_of(message["payload"]),
                "data": type_html(message["payload"]["properties"]["data"]),
                "replies": [(messages[r]["name"], r) for r in replies],
                "errors": operation.get("x-error-codes", []),
                "rate_limit": operation.get("x-rate-limit"),
                "to": operation.get("x-to", []),
                "examples": [
                    orjson.dumps(e["payload"]).decode() for e in message.get("examples", [])
                ],
            }
        )
    return sorted(rows, key=lambda row: str(row["event"]))


@require_safe
def asyncapi_page(request: HttpRequest) -> TemplateResponse:
    doc = document()
    schemas = doc["components"]["schemas"]
    context = {
        "doc": doc,
        "receive": _operation_rows(doc, "receive"),
        "send": _operation_rows(doc, "send"),
        "messages": {key: m["name"] for key, m in doc["components"]["messages"].items()},
        "schemas": [
            {
                "name": name,
                "description": schema.get("description", ""),
                "fields": fields_of(schema),
                "type": type_html(schema) if "properties" not in schema else "",
            }
            for name, schema in schemas.items()
        ],
    }
    return TemplateResponse(request, "realtime/asyncapi.html", context)
