"""How the pipelined Redis connection writes a command (RESP arrays of bulk strings)."""

from __future__ import annotations

from typing import Any

import hiredis
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from realtime.core.resp import _bulk_strings, encode, reply_error


def test_a_command_is_an_array_of_bulk_strings_with_numbers_as_text() -> None:
    assert encode(["SET", b"k\r\n", 42, 1.5, "é"]) == (
        b"*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n42\r\n$3\r\n1.5\r\n$2\r\n\xc3\xa9\r\n"
    )


ARGUMENTS = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=20),
    st.binary(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)


@given(st.lists(ARGUMENTS, max_size=12))
def test_text_and_numbers_built_as_one_string_are_the_same_bytes(args: list[Any]) -> None:
    assert encode(args) == b"*%d\r\n" % len(args) + _bulk_strings(args)


def test_an_empty_argument_is_an_empty_bulk_string() -> None:
    assert encode(["GET", ""]) == b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}])
def test_a_value_redis_has_no_text_for_is_refused_before_anything_is_sent(value: object) -> None:
    with pytest.raises(redis.exceptions.DataError):
        encode(["SET", "k", value])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("NOSCRIPT No matching script.", redis.exceptions.NoScriptError),
        ("READONLY You can't write against a read only replica.", redis.exceptions.ReadOnlyError),
        ("LOADING Redis is loading the dataset in memory", redis.exceptions.BusyLoadingError),
        (
            "WRONGTYPE Operation against a key holding the wrong kind",
            redis.exceptions.ResponseError,
        ),
    ],
)
def test_error_replies_become_redis_py_exceptions(message: str, kind: type[Exception]) -> None:
    error = reply_error(hiredis.ReplyError(message))
    assert type(error) is kind
    assert str(error) == message
