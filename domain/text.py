"""Text hygiene shared by the domain apps: what is removed, and what counts as visible.

One rule decides what "shows as nothing" means for chat messages and whispers
(``chat.rules.clean_text``), status messages (``characters.rules.clean_status_message``) and
names (``characters.rules.name_problem``), so a text that is blank in one place is blank in all
(issue #19: twenty U+3164 HANGUL FILLER or U+2800 BRAILLE PATTERN BLANK were delivered as a
message that shows as nothing). Pure: standard library only.

- **Removed** (``is_invisible``): control, format and surrogate code points (Cc, Cf, Cs:
  zero-width characters, bidi controls, soft hyphen, BOM, tag characters, ...) and the other
  *default-ignorable* code points that are not combining marks: the Hangul fillers U+115F,
  U+1160, U+3164 and U+FFA0 (letters to Unicode, blank on screen) and reserved ignorables.
- **Kept but not content**: combining marks (accents; variation selectors such as the U+FE0F
  that draws U+2764 as an emoji heart; U+034F, U+17B4/U+17B5) change the character before
  them; blank symbols (U+2800, used for spacing in Braille art, and U+1D159) and whitespace
  draw nothing by themselves.
- **Visible** (``is_visible``): every other character, private-use and unassigned ones included
  (they draw at least a box).

A text is trimmed to run from its first visible character to its last one and the marks that
follow it (``trim_blank``): blank symbols, whitespace and stray marks at either end go, and a
text with no visible character becomes "".
"""

from __future__ import annotations

import unicodedata

# Default_Ignorable_Code_Point, Unicode 14 (DerivedCoreProperties.txt; the version of Python
# 3.11's unicodedata): code points a renderer shows as nothing when it does not support them.
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x200B, 0x200F),  # zero-width space, (non-)joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beams, ties, slurs, phrases
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
DEFAULT_IGNORABLE = frozenset(
    chr(code) for low, high in _DEFAULT_IGNORABLE_RANGES for code in range(low, high + 1)
)
# Symbols that are not ignorable to Unicode but draw as blank space.
BLANK_SYMBOLS = frozenset({"\u2800", "\U0001d159"})  # Braille pattern blank, null notehead

_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_MARKS = frozenset({"Mn", "Mc", "Me"})
_NOT_CONTENT_CATEGORIES = _REMOVED_CATEGORIES | _MARKS | {"Zs", "Zl", "Zp"}


def is_invisible(ch: str) -> bool:
    """True for a character hygiene removes: Cc, Cf or Cs, or default-ignorable but not a mark."""
    category = unicodedata.category(ch)
    if category in _REMOVED_CATEGORIES:
        return True
    return ch in DEFAULT_IGNORABLE and category not in _MARKS


def is_visible(ch: str) -> bool:
    """True for a character that draws something by itself (see the module docstring)."""
    if ch in DEFAULT_IGNORABLE or ch in BLANK_SYMBOLS or ch.isspace():
        return False
    return unicodedata.category(ch) not in _NOT_CONTENT_CATEGORIES


def has_visible(text: str) -> bool:
    """True when ``text`` has at least one visible character."""
    return any(map(is_visible, text))


def trim_blank(text: str) -> str:
    """``text`` from its first visible character to its last and the marks right after it.

    Whitespace, blank symbols, ignorables and marks before the first visible character go
    (a leading mark has nothing to attach to); after the last one, only the combining marks
    directly following it stay (an accent, the U+FE0F that makes U+2764 an emoji). No visible
    character gives "".
    """
    first = next((i for i, ch in enumerate(text) if is_visible(ch)), None)
    if first is None:
        return ""
    last = next(i for i in range(len(text) - 1, first - 1, -1) if is_visible(text[i]))
    end = last + 1
    while end < len(text) and unicodedata.category(text[end]) in _MARKS:
        end += 1
    return text[first:end]


def clean_line(text: str) -> str:
    """``text`` as one clean line: NFC, invisible characters removed, whitespace collapsed.

    Every whitespace character (newlines, tabs, NBSP, U+3000, U+2028, ...) becomes a space and
    runs of spaces become one; ``is_invisible`` characters are removed; then ``trim_blank``.
    Private-use and unassigned characters are kept. ``clean_line`` of the result is itself;
    the result is "" when nothing visible is left.
    """
    kept = "".join(ch for ch in text if ch.isspace() or not is_invisible(ch))
    return trim_blank(" ".join(unicodedata.normalize("NFC", kept).split()))
