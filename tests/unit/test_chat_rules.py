"""Pure chat rules: cleaning, length, profanity, history cursors, typing (PROTOCOL.md §5.3)."""

from __future__ import annotations

import ast
import base64
import re
import sys
import unicodedata
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import chat.rules
import domain.text
from chat.rules import (
    CHANNELS,
    DEFAULT_WORDS,
    EMOTES,
    HISTORY_CHANNELS,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MESSAGE_MAX,
    MESSAGE_MIN,
    TYPING_THROTTLE_S,
    FilterMode,
    ProfanityFilter,
    clamp_limit,
    clean_text,
    decode_cursor,
    encode_cursor,
    message_problem,
    normalise_word,
    typing_broadcast_due,
)
from domain.text import DEFAULT_IGNORABLE, is_visible

FILTER = ProfanityFilter(DEFAULT_WORDS)
BIGINT_MAX = 2**63 - 1


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def masked(text: str, spans: list[tuple[int, int]]) -> str:
    out = list(text)
    for start, end in spans:
        out[start:end] = "*" * (end - start)
    return "".join(out)


# --- module shape -------------------------------------------------------------------------------


def test_constants_match_the_protocol() -> None:
    assert (MESSAGE_MIN, MESSAGE_MAX) == (1, 500)
    assert CHANNELS == ("zone", "global", "guild")
    assert HISTORY_CHANNELS == ("zone", "global", "guild", "whisper")
    assert EMOTES == ("smile", "wave", "bow", "dance", "cheer", "laugh", "cry", "point")
    assert (HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT) == (50, 100)
    assert TYPING_THROTTLE_S == 2.0
    assert FilterMode("mask") is FilterMode.MASK
    assert FilterMode("reject") is FilterMode.REJECT


def imported_modules(path: str | None) -> set[str]:
    assert path is not None
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    assert names, "no imports found: the check would pass vacuously"
    return names


STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def test_rules_module_imports_only_the_standard_library_and_the_shared_text_rules() -> None:
    names = imported_modules(chat.rules.__file__)
    assert {name.split(".")[0] for name in names} - {"domain"} <= STDLIB, names
    assert {name for name in names if name.startswith("domain")} == {"domain.text"}
    text_roots = {name.split(".")[0] for name in imported_modules(domain.text.__file__)}
    assert text_roots <= STDLIB, text_roots


# --- cleaning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("  hello world  ", "hello world"),
        # newlines, tabs and other whitespace become one space
        ("a\nb", "a b"),
        ("a\r\nb", "a b"),
        ("a\tb", "a b"),
        ("a \n\t  b", "a b"),
        ("a\u00a0\u00a0b", "a b"),  # no-break spaces
        ("a\u2028b\u2029c", "a b c"),  # line and paragraph separators
        ("a\x0b\x0cb", "a b"),
        # other control characters are removed
        ("a\x00b", "ab"),
        ("a\x07\x1bb", "ab"),
        ("a\x7fb", "ab"),
        ("a\x9bb", "ab"),  # C1 control (CSI)
        # bidi overrides, isolates and marks are removed
        ("abc\u202edef", "abcdef"),
        ("\u2066x\u2069", "x"),
        ("\u200fx\u200e", "x"),
        # zero-width and other format characters are removed
        ("a\u200bb", "ab"),
        ("a\u200c\u200db", "ab"),
        ("\ufeffhi", "hi"),
        ("a\u00adb", "ab"),  # soft hyphen
        ("a \u200b b", "a b"),  # removed first, then the spaces collapse
        # lone surrogates are removed; private-use characters are kept
        ("a\ud800b", "ab"),
        ("a\ue000b", "a\ue000b"),
        # NFC
        ("e\u0301", "\u00e9"),
        ("A\u030a", "\u00c5"),
        ("cafe\u0301 \u00e9", "caf\u00e9 \u00e9"),
        # nothing visible left
        ("", ""),
        ("\n\t \u200b\u202e ", ""),
    ],
)
def test_clean_text_table(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@given(st.text())
def test_clean_text_output_is_one_trimmed_nfc_line_without_invisibles(raw: str) -> None:
    cleaned = clean_text(raw)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert all(ch == " " or not ch.isspace() for ch in cleaned)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in cleaned)
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_text(cleaned) == cleaned


# --- nothing visible (issue #19) ----------------------------------------------------------------

