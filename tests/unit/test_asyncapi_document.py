"""The AsyncAPI document and the code agree: the dispatch table, the payload models, the
outbound catalog and the error codes (a change to any of them without the other fails here)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft7Validator
from pydantic import TypeAdapter, ValidationError

from realtime.core.errors import ErrorCode
from realtime.handlers.dispatch import ROUTES, error_event_for
from realtime.ops.asyncapi import (
    ack_key,
    build_document,
    error_codes,
    message_key,
    request_key,
)
from realtime.ops.asyncapi_text import EXAMPLES
from realtime.protocol.outbound.catalog import ANSWERS, EVENTS, REPLY

DOC = build_document()
KEY = re.compile(r"^[A-Za-z0-9._-]+$")


def resolve(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every ``$ref`` (into ``root``) inlined and titles dropped."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/") and ref not in seen, ref
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            return resolve(target, root, (*seen, ref))
        return {k: resolve(v, root, seen) for k, v in node.items() if k not in ("title", "$defs")}
    if isinstance(node, list):
        return [resolve(v, root, seen) for v in node]
    return node


def route_schema(event: str) -> Any:
    schema = ROUTES[event].payload.json_schema()
    return resolve(schema, schema)


def receive_operations() -> dict[str, Any]:
    return {op["title"]: op for op in DOC["operations"].values() if op["action"] == "receive"}


def test_every_route_is_a_receive_operation_with_its_payload_schema() -> None:
    operations = receive_operations()
    for event in ROUTES:
        message = DOC["components"]["messages"][request_key(event)]
        assert message["name"] == event
        frame = message["payload"]
        assert frame["properties"]["event"] == {"const": event}
        assert resolve(frame["properties"]["data"], DOC) == route_schema(event), event
        assert operations[event]["messages"] == [
            {"$ref": f"#/channels/game/messages/{request_key(event)}"}
        ]


def test_nothing_else_is_claimed_client_to_server() -> None:
    assert set(receive_operations()) == set(ROUTES)
    requests = {
        m["name"] for k, m in DOC["components"]["messages"].items() if k.endswith(".request")
    }
    assert requests == set(ROUTES)
    assert set(ANSWERS) == set(ROUTES)


def test_every_request_is_answered_by_its_reply_its_ack_and_its_domain_error() -> None:
    operations = receive_operations()
    for event, answer in ANSWERS.items():
        replies = [ref["$ref"].rsplit("/", 1)[1] for ref in operations[event]["reply"]["messages"]]
        expected = [ack_key(event), message_key(error_event_for(event))]
        if answer.reply is not None:
            assert EVENTS[answer.reply].to == (REPLY,) or answer.reply in EVENTS
            expected.insert(0, message_key(answer.reply))
        assert replies == expected
        assert operations[event]["x-error-codes"] == error_codes(event)
        if ROUTES[event].bucket is not None:
            assert operations[event]["x-rate-limit"]


def test_every_server_event_has_a_message_with_its_models_schema() -> None:
    messages = DOC["components"]["messages"]
    for event, spec in EVENTS.items():
        frame = messages[message_key(event)]["payload"]
        schema = TypeAdapter(spec.model).json_schema()
        assert resolve(frame["properties"]["data"], DOC) == resolve(schema, schema), event
        assert ("room" in frame["required"]) == spec.room_event, event
        if spec.room_event:
            assert {"room", "offset", "epoch"} <= set(frame["properties"]), event


def test_error_codes_are_the_error_code_enum() -> None:
    assert DOC["components"]["schemas"]["ErrorCode"]["enum"] == [c.value for c in ErrorCode]
    for op in receive_operations().values():
        assert set(op["x-error-codes"]) <= {c.value for c in ErrorCode}


@pytest.mark.parametrize("event", sorted(ROUTES))
def test_each_example_is_accepted_by_its_route_and_by_the_document(event: str) -> None:
    data = EXAMPLES[event]
    ROUTES[event].payload.validate_python(data)
    message = DOC["components"]["messages"][request_key(event)]
    (example,) = message["examples"]
    Draft7Validator(
        {**DOC, "$ref": f"#/components/messages/{request_key(event)}/payload"}
    ).validate(example["payload"])


def test_a_payload_the_route_refuses_is_refused_by_the_document_too() -> None:
    bad = {"event": "chat:message", "data": {"channel": "zone", "message": "hi", "extra": 1}}
    with pytest.raises(ValidationError):
        ROUTES["chat:message"].payload.validate_python(bad["data"])
    validator = Draft7Validator(
        {**DOC, "$ref": "#/components/messages/chat.message.request/payload"}
    )
    assert not validator.is_valid(bad)


def test_ids_are_documented_as_strings_of_digits_as_the_wire_carries_them() -> None:
    data = resolve(DOC["components"]["messages"]["character.select.request"]["payload"], DOC)
    id_schema = data["properties"]["data"]["properties"]["characterId"]
    assert {"type": "string", "pattern": "^[0-9]{1,19}$"} in id_schema["anyOf"]


def test_every_reference_resolves_and_every_key_is_well_formed() -> None:
    resolve(DOC, DOC)
    for section in ("schemas", "messages"):
        assert all(KEY.match(k) for k in DOC["components"][section]), section
    assert all(KEY.match(k) for k in DOC["operations"])
