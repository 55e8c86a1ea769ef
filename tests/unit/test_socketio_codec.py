"""Socket.IO codec: Engine.IO v4 / Socket.IO v5 packets in, frames out (PROTOCOL.md §1.2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.base import FrameError, Inbound, encode_data
from realtime.protocol.engineio import (
    EIO_CLOSE,
    EIO_MESSAGE,
    EIO_NOOP,
    EIO_OPEN,
    EIO_PING,
    EIO_PONG,
    EIO_UPGRADE,
    decode_engine,
    decode_payload,
    encode_payload,
    open_packet,
)
from realtime.protocol.socketio import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    SOCKETIO,
    SioPacket,
    attach_binary,
    connect_error_packet,
    connect_packet,
    decode_socketio,
    encode_socketio,
)

# --- Engine.IO v4 -------------------------------------------------------------------------


def test_engine_packet_type_characters_follow_engine_io_v4() -> None:
    assert (EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP) == (
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", ("2", "")),  # heartbeat ping from the server
        ("3", ("3", "")),  # pong from the client
        ("2probe", ("2", "probe")),  # upgrade probe
        ("3probe", ("3", "probe")),
        ("5", ("5", "")),  # upgrade
        ("6", ("6", "")),  # noop
        ("1", ("1", "")),  # close
        ("4hello", ("4", "hello")),  # message
        ('42["foo"]', ("4", '2["foo"]')),
    ],
)
def test_engine_packets_from_the_protocol_document_split_into_type_and_payload(
    text: str, expected: tuple[str, str]
) -> None:
    assert decode_engine(text) == expected


@pytest.mark.parametrize("text", ["", "7", "9hello", "x", "b4", " 4hello", "\u0664hello"])
def test_empty_or_unknown_engine_packet_types_are_refused(text: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_engine(text)
    assert "Engine.IO packet" in info.value.message


def test_open_packet_is_the_engine_io_handshake() -> None:
    frame = open_packet(
        "lv_VI97HAXpY6yYWAAAC", ping_interval_ms=25000, ping_timeout_ms=60000, max_payload=65536
    )
    assert frame == (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":60000,"maxPayload":65536}'
    )
    kind, payload = decode_engine(frame)
    assert kind == EIO_OPEN
    assert orjson.loads(payload) == {
        "sid": "lv_VI97HAXpY6yYWAAAC",
        "upgrades": [],
        "pingInterval": 25000,
        "pingTimeout": 60000,
        "maxPayload": 65536,
    }


def test_open_packet_of_a_polling_handshake_offers_the_websocket_upgrade() -> None:
    frame = open_packet(
        "n1.abc", ping_interval_ms=1, ping_timeout_ms=2, max_payload=3, upgrades=["websocket"]
    )
    assert orjson.loads(frame[1:])["upgrades"] == ["websocket"]


def test_polling_payloads_split_on_the_record_separator_binary_as_base64() -> None:
    body = b'42["a"]\x1e451-["b",{"_placeholder":true,"num":0}]\x1ebAQIDBA==\x1e3'
    assert decode_payload(body) == [
        '42["a"]',
        '451-["b",{"_placeholder":true,"num":0}]',
        b"\x01\x02\x03\x04",
        "3",
    ]
    assert encode_payload(['42["a"]', "2", "1"]) == b'42["a"]\x1e2\x1e1'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Empty payload"),
        (b"42\x1e", "Empty Engine.IO packet"),
        (b"9x", "Unknown Engine.IO packet type"),
        (b"b@@@", "base64"),
        (b"\xff", "UTF-8"),
    ],
)
def test_bad_polling_payloads_are_refused_whole(body: bytes, message: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_payload(body)
    assert message in info.value.message


@given(st.binary(max_size=200))
def test_any_polling_body_is_decoded_or_refused(body: bytes) -> None:
    try:
        packets = decode_payload(body)
    except FrameError as exc:
        assert exc.message
    else:
        assert packets and all(isinstance(p, bytes) or p[0] in "0123456" for p in packets)


def test_open_packet_escapes_the_sid_as_json() -> None:
    frame = open_packet('a"b\\', ping_interval_ms=1, ping_timeout_ms=2, max_payload=3)
    assert orjson.loads(frame[1:])["sid"] == 'a"b\\'


# --- Socket.IO v5: examples from the protocol document ------------------------------------


def test_socket_io_packet_type_numbers_follow_socket_io_v5() -> None:
    assert (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK) == (
        0,
        1,
        2,
        3,
        4,
        5,
        6,
    )


PROTOCOL_EXAMPLES = [
    ("0", SioPacket(CONNECT)),
    ('0{"sid":"wZX3oN0bSVIhsaknAAAI"}', SioPacket(CONNECT, data={"sid": "wZX3oN0bSVIhsaknAAAI"})),
    ("0/admin,", SioPacket(CONNECT, "/admin")),
    (
        '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
        SioPacket(CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
    ),
    ('0/admin,{"token":"123"}', SioPacket(CONNECT, "/admin", {"token": "123"})),
    ('0{"token":"123"}', SioPacket(CONNECT, data={"token": "123"})),
    ('4{"message":"Not authorized"}', SioPacket(CONNECT_ERROR, data={"message": "Not authorized"})),
    ('2["foo"]', SioPacket(EVENT, data=["foo"])),
    ('2/admin,["bar"]', SioPacket(EVENT, "/admin", ["bar"])),
    (
        '51-["baz",{"_placeholder":true,"num":0}]',
        SioPacket(BINARY_EVENT, data=["baz", {"_placeholder": True, "num": 0}], attachments=1),
    ),
    (
        '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        SioPacket(
            BINARY_EVENT,
            "/admin",
            ["baz", {"_placeholder": True, "num": 0}, {"_placeholder": True, "num": 1}],
            attachments=2,
        ),
    ),
    ('212["foo"]', SioPacket(EVENT, data=["foo"], id=12)),
    ("312[]", SioPacket(ACK, data=[], id=12)),
    ('2/admin,13["foo"]', SioPacket(EVENT, "/admin", ["foo"], id=13)),
    ('3/admin,13["bar"]', SioPacket(ACK, "/admin", ["bar"], id=13)),
    (
        '51-14["foo",{"_placeholder":true,"num":0}]',
        SioPacket(
            BINARY_EVENT, data=["foo", {"_placeholder": True, "num": 0}], id=14, attachments=1
        ),
    ),
    ('314["bar"]', SioPacket(ACK, data=["bar"], id=14)),
    ('215["foo"]', SioPacket(EVENT, data=["foo"], id=15)),
    (
        '61-15["bar",{"_placeholder":true,"num":0}]',
        SioPacket(BINARY_ACK, data=["bar", {"_placeholder": True, "num": 0}], id=15, attachments=1),
    ),
    ("1", SioPacket(DISCONNECT)),
    ("1/admin,", SioPacket(DISCONNECT, "/admin")),
    ('2["hey","Jude"]', SioPacket(EVENT, data=["hey", "Jude"])),
    ('2/admin,1["tellme"]', SioPacket(EVENT, "/admin", ["tellme"], id=1)),
    (
        '61-/admin,1[{"_placeholder":true,"num":0}]',
        SioPacket(BINARY_ACK, "/admin", [{"_placeholder": True, "num": 0}], id=1, attachments=1),
    ),
]


@pytest.mark.parametrize(("encoded", "packet"), PROTOCOL_EXAMPLES)
def test_protocol_document_examples_decode(encoded: str, packet: SioPacket) -> None:
    assert decode_socketio(encoded) == packet


@pytest.mark.parametrize(("encoded", "packet"), PROTOCOL_EXAMPLES)
def test_protocol_document_examples_encode(encoded: str, packet: SioPacket) -> None:
    assert encode_socketio(packet) == encoded


def test_ack_id_zero_is_a_real_id() -> None:
    assert decode_socketio('20["ping"]') == SioPacket(EVENT, data=["ping"], id=0)
    assert encode_socketio(SioPacket(ACK, data=[], id=0)) == "30[]"


def test_ack_id_up_to_two_to_the_53_is_accepted() -> None:
    assert decode_socketio(f'2{2**53}["a"]').id == 2**53


def test_leading_zeros_in_an_ack_id_are_read_as_a_number() -> None:
    assert decode_socketio('2007["a"]').id == 7


@pytest.mark.parametrize(
    ("encoded", "packet"),
    [
        ("0/admin", SioPacket(CONNECT, "/admin")),
        ("1/admin", SioPacket(DISCONNECT, "/admin")),
        ('0/admin{"token":"abc"}', SioPacket(CONNECT, '/admin{"token":"abc"}')),
    ],
)
def test_a_namespace_at_the_end_needs_no_comma(encoded: str, packet: SioPacket) -> None:
    assert decode_socketio(encoded) == packet


def test_namespace_may_hold_digits_and_is_followed_by_the_ack_id() -> None:
    assert decode_socketio('2/room-2,3["a"]') == SioPacket(EVENT, "/room-2", ["a"], id=3)


# --- malformed Socket.IO packets ----------------------------------------------------------

MALFORMED = [
    # unknown type
    ("", "Empty Socket.IO packet"),
    ("7", "Unknown Socket.IO packet type"),
    ('x["a"]', "Unknown Socket.IO packet type"),
    ('\u0662["a"]', "Unknown Socket.IO packet type"),  # Arabic-Indic digit two
    # bad attachments
    ('5["a"]', "attachment count"),
    ('5-["a"]', "attachment count"),
    ('51["a"]', "attachment count"),
    ('5x-["a"]', "attachment count"),
    ("61", "attachment count"),
    ('5\u0661-["a"]', "attachment count"),
    (f'5{2**53 + 1}-["a"]', "Attachment count is too large"),
    # a namespace without a comma runs to the end: nothing may follow it
    ('2/admin["a"]', "EVENT payload must be a non-empty JSON array"),
    # non-numeric or huge ack id
    ('2\u0663["a"]', "not valid JSON"),  # a Unicode digit is not an ack id
    ('2/admin,x1["a"]', "not valid JSON"),
    ('2-1["a"]', "trailing"),
    (f'2{2**53 + 1}["a"]', "Ack id is too large"),
    ("2" + "9" * 5000 + '["a"]', "Ack id is too large"),
    ("3" + "1" * 17 + "[]", "Ack id is too large"),
    # invalid JSON
    ('2["a"', "not valid JSON"),
    ("0{", "not valid JSON"),
    ("2[\"a\",'b']", "not valid JSON"),
    ("0\ud800", "not valid JSON"),
    # EVENT payload
    ("2", "EVENT payload must be a non-empty JSON array"),
    ("21", "EVENT payload must be a non-empty JSON array"),
    ("2[]", "EVENT payload must be a non-empty JSON array"),
    ("2{}", "EVENT payload must be a non-empty JSON array"),
    ('2"foo"', "EVENT payload must be a non-empty JSON array"),
    ("2[1]", "EVENT payload must be a non-empty JSON array"),
    ("2[null]", "EVENT payload must be a non-empty JSON array"),
    ('2[["a"]]', "EVENT payload must be a non-empty JSON array"),
    ("51-[]", "EVENT payload must be a non-empty JSON array"),
    # ACK payload
    ("31", "ACK payload must be a JSON array"),
    ("31{}", "ACK payload must be a JSON array"),
    ('31"bar"', "ACK payload must be a JSON array"),
    ("3[]", "ACK packet must carry an ack id"),
    ("61-{}", "ACK payload must be a JSON array"),
    # CONNECT payload
    ("0[]", "CONNECT payload must be a JSON object"),
    ('0"token"', "CONNECT payload must be a JSON object"),
    ("0null", "CONNECT payload must be a JSON object"),
    ("0/admin,[1]", "CONNECT payload must be a JSON object"),
    ("01", "Only EVENT and ACK packets may carry an ack id"),
    # CONNECT_ERROR and DISCONNECT payloads
    ("4", "CONNECT_ERROR payload must be a JSON object"),
    ('4"Not authorized"', "CONNECT_ERROR payload must be a JSON object"),
    ("1{}", "DISCONNECT packet must not carry a payload"),
    ("1x", "DISCONNECT packet must not carry a payload"),
    ("1/admin,[]", "DISCONNECT packet must not carry a payload"),
    # trailing garbage
    ('2["a"]x', "trailing"),
    ('2["a"]["b"]', "trailing"),
    ("0{}{}", "trailing"),
    ('312[]"x"', "trailing"),
]


@pytest.mark.parametrize(("encoded", "message"), MALFORMED)
def test_malformed_socket_io_packets_raise_frame_error_with_a_clear_message(
    encoded: str, message: str
) -> None:
    with pytest.raises(FrameError) as info:
        decode_socketio(encoded)
    assert message.lower() in info.value.message.lower()


@pytest.mark.parametrize(("encoded", "message"), MALFORMED)
def test_codec_refuses_every_malformed_socket_io_packet(encoded: str, message: str) -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode(EIO_MESSAGE + encoded, None)
    assert message.lower() in info.value.message.lower()


# --- encode / decode round trips ----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=4)
namespaces = st.just("/") | st.text().filter(lambda s: "," not in s).map(lambda s: "/" + s)
ack_ids = st.integers(0, 2**53)
event_payloads = st.builds(lambda name, args: [name, *args], st.text(), st.lists(json_values))


@st.composite
def packets(draw: st.DrawFn) -> SioPacket:
    kind = draw(st.integers(0, 6))
    namespace = draw(namespaces)
    attachments = draw(st.integers(0, 2**53)) if kind in (BINARY_EVENT, BINARY_ACK) else 0
    data: Any
    ack_id: int | None = None
    if kind == CONNECT:
        data = draw(st.none() | json_objects)
    elif kind == DISCONNECT:
        data = None
    elif kind == CONNECT_ERROR:
        data = draw(json_objects)
    elif kind in (EVENT, BINARY_EVENT):
        data = draw(event_payloads)
        ack_id = draw(st.none() | ack_ids)
    else:
        data = draw(st.lists(json_values))
        ack_id = draw(ack_ids)
    return SioPacket(kind, namespace, data, ack_id, attachments)


@given(packets())
def test_encoded_packets_decode_to_the_same_packet(packet: SioPacket) -> None:
    assert decode_socketio(encode_socketio(packet)) == packet


@given(packets())
def test_the_default_namespace_is_omitted_and_others_end_with_a_comma(packet: SioPacket) -> None:
    encoded = encode_socketio(packet)
    head = (
        encoded[1:].split("-", 1)[1] if packet.type in (BINARY_EVENT, BINARY_ACK) else encoded[1:]
    )
    if packet.namespace == "/":
        assert not head.startswith("/")
    else:
        assert head.startswith(packet.namespace + ",")


@pytest.mark.parametrize(
    "packet",
    [
        SioPacket(7),
        SioPacket(-1),
        SioPacket(CONNECT, "admin"),
        SioPacket(CONNECT, "/a,b"),
        SioPacket(EVENT, data=["a"], id=-1),
        SioPacket(EVENT, data=["a"], id=2**53 + 1),
        SioPacket(EVENT, data=[]),
        SioPacket(ACK, data=[]),
        SioPacket(DISCONNECT, data={}),
        SioPacket(BINARY_EVENT, data=["a"], attachments=-1),
    ],
)
def test_encoding_a_packet_that_would_not_decode_raises_value_error(packet: SioPacket) -> None:
    with pytest.raises(ValueError):
        encode_socketio(packet)


# --- SocketIOCodec.decode -----------------------------------------------------------------


def test_event_with_ack_id_becomes_an_inbound_with_data_and_ack() -> None:
    inbound = SOCKETIO.decode('4212["chat:message",{"m":"hi"}]', None)
    assert inbound == Inbound(event="chat:message", data={"m": "hi"}, ack=12)


def test_event_without_ack_id_has_no_ack() -> None:
    assert SOCKETIO.decode('42["chat:message",{"m":"hi"}]', None) == Inbound(
        "chat:message", {"m": "hi"}, None
    )


def test_ack_id_zero_reaches_the_inbound() -> None:
    assert SOCKETIO.decode('420["ping",{}]', None).ack == 0


def test_event_without_arguments_gets_an_empty_object() -> None:
    assert SOCKETIO.decode('42["ping"]', None).data == {}


def test_an_explicit_null_argument_is_kept() -> None:
    assert SOCKETIO.decode('42["ping",null]', None).data is None


def test_a_scalar_argument_is_passed_through() -> None:
    assert SOCKETIO.decode('427["echo","text"]', None) == Inbound("echo", "text", 7)


def test_more_than_one_argument_is_refused_and_keeps_the_ack() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode('427["chat:message",{},{}]', None)
    assert info.value.message == "Only one argument is supported per event"
    assert info.value.ack == 7


def test_an_empty_event_name_is_refused_and_keeps_the_ack() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode('423["",{}]', None)
    assert "non-empty" in info.value.message
    assert info.value.ack == 3


def test_binary_frames_are_refused() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode(None, b"\x01\x02\x03\x04")
    assert info.value.message == "Binary packets are not supported"


def test_binary_frames_are_refused_even_with_text() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode('42["ping"]', b"")
    assert info.value.message == "Binary packets are not supported"


@pytest.mark.parametrize(
    "frame",
    ['451-["upload",{"_placeholder":true,"num":0}]', '461-3[{"_placeholder":true,"num":0}]'],
)
def test_binary_socket_io_packets_are_refused(frame: str) -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode(frame, None)
    assert info.value.message == "Binary packets are not supported"


def test_binary_event_refusal_keeps_the_ack() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode('451-9["upload",{"_placeholder":true,"num":0}]', None)
    assert info.value.ack == 9


def test_a_frame_that_is_neither_text_nor_binary_is_refused() -> None:
    with pytest.raises(FrameError):
        SOCKETIO.decode(None, None)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("", "Empty Engine.IO packet"),
        ("2", "Engine.IO message packet"),
        ("3", "Engine.IO message packet"),
        ("2probe", "Engine.IO message packet"),
        ("5", "Engine.IO message packet"),
        ("1", "Engine.IO message packet"),
        ('0{"sid":"x"}', "Engine.IO message packet"),
        ('2["ping"]', "Engine.IO message packet"),
        ("4", "Empty Socket.IO packet"),
        ("40", "EVENT packet"),
        ('40{"token":"abc"}', "EVENT packet"),
        ("41", "EVENT packet"),
        ("431[]", "EVENT packet"),
        ('44{"message":"x"}', "EVENT packet"),
        ('42/admin,["ping"]', "Namespace '/admin' is not served"),
        ('42/,["ping"]x', "trailing"),
    ],
)
def test_anything_but_an_event_on_the_default_namespace_is_refused(
    frame: str, message: str
) -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode(frame, None)
    assert message.lower() in info.value.message.lower()


def test_other_namespace_refusal_keeps_the_ack() -> None:
    with pytest.raises(FrameError) as info:
        SOCKETIO.decode('42/admin,5["ping"]', None)
    assert info.value.ack == 5


# --- outbound frames ----------------------------------------------------------------------


def test_event_frame_is_an_engine_message_with_a_socket_io_event() -> None:
    frame = SOCKETIO.event_frame("chat:message", encode_data({"m": "hi"}))
    assert frame == '42["chat:message",{"m":"hi"}]'
    assert orjson.loads(frame[2:]) == ["chat:message", {"m": "hi"}]


def test_event_frame_splices_the_encoded_data_verbatim() -> None:
    assert SOCKETIO.event_frame("x", '{"b":1,  "a":2}') == '42["x",{"b":1,  "a":2}]'


def test_room_event_frame_adds_room_offset_and_epoch_then_the_recovery_offset() -> None:
    frame = SOCKETIO.room_event_frame("a:b", encode_data({"k": "é\n"}), "zone:x", 42, "E", 7)
    assert frame == '42["a:b",{"k":"é\\n"},{"room":"zone:x","offset":42,"epoch":"E"},"7"]'
    # The last argument is a string: socket.io-client keeps it as the last offset it saw.
    assert orjson.loads(frame[2:]) == [
        "a:b",
        {"k": "é\n"},
        {"room": "zone:x", "offset": 42, "epoch": "E"},
        "7",
    ]


def test_resumed_event_frame_has_no_recovery_offset() -> None:
    frame = SOCKETIO.resumed_event_frame("a:b", encode_data({"k": 1}), "zone:x", 42, "E")
    assert frame == '42["a:b",{"k":1},{"room":"zone:x","offset":42,"epoch":"E"}]'


def test_connect_packet_carries_the_recovery_pid() -> None:
    frame = connect_packet("sid1", pid="pid1")
    assert orjson.loads(frame[2:]) == {"sid": "sid1", "pid": "pid1"}


def test_ack_frame_carries_the_id_and_one_argument() -> None:
    frame = SOCKETIO.ack_frame(9, encode_data({"ok": True}))
    assert frame == '439[{"ok":true}]'
    assert decode_socketio(frame[1:]) == SioPacket(ACK, data=[{"ok": True}], id=9)


def test_ack_frame_for_ack_id_zero() -> None:
    assert SOCKETIO.ack_frame(0, "null") == "430[null]"


def test_farewell_is_a_socket_io_disconnect_on_the_default_namespace() -> None:
    assert SOCKETIO.farewell_frames() == ["41"]
    assert decode_socketio(SOCKETIO.farewell_frames()[0][1:]) == SioPacket(DISCONNECT)


def test_codec_name_is_socketio() -> None:
    assert SOCKETIO.name == "socketio"


def test_connect_packet_grants_the_default_namespace_with_a_sid() -> None:
    frame = connect_packet("wZX3oN0bSVIhsaknAAAI")
    assert frame == '40{"sid":"wZX3oN0bSVIhsaknAAAI"}'
    assert orjson.loads(frame[2:]) == {"sid": "wZX3oN0bSVIhsaknAAAI"}


def test_connect_packet_names_another_namespace() -> None:
    frame = connect_packet("-G5j-67EZFp-q59rADQM", "/admin")
    assert frame == '40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}'
    assert decode_socketio(frame[1:]) == SioPacket(
        CONNECT, "/admin", {"sid": "-G5j-67EZFp-q59rADQM"}
    )


def test_connect_error_packet_carries_message_and_code() -> None:
    frame = connect_error_packet("Token expired", "TOKEN_EXPIRED")
    assert frame == '44{"message":"Token expired","data":{"code":"TOKEN_EXPIRED"}}'
    assert orjson.loads(frame[2:]) == {
        "message": "Token expired",
        "data": {"code": "TOKEN_EXPIRED"},
    }


def test_connect_error_packet_without_code_omits_data() -> None:
    frame = connect_error_packet("Not authorized", None)
    assert frame == '44{"message":"Not authorized"}'
    assert orjson.loads(frame[2:]) == {"message": "Not authorized"}


def test_connect_error_packet_names_another_namespace() -> None:
    frame = connect_error_packet("Not authorized", "AUTH_REQUIRED", "/admin")
    assert frame == '44/admin,{"message":"Not authorized","data":{"code":"AUTH_REQUIRED"}}'
    assert decode_socketio(frame[1:]) == SioPacket(
        CONNECT_ERROR, "/admin", {"message": "Not authorized", "data": {"code": "AUTH_REQUIRED"}}
    )


@given(st.text(), json_values, st.text(), st.integers(0, 2**53), st.integers(0, 2**53))
def test_outbound_frames_decode_back_to_what_was_sent(
    event: str, data: Any, room: str, offset: int, ack: int
) -> None:
    encoded = encode_data(data)
    assert decode_socketio(SOCKETIO.event_frame(event, encoded)[1:]) == SioPacket(
        EVENT, data=[event, data]
    )
    assert decode_socketio(SOCKETIO.room_event_frame(event, encoded, room, offset, "E", 1)[1:]) == (
        SioPacket(EVENT, data=[event, data, {"room": room, "offset": offset, "epoch": "E"}, "1"])
    )
    assert decode_socketio(SOCKETIO.ack_frame(ack, encoded)[1:]) == SioPacket(
        ACK, data=[data], id=ack
    )


@given(st.text(min_size=1), json_values, st.none() | st.integers(0, 2**53))
def test_client_events_decode_to_inbound(event: str, data: Any, ack: int | None) -> None:
    frame = "42" + ("" if ack is None else str(ack)) + orjson.dumps([event, data]).decode()
    assert SOCKETIO.decode(frame, None) == Inbound(event, data, ack)


# --- fuzzing: FrameError or a result, never anything else ---------------------------------

# Characters that steer random input into every branch of the packet grammar.
grammar_text = st.text(alphabet='0123456789-/,[]{}":nul tre\\\u0663\ud800x', max_size=40)
prefixed_text = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["", "4", "40", "41", "42", "43", "44", "45", "46", "2", "0"]),
    grammar_text,
)
any_text = st.text() | st.text(alphabet=st.characters(exclude_categories=())) | prefixed_text


@given(any_text)
def test_decode_engine_returns_or_raises_frame_error(text: str) -> None:
    try:
        kind, payload = decode_engine(text)
    except FrameError as exc:
        assert exc.message
    else:
        assert kind in "0123456" and len(kind) == 1
        assert kind + payload == text


@given(any_text)
def test_decode_socketio_returns_or_raises_frame_error(text: str) -> None:
    try:
        packet = decode_socketio(text)
    except FrameError as exc:
        assert exc.message
    else:
        assert packet.type in range(7)
        assert decode_socketio(encode_socketio(packet)) == packet


@given(any_text)
def test_codec_decode_of_any_text_returns_or_raises_frame_error(text: str) -> None:
    try:
        inbound = SOCKETIO.decode(text, None)
    except FrameError as exc:
        assert exc.message
    else:
        assert isinstance(inbound.event, str) and inbound.event
        assert inbound.ack is None or 0 <= inbound.ack <= 2**53


@given(st.binary(), st.none() | any_text)
def test_codec_decode_of_any_bytes_raises_frame_error(data: bytes, text: str | None) -> None:
    with pytest.raises(FrameError):
        SOCKETIO.decode(text, data)


# --- binary attachments -----------------------------------------------------------------


def test_placeholders_are_replaced_wherever_they_sit_and_their_paths_reported() -> None:
    data = [
        "upload",
        {"files": [{"_placeholder": True, "num": 1}, {"x": {"_placeholder": True, "num": 0}}]},
    ]
    rebuilt, paths = attach_binary(data, [b"a", b"b"])
    assert rebuilt == ["upload", {"files": [b"b", {"x": b"a"}]}]
    assert sorted(paths, key=str) == sorted([(1, "files", 0), (1, "files", 1, "x")], key=str)


def test_a_placeholder_may_be_the_whole_data() -> None:
    assert attach_binary({"_placeholder": True, "num": 0}, [b"z"]) == (b"z", [()])


@pytest.mark.parametrize(
    ("data", "attachments", "message"),
    [
        (["a", {"_placeholder": True, "num": 1}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True, "num": -1}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True, "num": "0"}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True, "num": 0.0}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True, "num": True}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True}], [b"x"], "Placeholder"),
        (["a", {"_placeholder": True, "num": 0}], [b"x", b"y"], "Attachment 1 is not referenced"),
        (["a", {"_placeholder": "true", "num": 0}], [b"x"], "Attachment 0 is not referenced"),
    ],
)
def test_illegal_placeholders_and_unused_attachments_are_refused(
    data: Any, attachments: list[bytes], message: str
) -> None:
    with pytest.raises(FrameError) as info:
        attach_binary(data, attachments)
    assert message in info.value.message


def test_placeholders_nested_deeper_than_the_recursion_limit_are_found() -> None:
    data: Any = {"_placeholder": True, "num": 0}
    for _ in range(5000):
        data = [data]
    _, paths = attach_binary(["deep", data], [b"!"])
    assert len(paths) == 1 and len(paths[0]) == 5001
