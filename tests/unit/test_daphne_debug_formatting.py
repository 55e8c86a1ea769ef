"""autobahn's per-connection debug pretty-printing is done only when a debug line is written."""

from __future__ import annotations

import pprint
from typing import Any

import autobahn.websocket.protocol as autobahn_protocol
import pytest
from twisted.logger import formatEvent

from realtime.transport.daphne import _patch_debug_formatting

OPTIONS = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("autoPingInterval", 20, "x")]


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> Any:
    """autobahn's module, patched for this test only (monkeypatch puts the originals back)."""
    monkeypatch.setattr(autobahn_protocol, "pformat", autobahn_protocol.pformat)
    monkeypatch.setattr(autobahn_protocol.Timings, "__str__", autobahn_protocol.Timings.__str__)
    _patch_debug_formatting(autobahn_protocol)
    return autobahn_protocol


def test_nothing_is_pretty_printed_until_the_line_is_written(
    module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = pprint.pformat
    monkeypatch.setattr(pprint, "pformat", lambda value: calls.append(value) or real(value))
    attrs = module.pformat(OPTIONS)  # what autobahn does at every connection
    assert calls == []
    line = formatEvent({"log_format": "\n{attrs}", "attrs": attrs})
    assert line == "\n" + real(OPTIONS)
    assert calls == [OPTIONS]


def test_str_and_repr_are_the_pretty_printed_text(module: Any) -> None:
    assert str(module.pformat(OPTIONS)) == repr(module.pformat(OPTIONS)) == pprint.pformat(OPTIONS)


def test_timings_still_print_as_text(module: Any) -> None:
    timings = module.Timings()
    timings.track("onOpen")
    assert isinstance(str(timings), str)
    assert "onOpen" in str(timings)