# One entry per kind of character that shows as nothing; each alone, repeated, must be empty.
BLANK_KINDS = {
    "hangul filler U+3164": "\u3164",
    "hangul choseong filler U+115F": "\u115f",
    "hangul jungseong filler U+1160": "\u1160",
    "halfwidth hangul filler U+FFA0": "\uffa0",
    "braille pattern blank U+2800": "\u2800",
    "musical null notehead U+1D159": "\U0001d159",
    **{f"zero-width / direction mark U+{c:04X}": chr(c) for c in range(0x200B, 0x2010)},
    **{f"word joiner / invisible operator U+{c:04X}": chr(c) for c in range(0x2060, 0x2065)},
    "BOM U+FEFF": "\ufeff",
    "mongolian vowel separator U+180E": "\u180e",
    "soft hyphen U+00AD": "\u00ad",
    "combining grave U+0300 (marks alone)": "\u0300",
    "combining marks of three kinds": "\u0301\u0489\u0903",  # Mn, Me, Mc
    "combining grapheme joiner U+034F": "\u034f",
    "khmer inherent vowel U+17B4": "\u17b4",
    "khmer inherent vowel U+17B5": "\u17b5",
    **{f"variation selector U+{c:04X}": chr(c) for c in (0xFE00, 0xFE0E, 0xFE0F)},
    **{f"variation selector U+{c:05X}": chr(c) for c in (0xE0100, 0xE01EF)},
    **{f"tag U+{c:05X}": chr(c) for c in (0xE0000, 0xE0001, 0xE0020, 0xE0041, 0xE007F)},
    "ideographic space U+3000": "\u3000",
    **{f"space U+{c:04X}": chr(c) for c in (0x00A0, 0x2000, 0x2007, 0x200A, 0x202F, 0x205F)},
    "line separator U+2028": "\u2028",
    "paragraph separator U+2029": "\u2029",
}


@pytest.mark.parametrize("blank", BLANK_KINDS.values(), ids=BLANK_KINDS.keys())
def test_a_message_of_characters_that_show_as_nothing_is_empty(blank: str) -> None:
    for raw in (blank * 20, f" {blank} " * 5, blank + "\n" + blank):
        assert clean_text(raw) == ""
        assert message_problem(clean_text(raw)) == "Message is empty"


def test_a_mix_of_every_blank_kind_is_empty() -> None:
    raw = " ".join(BLANK_KINDS.values()) * 3
    assert clean_text(raw) == ""
    assert message_problem(clean_text(raw)) == "Message is empty"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # blank symbols at the ends are trimmed, inside they stay (Braille art)
        ("hi\u2800\u2800\u2800", "hi"),
        ("\u2800\u2800hi \u2800 there\u2800", "hi \u2800 there"),
        ("\u28ff\u2800\u28ff", "\u28ff\u2800\u28ff"),
        # hangul fillers are removed everywhere, like zero-width characters
        ("a\u3164b", "ab"),
        ("a \u3164 b", "a b"),
        ("\u3164" * 5 + "hi" + "\uffa0" * 5, "hi"),
        # a mark has nothing to attach to at the start; after a character it stays
        ("\u0301hi", "hi"),
        ("\u2800\u0301 hi", "hi"),
        ("cafe\u0301", "caf\u00e9"),
        ("x\u0489", "x\u0489"),
        # emoji with variation selectors, modifiers, keycaps, flags stay as they are
        ("I \u2764\ufe0f this", "I \u2764\ufe0f this"),
        ("\u2764\ufe0f", "\u2764\ufe0f"),
        ("\u263a\ufe0e", "\u263a\ufe0e"),
        ("1\ufe0f\u20e3", "1\ufe0f\u20e3"),
        ("\U0001f44d\U0001f3fd", "\U0001f44d\U0001f3fd"),
        ("\U0001f1eb\U0001f1f7", "\U0001f1eb\U0001f1f7"),
        ("ok \U0001f44d\U0001f3fd\u2800", "ok \U0001f44d\U0001f3fd"),
        # one visible character is enough
        ("\u3164\u2800.\u2800", "."),
        ("\ue000", "\ue000"),  # private use: a game's own icon font
    ],
)
def test_clean_text_blank_and_visible_characters_table(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected
    assert message_problem(clean_text(raw)) is None


NON_LATIN = [
    "こんにちは、元気ですか",
    "안녕하세요",
    "你好，世界",  # noqa: RUF001 (the full-width comma is the point)
    "Привет, мир",
    "Γειά σου κόσμε",  # noqa: RUF001 (Greek letters are the point)
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "வணக்கம் உலகம்",
    "สวัสดีชาวโลก",
    "ສະບາຍດີ",
    "សួស្តីពិភពលោក",
    "ᠮᠣᠩᠭᠣᠯ",
    "ሰላም ልዑል",
    "Xin chào thế giới",
]


@pytest.mark.parametrize("text", NON_LATIN)
def test_non_latin_scripts_stay_valid_and_unchanged(text: str) -> None:
    assert unicodedata.is_normalized("NFC", text)
    assert clean_text(text) == text
    assert message_problem(clean_text(text)) is None


def test_hangul_filler_cannot_split_a_profane_word_past_the_filter() -> None:
    assert FILTER.contains(clean_text("f\u3164u\u3164c\u3164k"))
    assert FILTER.contains(clean_text("sh\u3164it"))


@given(st.text())
def test_clean_text_output_is_empty_or_starts_and_ends_visibly(raw: str) -> None:
    cleaned = clean_text(raw)
    if not cleaned:
        return
    assert is_visible(cleaned[0])
    tail = cleaned.rstrip("".join(c for c in set(cleaned) if unicodedata.category(c)[0] == "M"))
    assert tail and is_visible(tail[-1])
    assert not any(ch in DEFAULT_IGNORABLE and unicodedata.category(ch)[0] != "M" for ch in cleaned)


@given(st.text(alphabet=st.sampled_from(sorted(set("".join(BLANK_KINDS.values()) + " \n\t")))))
def test_any_text_of_blank_characters_is_empty(raw: str) -> None:
    assert clean_text(raw) == ""


# --- length -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "Message is empty"),
        (" \n\t\u200b ", "Message is empty"),
        ("x", None),
        ("  x\n", None),
        ("x" * 500, None),
        ("\n" + "x" * 500 + "   \u200b", None),  # 500 after cleaning
        ("x" * 501, "Message is longer than 500 characters"),
        ("x" * 250 + "\n\n\n" + "x" * 250, "Message is longer than 500 characters"),  # 501
    ],
)
def test_message_problem_counts_characters_after_cleaning(raw: str, problem: str | None) -> None:
    assert message_problem(clean_text(raw)) == problem


