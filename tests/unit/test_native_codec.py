"""Native codec: frames in, frames out (PROTOCOL.md §1.1)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.base import FrameError, encode_data
from realtime.protocol.native import NATIVE


def test_decodes_event_data_and_ack() -> None:
    inbound = NATIVE.decode('{"event":"chat:message","data":{"m":"hi"},"ack":7}', None)
    assert (inbound.event, inbound.data, inbound.ack) == ("chat:message", {"m": "hi"}, 7)


def test_missing_data_defaults_to_an_empty_object() -> None:
    assert NATIVE.decode('{"event":"ping"}', None).data == {}


def test_binary_utf8_json_is_accepted() -> None:
    assert NATIVE.decode(None, b'{"event":"ping","data":1}').data == 1


@pytest.mark.parametrize("raw", ["", "{", "[]", "null", '{"event":1}', '{"ack":1}'])
def test_unroutable_frames_raise_frame_error(raw: str) -> None:
    with pytest.raises(FrameError):
        NATIVE.decode(raw, None)


def test_unknown_key_error_keeps_the_readable_ack() -> None:
    with pytest.raises(FrameError) as info:
        NATIVE.decode('{"event":"ping","ack":5,"x":1}', None)
    assert info.value.ack == 5


def test_room_event_frame_is_valid_json_with_room_offset_and_epoch() -> None:
    frame = NATIVE.room_event_frame("a:b", encode_data({"k": "é\n"}), "zone:x", 42, "Ep0ch_-1", 7)
    assert orjson.loads(frame) == {
        "event": "a:b",
        "data": {"k": "é\n"},
        "room": "zone:x",
        "offset": 42,
        "epoch": "Ep0ch_-1",
    }


def test_ack_frame_is_valid_json() -> None:
    assert orjson.loads(NATIVE.ack_frame(9, encode_data({"ok": True}))) == {
        "ack": 9,
        "data": {"ok": True},
    }


@given(st.one_of(st.text(), st.binary()))
def test_any_input_is_decoded_or_refused_never_raised_otherwise(raw: str | bytes) -> None:
    try:
        if isinstance(raw, str):
            NATIVE.decode(raw, None)
        else:
            NATIVE.decode(None, raw)
    except FrameError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=10,
)


@given(st.text(min_size=1), json_values, st.text(), st.integers(0, 2**40), st.text())
def test_encoded_events_round_trip(
    event: str, data: object, room: str, offset: int, epoch: str
) -> None:
    frame = NATIVE.room_event_frame(event, encode_data(data), room, offset, epoch, 1)
    assert orjson.loads(frame) == {
        "event": event,
        "data": data,
        "room": room,
        "offset": offset,
        "epoch": epoch,
    }
    assert orjson.loads(NATIVE.event_frame(event, encode_data(data))) == {
        "event": event,
        "data": data,
    }
