"""The AsyncAPI 3.0 document of the WebSocket protocol, generated from the code.

Client → server operations come from the dispatch table (``ROUTES``: each payload's JSON Schema
from its pydantic ``TypeAdapter``); server → client events, replies, acks and errors from the
outbound models and their catalog (``realtime.protocol.outbound``). Every message's payload is
the whole native frame (``{event, data, ack?}``, room events with ``room``, ``offset`` and
``epoch``), so a frame the server sends can be checked against the document as it is.

Served at ``/api/asyncapi.json`` and rendered at ``/api/asyncapi/``
(``realtime.ops.asyncapi_views``); the tests validate it against the AsyncAPI 3.0 JSON Schema
and keep it equal to the dispatch table.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from django.conf import settings
from pydantic import TypeAdapter

from realtime.core.errors import ErrorCode
from realtime.handlers.dispatch import ROUTES, error_event_for
from realtime.ops.asyncapi_text import DESCRIPTION, EXAMPLES, SOCKETIO_DESCRIPTION
from realtime.protocol.outbound.catalog import (
    ANSWERS,
    EVENTS,
    FRAME_ERRORS,
    REPLY,
    ROUTING_ERRORS,
)
from realtime.protocol.outbound.common import ErrorBody
from realtime.state.ratelimit import DEFAULT_LIMITS

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "game"
SCHEMAS = "#/components/schemas/"
MAX_ACK = 2**53 - 1


def message_key(event: str, kind: str = "") -> str:
    """A component key for an event's message (keys may not contain ``:``)."""
    base = event.replace(":", ".")
    return f"{base}.{kind}" if kind else base


def request_key(event: str) -> str:
    return message_key(event, "request")


def ack_key(event: str) -> str:
    return message_key(event, "ack")


def error_events() -> list[str]:
    """Every ``<domain>:error`` event the dispatch table can answer with, plus ``error``."""
    return sorted({error_event_for(event) for event in ROUTES} | {"error"})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _channel_message(key: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{CHANNEL}/messages/{key}"}


def _schemas() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(inbound data schema by event, outbound data schema by event, component schemas)."""
    inputs: list[tuple[tuple[str, str], Any, TypeAdapter[Any]]] = [
        (("in", event), "validation", route.payload) for event, route in ROUTES.items()
    ]
    inputs += [
        (("out", event), "validation", TypeAdapter(spec.model)) for event, spec in EVENTS.items()
    ]
    inputs += [(("out", "<error>"), "validation", TypeAdapter(ErrorBody))]
    inputs += [
        (("ack", event), "validation", TypeAdapter(answer.ack_model))
        for event, answer in ANSWERS.items()
    ]
    by_key, top = TypeAdapter.json_schemas(inputs, ref_template=SCHEMAS + "{model}")
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    inbound = {event: by_key[(("in", event), "validation")] for event in ROUTES}
    outbound = {key[1]: schema for (key, _), schema in by_key.items() if key[0] == "out"}
    acks = {key[1]: schema for (key, _), schema in by_key.items() if key[0] == "ack"}
    defs.update(_ack_schemas(acks, defs))
    defs["AckId"] = {"type": "integer", "minimum": 1, "maximum": MAX_ACK}
    defs["AckRefusal"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["ok", "error"],
        "properties": {"ok": {"const": False}, "error": outbound["<error>"]},
    }
    return inbound, outbound, defs


def _ack_schemas(acks: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A successful ack's data: the answer's fields plus ``ok: true``, one schema per model."""
    made: dict[str, Any] = {}
    for schema in acks.values():
        name = schema["$ref"].removeprefix(SCHEMAS)
        ack = copy.deepcopy(defs[name])
        ack["title"] = f"{name} ack"
        ack["properties"] = {"ok": {"const": True}, **ack.get("properties", {})}
        ack["required"] = ["ok", *ack.get("required", [])]
        made[f"{name}Ack"] = ack
    return made


def _frame(event: str, data: Any, *, room: bool = False, request: bool = False) -> dict[str, Any]:
    """The JSON Schema of a whole native frame carrying ``event``."""
    properties: dict[str, Any] = {"event": {"const": event}, "data": data}
    required = ["event", "data"]
    if request:
        properties["ack"] = _ref("AckId")
        required = ["event"]  # no data means {}
    if room:
        properties["room"] = {"type": "string", "description": "The room it was published to."}
        properties["offset"] = {"type": "integer", "minimum": 1, "description": "Per room."}
        properties["epoch"] = {
            "type": "string",
            "description": "The room stream's epoch: changes when its history was lost (§8).",
        }
        required += ["room", "offset", "epoch"]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


def _messages(inbound: dict[str, Any], outbound: dict[str, Any]) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for event, data in inbound.items():
        messages[request_key(event)] = {
            "name": event,
            "title": f"{event} (request)",
            "summary": f"Client request `{event}`.",
            "payload": _frame(event, data, request=True),
            "examples": [
                {"name": "request", "payload": {"event": event, "data": EXAMPLES[event], "ack": 1}}
            ],
        }
        ack_model = ANSWERS[event].ack_model.__name__
        messages[ack_key(event)] = {
            "name": f"{event} ack",
            "title": f"Ack of {event}",
            "summary": "The answer to a request that carried an ack id (no reply event then).",
            "payload": {
                "type": "object",
                "additionalProperties": False,
                "required": ["ack", "data"],
                "properties": {
                    "ack": _ref("AckId"),
                    "data": {"oneOf": [_ref(f"{ack_model}Ack"), _ref("AckRefusal")]},
                },
            },
        }
    for event, spec in EVENTS.items():
        messages[message_key(event)] = {
            "name": event,
            "title": event,
            "summary": spec.summary,
            "payload": _frame(event, outbound[event], room=spec.room_event),
        }
    for event in error_events():
        messages[message_key(event)] = {
            "name": event,
            "title": event,
            "summary": "A refusal of a request that had no ack id"
            if event != "error"
            else EVENTS["error"].summary,
            "payload": _frame(event, outbound["<error>"]),
        }
    return messages


def error_codes(event: str) -> list[str]:
    """Every code a request for ``event`` may be refused with."""
    answer = ANSWERS[event]
    codes = {*answer.errors, *ROUTING_ERRORS}
    if ROUTES[event].bucket is None:
        codes.discard(ErrorCode.RATE_LIMITED)
    if ROUTES[event].needs:  # refused while a dependency it needs is down (§8a)
        codes.add(ErrorCode.SERVICE_UNAVAILABLE)
    return sorted(str(code) for code in codes)


def _receive(event: str) -> dict[str, Any]:
    answer, route = ANSWERS[event], ROUTES[event]
    replies = [ack_key(event), message_key(error_event_for(event))]
    if answer.reply is not None:
        replies.insert(0, message_key(answer.reply))
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{CHANNEL}"},
        "title": event,
        "summary": f"Client → server `{event}`"
        + (f"; answered by `{answer.reply}`." if answer.reply else "; answered in its ack."),
        "tags": [{"name": event.partition(":")[0] if ":" in event else "system"}],
        "messages": [_channel_message(request_key(event))],
        "reply": {
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "messages": [_channel_message(key) for key in replies],
        },
        "x-error-codes": error_codes(event),
    }
    if route.bucket is not None:
        operation["x-rate-limit"] = DEFAULT_LIMITS[route.bucket]
    return operation