# --- profanity: what is caught ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        # case and accents
        ("fuck", [(0, 4)]),
        ("FUCK", [(0, 4)]),
        ("FuCk", [(0, 4)]),
        ("fück", [(0, 4)]),
        ("fu\u0308ck", [(0, 5)]),  # decomposed accent: masked with its letter
        ("\uff46\uff55\uff43\uff4b", [(0, 4)]),  # full-width
        ("\u0430ss", [(0, 3)]),  # Cyrillic a
        # look-alike substitutions
        ("sh1t", [(0, 4)]),
        ("$h!t", [(0, 4)]),
        ("5hit", [(0, 4)]),
        ("@ss", [(0, 3)]),
        ("4ss", [(0, 3)]),
        ("a$$h0le", [(0, 7)]),
        ("a55ho1e", [(0, 7)]),  # 1 read as l
        ("b1tch", [(0, 5)]),  # 1 read as i
        ("b|tch", [(0, 5)]),
        ("7wat", [(0, 4)]),
        ("+wat", [(0, 4)]),
        ("8itch", [(0, 5)]),
        ("wh0r3", [(0, 5)]),
        ("cr@p", [(0, 4)]),
        # separators between single letters
        ("f.u.c.k", [(0, 7)]),
        ("f-u-c-k", [(0, 7)]),
        ("f u c k", [(0, 7)]),
        ("f_u_c_k", [(0, 7)]),
        ("f*u*c*k", [(0, 7)]),
        ("s . h . i . t", [(0, 13)]),
        ("$ h ! t", [(0, 7)]),
        ("fu\u200bck", [(0, 5)]),  # zero-width space inside
        # repeated letters
        ("shiiiiit", [(0, 8)]),
        ("fuuuuuck", [(0, 8)]),
        ("aaass", [(0, 5)]),
        ("asssss", [(0, 6)]),
        # suffixes
        ("fucking", [(0, 7)]),
        ("fuckin", [(0, 6)]),
        ("fucked", [(0, 6)]),
        ("fucker", [(0, 6)]),
        ("fuckers", [(0, 7)]),
        ("fuckinggg", [(0, 9)]),
        ("shits", [(0, 5)]),
        ("shitty", [(0, 6)]),
        ("bitches", [(0, 7)]),
        ("asses", [(0, 5)]),
        ("arses", [(0, 5)]),
        ("wankers", [(0, 7)]),
        ("motherfucking", [(0, 13)]),
        ("f.u.c.k.i.n.g", [(0, 13)]),
        # punctuation around a word is not part of it
        ("shit!", [(0, 4)]),
        ("shit!!!", [(0, 4)]),
        ("$hit!!", [(0, 4)]),
        ("(shit)", [(1, 5)]),
        ("f.u.c.k!", [(0, 7)]),
        ("shi\u0301t\u0301!", [(0, 6)]),  # accents stay with their letters
        ("'fuckin'", [(1, 7)]),
        # inside a sentence
        ("you are a fucking idiot", [(10, 17)]),
        ("pass the salt, you ass!", [(19, 22)]),
    ],
)
def test_evasions_are_detected_and_masked_at_their_span(
    text: str, spans: list[tuple[int, int]]
) -> None:
    assert FILTER.spans(text) == spans
    assert FILTER.contains(text)
    assert FILTER.mask(text) == masked(text, spans)


