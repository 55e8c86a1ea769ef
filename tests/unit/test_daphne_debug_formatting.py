"""What autobahn works out for its debug lines at every connection is done only when a debug
line is written (``realtime.transport.daphne._patch_debug_formatting``)."""

from __future__ import annotations

import ast
import inspect
import pprint
from typing import Any

import autobahn.twisted.websocket as autobahn_twisted
import autobahn.util
import autobahn.websocket.protocol as autobahn_protocol
import pytest
from twisted.logger import formatEvent

from realtime.transport.daphne import _DEBUG_ONLY, _patch_debug_formatting

OPTIONS = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("autoPingInterval", 20, "x")]
MODULES = (autobahn_protocol, autobahn_twisted)


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """autobahn's modules patched for this test only (monkeypatch puts the originals back),
    their helpers counting the calls that really format (returned)."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def counting(name: str, helper: Any) -> Any:
        return lambda *args: calls.append((name, args)) or helper(*args)

    for module in MODULES:
        for name in _DEBUG_ONLY:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    monkeypatch.setattr(autobahn_protocol.Timings, "__str__", autobahn_protocol.Timings.__str__)
    _patch_debug_formatting(*MODULES)
    return calls


def test_nothing_is_pretty_printed_until_the_line_is_written(
    patched: list[tuple[str, tuple[Any, ...]]],
) -> None:
    attrs = autobahn_protocol.pformat(OPTIONS)  # what autobahn does at every connection
    name = autobahn_twisted.hltype(test_nothing_is_pretty_printed_until_the_line_is_written)
    assert patched == []
    line = formatEvent({"log_format": "{name}\n{attrs}", "attrs": attrs, "name": name})
    assert line.endswith("\n" + pprint.pformat(OPTIONS))
    assert [called for called, _ in patched] == ["hltype", "pformat"]


def test_highlighted_names_and_values_are_the_same_text_when_written(patched: Any) -> None:
    for module in MODULES:
        func = module.hltype(test_highlighted_names_and_values_are_the_same_text_when_written)
        value = module.hlval(1234)
        line = formatEvent({"log_format": "{func} {value}", "func": func, "value": value})
        assert line == (
            autobahn.util.hltype(test_highlighted_names_and_values_are_the_same_text_when_written)
            + " "
            + autobahn.util.hlval(1234)
        )
        assert str(value) == repr(value) == autobahn.util.hlval(1234)


def test_timings_still_print_as_text(patched: Any) -> None:
    timings = autobahn_protocol.Timings()
    timings.track("onOpen")
    assert isinstance(str(timings), str)
    assert "onOpen" in str(timings)


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_autobahn_calls_these_helpers_only_for_its_log_lines(module: Any) -> None:
    """The patch's premise, checked on the installed autobahn's source: a new use of one of
    them outside a ``self.log`` call (which would need a ``str``) fails here first. The one
    exception is ``Timings.__str__``, which the patch gives the real ``pformat``."""
    tree = ast.parse(inspect.getsource(module))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    outside = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in _DEBUG_ONLY:
            continue
        parent = parents.get(node)
        while parent is not None and not _is_log_call(parent):
            if _is_str_of(parent, parents.get(parent), "Timings"):
                break
            parent = parents.get(parent)
        if parent is None:
            outside.append(node.lineno)
    assert outside == []


def _is_log_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "log"
    )


def _is_str_of(node: ast.AST, parent: ast.AST | None, class_name: str) -> bool:
    return (
        isinstance(node, ast.FunctionDef)
        and node.name == "__str__"
        and isinstance(parent, ast.ClassDef)
        and parent.name == class_name
    )