def _send(event: str) -> dict[str, Any]:
    spec = EVENTS.get(event)
    operation: dict[str, Any] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CHANNEL}"},
        "title": event,
        "summary": spec.summary if spec else "A refused request (no ack id)",
        "tags": [{"name": event.partition(":")[0] if ":" in event else "system"}],
        "messages": [_channel_message(message_key(event))],
    }
    if spec is not None:
        operation["x-to"] = list(spec.to)
    return operation


def _operations() -> dict[str, Any]:
    operations = {f"receive.{message_key(event)}": _receive(event) for event in ROUTES}
    sent = [event for event, spec in EVENTS.items() if spec.to != (REPLY,)]
    for event in sorted({*sent, *error_events()}):
        operations[f"send.{message_key(event)}"] = _send(event)
    return operations


def _channels(messages: dict[str, Any]) -> dict[str, Any]:
    return {
        CHANNEL: {
            "address": "/ws/game/",
            "title": "Native JSON over WebSocket",
            "description": "One UTF-8 JSON object per frame: `{event, data, ack?}` from the "
            "client; events `{event, data}` (room events add `room`, `offset`, `epoch`) and "
            "acks `{ack, data}` from the server.",
            "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {"token": {"type": "string", "description": "Access JWT"}},
                    },
                    "bindingVersion": "0.1.0",
                }
            },
        },
        "socketio": {
            "address": "/socket.io/",
            "title": "Socket.IO v4 (Engine.IO 4 / Socket.IO 5)",
            "description": SOCKETIO_DESCRIPTION,
        },
    }


def build_document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document, as a JSON-ready dict."""
    inbound, outbound, schemas = _schemas()
    messages = _messages(inbound, outbound)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:aeturnis:realtime",
        "info": {
            "title": "Aeturnis Realtime protocol",
            "version": settings.AETURNIS_VERSION,
            "description": DESCRIPTION,
            "x-frame-errors": sorted(str(code) for code in FRAME_ERRORS),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "`./dev serve`",
                "security": [
                    {"$ref": "#/components/securitySchemes/bearerHeader"},
                    {"$ref": "#/components/securitySchemes/queryToken"},
                ],
            }
        },
        "channels": _channels(messages),
        "operations": _operations(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
            "securitySchemes": {
                "bearerHeader": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <access token>`; also accepted as "
                    "the subprotocol `bearer.<token>` next to `aeturnis.v1`.",
                },
                "queryToken": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "`?token=<access token>`",
                },
            },
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    """``build_document()``, built once per process (the code does not change at run time)."""
    return build_document()