@pytest.mark.parametrize("word", DEFAULT_WORDS)
def test_every_default_word_is_caught_alone_and_in_a_sentence(word: str) -> None:
    text = f"well {word.upper()}, ok"
    assert FILTER.spans(text) == [(5, 5 + len(word))]


# --- profanity: what is not caught --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "class",
        "classic assistant",
        "Scunthorpe",
        "hello",
        "grass",
        "passage",
        "cocktail",
        "assess",
        "assessment",
        "bass",
        "glass",
        "harass",
        "assassin",
        "passes",
        "as",  # "ass" needs two s
        "a s",
        "shiitake",
        "Matsushita",
        "arsenal",
        "Dickens",
        "therapist",
        "Essex",
        "bitcoin",
        "crapaud",  # crap + aud is no suffix
        "scrap",
        "piston",
        "twitter",
        "sluice",
        "horse",
        "I sold it for 455 gold",  # digits only: a number
        "4 5 5",
        "I a m here",
        "f    u    c    k",  # letters too far apart to be one word
        "f\nu\nc\nk",
        "hi! |||| 1111 $$$",
        "",
    ],
)
def test_innocent_text_is_not_matched(text: str) -> None:
    assert FILTER.spans(text) == []
    assert not FILTER.contains(text)
    assert FILTER.mask(text) == text


# --- profanity: masking and the word list -------------------------------------------------------


def test_mask_keeps_the_rest_of_the_text_byte_identical() -> None:
    text = "Héllo 🌍  — you shit!\u00a0ok\u200b, naïve 東京 ass."
    result = FILTER.mask(text)
    assert result == "Héllo 🌍  — you ****!\u00a0ok\u200b, naïve 東京 ***."
    start = text.index("shit")
    assert result.encode()[: len(text[:start].encode())] == text[:start].encode()
    assert result[start + 4 :].encode().endswith(" 東京 ***.".encode())


def test_mask_of_text_with_two_profane_words_masks_both() -> None:
    assert FILTER.spans("fuck this shit") == [(0, 4), (10, 14)]
    assert FILTER.mask("fuck this shit") == "**** this ****"


def test_list_drives_the_filter_and_entries_are_normalised() -> None:
    custom = ProfanityFilter(["  DaRn ", "Fr@k"])
    assert custom.mask("darn it, dang, FRAKKING fuck") == "**** it, dang, ******** fuck"


def test_empty_list_matches_nothing() -> None:
    empty = ProfanityFilter([])
    assert empty.spans("fuck shit") == []
    assert empty.mask("fuck shit") == "fuck shit"


def test_entries_shorter_than_two_letters_are_ignored() -> None:
    # A single letter would match initials and every "a" of English.
    assert ProfanityFilter(["a", "X", "é", ""]).spans("a cat, x marks, é") == []


def test_filter_gives_the_same_answer_when_a_word_repeats() -> None:
    text = "shit " * 5 + "class " * 5
    assert FILTER.spans(text) == [(i * 5, i * 5 + 4) for i in range(5)]
    assert FILTER.spans(text) == [(i * 5, i * 5 + 4) for i in range(5)]


@pytest.mark.parametrize(
    ("entry", "normal"),
    [
        ("fuck", "fuck"),
        ("FÜCK", "fuck"),
        ("f.u.c.k", "fuck"),
        ("@$$", "ass"),
        ("Sh1t", "shit"),
        ("\uff42\uff49\uff54\uff43\uff48", "bitch"),
        ("straße", "strasse"),
        ("wh0r3", "whore"),
        ("", ""),
    ],
)
def test_normalise_word_table(entry: str, normal: str) -> None:
    assert normalise_word(entry) == normal


