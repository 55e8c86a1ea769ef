"""The dispatch table and its payload models: no input is ever raised past validation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from realtime.handlers.dispatch import ROUTES, error_event_for
from realtime.state.ratelimit import DEFAULT_LIMITS

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def field_names(event: str) -> list[str]:
    schema = ROUTES[event].payload.json_schema()
    return sorted(schema.get("properties", {}))


def shaped(event: str) -> st.SearchStrategy[Any]:
    """Objects that use the model's own field names with arbitrary values (deeper reach)."""
    names = field_names(event) or ["x"]
    return st.dictionaries(st.sampled_from(names), JSON, max_size=len(names))


EVENTS = sorted(ROUTES)


@pytest.mark.parametrize("event", EVENTS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_json_is_validated_or_refused_with_a_validation_error(event: str, data: Any) -> None:
    value = data.draw(st.one_of(JSON, shaped(event)))
    try:
        ROUTES[event].payload.validate_python(value)
    except ValidationError as exc:
        assert exc.errors(include_url=False)  # refused with a reason per field


def test_every_rate_limited_event_of_the_contract_routes_to_its_own_bucket() -> None:
    for event, route in ROUTES.items():
        if route.bucket is not None:
            assert route.bucket in DEFAULT_LIMITS, event
    for event in DEFAULT_LIMITS:
        if event in ROUTES:
            assert ROUTES[event].bucket == event


@pytest.mark.parametrize(
    ("event", "expected"),
    [("character:move", "character:error"), ("presence:get", "presence:error"), ("ping", "error")],
)
def test_errors_go_to_the_events_domain(event: str, expected: str) -> None:
    assert error_event_for(event) == expected


def test_every_route_has_a_payload_model_with_a_schema() -> None:
    for event, route in ROUTES.items():
        schema = route.payload.json_schema()
        assert isinstance(schema, dict), event
