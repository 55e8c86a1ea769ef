"""How the pipelined Redis connection writes a command (RESP arrays of bulk strings)."""

from __future__ import annotations

import hiredis
import pytest
import redis

from realtime.core.resp import encode, reply_error


def test_a_command_is_an_array_of_bulk_strings_with_numbers_as_text() -> None:
    assert encode(["SET", b"k\r\n", 42, 1.5, "é"]) == (
        b"*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n42\r\n$3\r\n1.5\r\n$2\r\n\xc3\xa9\r\n"
    )


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