def test_default_words_are_stored_normalised_and_unique() -> None:
    assert 15 <= len(DEFAULT_WORDS) <= 30
    assert len(set(DEFAULT_WORDS)) == len(DEFAULT_WORDS)
    assert all(normalise_word(word) == word for word in DEFAULT_WORDS)


@given(st.text())
def test_normalise_word_is_idempotent_and_never_raises(word: str) -> None:
    normal = normalise_word(word)
    assert normalise_word(normal) == normal


# --- profanity: properties ----------------------------------------------------------------------

profane_texts = st.lists(
    st.sampled_from(["shit", "f.u.c.k", "$h!t", "class", "ass", "4 5 5", " ", "!", "é", "\u200b"])
    | st.text(max_size=5),
    max_size=12,
).map("".join)


@given(st.text() | profane_texts)
def test_mask_has_the_same_length_and_differs_only_inside_spans(text: str) -> None:
    spans = FILTER.spans(text)
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))
    result = FILTER.mask(text)
    assert len(result) == len(text)
    inside = {i for start, end in spans for i in range(start, end)}
    for i, (before, after) in enumerate(zip(text, result, strict=True)):
        assert after == ("*" if i in inside else before)
    assert FILTER.contains(text) == bool(spans)


@given(st.text())
def test_a_listed_word_after_any_text_is_found_in_place(prefix: str) -> None:
    text = prefix + " shit"
    assert FILTER.spans(text)[-1] == (len(text) - 4, len(text))


# --- history ------------------------------------------------------------------------------------


@given(st.integers(0, BIGINT_MAX), st.integers(1, BIGINT_MAX))
def test_cursor_round_trips_and_is_url_safe(created_ms: int, message_id: int) -> None:
    cursor = encode_cursor(created_ms, message_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,100}", cursor)
    assert decode_cursor(cursor) == (created_ms, message_id)


@pytest.mark.parametrize(("created_ms", "message_id"), [(-1, 1), (0, 0), (0, -5), (2**63, 1)])
def test_encode_cursor_rejects_values_a_decoder_would_refuse(
    created_ms: int, message_id: int
) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_cursor(created_ms, message_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "abc",  # wrong base64 length
        "a" * 101,
        encode_cursor(1, 2) + "=",  # padding is not part of the canonical form
        encode_cursor(1, 2) + " ",
        b64("1.2.3"),
        b64("12"),
        b64("-1.5"),
        b64("5.-1"),
        b64("5.0"),  # ids start at 1
        b64("01.5"),  # non-canonical number
        b64("1.05"),
        b64("+1.5"),
        b64(" 1.5"),
        b64("abc.def"),
        b64("\u0661.\u0662"),  # Arabic-Indic digits
        b64(f"{2**63}.1"),
        b64(f"1.{2**63}"),
        b64("1" * 70 + ".1"),
        base64.b64encode(b"\xff\xfe\xfd>?").decode(),  # standard alphabet ("+", "/")
    ],
)
def test_decode_cursor_returns_none_for_garbage(cursor: str) -> None:
    assert decode_cursor(cursor) is None


def test_decode_cursor_returns_none_for_a_non_string() -> None:
    assert decode_cursor(12345) is None  # type: ignore[arg-type]
    assert decode_cursor(None) is None  # type: ignore[arg-type]


@given(
    st.text()
    | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
)
def test_decode_cursor_never_raises_and_accepts_only_canonical_cursors(cursor: str) -> None:
    decoded = decode_cursor(cursor)
    assert decoded is None or encode_cursor(*decoded) == cursor


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(None, 50), (1, 1), (50, 50), (100, 100), (0, None), (-1, None), (101, None), (True, None)],
)
def test_clamp_limit_table(limit: int | None, expected: int | None) -> None:
    assert clamp_limit(limit) == expected


# --- typing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_true_at", "now", "due"),
    [
        (None, 0.0, True),  # first typing: true for this user and channel
        (10.0, 10.0, False),
        (10.0, 11.99, False),
        (10.0, 12.0, True),  # exactly the throttle
        (10.0, 100.0, True),
        (10.0, 5.0, False),  # clock went backwards
    ],
)
def test_typing_broadcast_due_table(last_true_at: float | None, now: float, due: bool) -> None:
    assert typing_broadcast_due(last_true_at, now) is due


def test_typing_broadcast_due_honours_a_custom_throttle() -> None:
    assert typing_broadcast_due(10.0, 10.5, throttle_s=0.5)
    assert not typing_broadcast_due(10.0, 14.0, throttle_s=5.0)
