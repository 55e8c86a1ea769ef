"""Text hygiene shared by the domain apps: what is removed and what counts as visible (#19)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.text import (
    BLANK_SYMBOLS,
    DEFAULT_IGNORABLE,
    clean_line,
    has_visible,
    is_invisible,
    is_visible,
    trim_blank,
)


def test_default_ignorables_are_unicodes_list() -> None:
    """Default_Ignorable_Code_Point of Unicode 14 has 4,174 code points; spot-check its edges."""
    assert len(DEFAULT_IGNORABLE) == 4174
    for ch in "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180f\u200b\u200f\u202a":
        assert ch in DEFAULT_IGNORABLE
    for ch in "\u202e\u2060\u206f\u3164\ufe00\ufe0f\ufeff\uffa0\ufff0\ufff8":
        assert ch in DEFAULT_IGNORABLE
    for code in (0x1BCA0, 0x1BCA3, 0x1D173, 0x1D17A, 0xE0000, 0xE0FFF):
        assert chr(code) in DEFAULT_IGNORABLE
    for ch in "\u00ac\u00ae\u034e\u0350\u180a\u2010\u2029\u202f\u2070\u3163\u3165\ufff9":
        assert ch not in DEFAULT_IGNORABLE


@pytest.mark.parametrize(
    ("ch", "invisible", "visible"),
    [
        ("a", False, True),
        ("\u3164", True, False),  # Hangul filler: Lo, but blank
        ("\uffa0", True, False),
        ("\u2800", False, False),  # Braille blank: So, kept but not content
        ("\u28ff", False, True),
        ("\u200b", True, False),
        ("\x07", True, False),
        ("\ud800", True, False),
        ("\u0300", False, False),  # a mark: kept after a character, not content alone
        ("\ufe0f", False, False),
        ("\u034f", False, False),
        ("\u17b4", False, False),
        ("\U000e0100", False, False),
        ("\U000e0041", True, False),  # tag
        ("\U000e0002", True, False),  # unassigned, in the ignorable block
        (" ", False, False),
        ("\u3000", False, False),
        ("\n", True, False),  # a control; clean_line turns it into a space first
        ("\ue000", False, True),  # private use
        ("\U0001f600", False, True),
        ("\u0378", False, True),  # unassigned elsewhere: drawn as a box
    ],
)
def test_invisible_and_visible_table(ch: str, invisible: bool, visible: bool) -> None:
    assert is_invisible(ch) is invisible
    assert is_visible(ch) is visible
    assert has_visible(ch) is visible


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("", ""),
        ("\u2800 \u0301", ""),
        ("\u0301\u2800 x \u2800", "x"),
        ("x\u0301\u0302 \u2800\u0303", "x\u0301\u0302"),
        ("\u2764\ufe0f\u2800", "\u2764\ufe0f"),
        ("a \u2800 b", "a \u2800 b"),
    ],
)
def test_trim_blank_table(text: str, trimmed: str) -> None:
    assert trim_blank(text) == trimmed


@given(st.text())
def test_clean_line_is_idempotent_nfc_and_empty_exactly_when_nothing_is_visible(raw: str) -> None:
    cleaned = clean_line(raw)
    assert clean_line(cleaned) == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert (cleaned == "") is (not has_visible(cleaned))
    assert not any(is_invisible(ch) for ch in cleaned)
    assert not cleaned or not (cleaned[0].isspace() or cleaned[0] in BLANK_SYMBOLS)


@given(st.text(), st.text())
def test_clean_line_keeps_whatever_is_visible(left: str, right: str) -> None:
    raw = f"{left}x{right}"
    assert has_visible(clean_line(raw))
