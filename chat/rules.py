"""Pure chat rules: message cleaning, profanity filter, history cursors, typing (PROTOCOL §5.3).

Plain functions over plain values, no Django. Clocks are passed in (seconds, float).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Iterator
from enum import StrEnum
from functools import lru_cache
from itertools import product

from domain.text import clean_line

MESSAGE_MIN = 1
MESSAGE_MAX = 500
CHANNELS = ("zone", "global", "guild")  # chat:message channels
HISTORY_CHANNELS = ("zone", "global", "guild", "whisper")
EMOTES = ("smile", "wave", "bow", "dance", "cheer", "laugh", "cry", "point")
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 100
TYPING_THROTTLE_S = 2.0
CURSOR_MAX_LENGTH = 100
MASK_CHAR = "*"


class FilterMode(StrEnum):
    MASK = "mask"  # profane words are replaced by MASK_CHAR, the message is sent
    REJECT = "reject"  # the message is refused with CONTENT_BLOCKED


# Seed for the moderators' word list (the list itself lives in the database). Root forms only:
# the filter itself accepts the suffixes s/es/ed/er/ers/in/ing/y ("fucking", "shits").
DEFAULT_WORDS: tuple[str, ...] = (
    "arse", "arsehole", "ass", "asshole", "bastard", "bitch", "bollocks", "bullshit", "crap",
    "cunt", "dickhead", "fuck", "jackass", "motherfuck", "piss", "shit", "slut", "twat", "wank",
    "whore",
)  # fmt: skip


# --- cleaning -----------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` as it is stored and sent: NFC, one line, no invisible characters, trimmed.

    Every whitespace character (newlines, tabs, NBSP, ...) becomes a space; other control,
    format (bidi overrides, zero-width characters) and lone-surrogate characters and the Hangul
    fillers are removed; runs of spaces become one space; blank characters (whitespace, U+2800
    BRAILLE PATTERN BLANK, stray combining marks) are trimmed from both ends. A text with no
    visible character left gives "", so ``message_problem`` calls it empty (issue #19). Blank
    symbols inside the text and combining marks after a character (accents, emoji variation
    selectors) are kept. Private-use and unassigned characters are kept. The result is
    NFC-normalised and ``clean_text`` of it is itself. See ``domain.text``.
    """
    return clean_line(text)


def message_problem(text: str) -> str | None:
    """None if the (already cleaned) ``text`` has MESSAGE_MIN..MESSAGE_MAX characters, else why.

    A message that showed as nothing is "" once cleaned, and so empty.
    """
    if len(text) < MESSAGE_MIN:
        return "Message is empty"
    if len(text) > MESSAGE_MAX:
        return f"Message is longer than {MESSAGE_MAX} characters"
    return None


# --- profanity ----------------------------------------------------------------------------------

# Look-alike substitutions; an ambiguous one lists every reading, the likelier first.
_LEET: dict[str, tuple[str, ...]] = {
    "@": ("a",), "4": ("a",), "8": ("b",), "3": ("e",), "€": ("e",), "9": ("g",),
    "1": ("i", "l"), "|": ("i", "l"), "!": ("i",), "0": ("o",), "$": ("s",), "5": ("s",),
    "7": ("t",), "+": ("t",),
}  # fmt: skip
_HOMOGLYPHS = str.maketrans("аеорсухкіјѕαικνορτυ", "aeopcyxkijsaikvoptu")  # Cyrillic, Greek
_INVISIBLE = frozenset({"Mn", "Mc", "Me", "Cf"})  # marks and format characters
_MAX_AMBIGUOUS = 3  # per word; past it an ambiguous character only gets its first reading
_MAX_GAP = 3  # separator characters allowed between letters written apart ("f - u - c - k")
_SUFFIX = re.compile(r"e?s|e+d+|e+r+s?|i+n+g*s?|y+")
_SUFFIX_LETTERS = frozenset("desgirny")
_SUFFIX_MAX = 12  # letters, repeats included ("inggggg")
_MEMO_SIZE = 10_000  # words remembered per filter (cleared when full): chat repeats itself
_TABLE_SIZE = 50_000  # characters remembered by the translate tables

# One code per character. A word is a letter or look-alike followed by more of them; invisible
# characters (accents, zero-width) never end a word. Upper case: an ambiguous look-alike.
_SEP, _SKIP, _LETTER = "s", "k", "l"
_WORD = re.compile(r"[ldDtT][ldDtTk]*")
_NUMBER = re.compile(r"[dDks]+")  # digits only (separators and invisibles between them)
_RUN = re.compile(r"(.)\1*", re.DOTALL)
_REPEATS = re.compile(r"(.)\1+", re.DOTALL)


def _fold(text: str) -> str:
    """Casefolded, compatibility-decomposed, without marks or format characters, de-homoglyphed.

    Decomposed twice: casefolding can yield characters that decompose further.
    """
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = (c for c in decomposed if unicodedata.category(c) not in _INVISIBLE)
    return "".join(kept).translate(_HOMOGLYPHS)


@lru_cache(maxsize=4096)
def _classify(ch: str) -> tuple[str, tuple[str, ...]]:
    """(code, readings) of one character: how the filter reads it."""
    category = unicodedata.category(ch)
    if category == "Cs":
        return _SEP, ("",)
    if category in _INVISIBLE:
        return _SKIP, ("",)
    folded = _fold(ch)
    if folded in _LEET:  # also catches full-width digits and symbols
        options = _LEET[folded]
        code = "d" if folded.isdigit() else "t"
        return (code.upper() if len(options) > 1 else code), options
    if folded.isalpha():
        return _LETTER, (folded,)
    return (_SEP if folded else _SKIP), ("",)


class _Table(dict[int, str]):
    """A ``str.translate`` table to the code (or first reading) of each character, filled lazily."""

    def __init__(self, *, reading: bool) -> None:
        super().__init__()
        self._reading = reading

    def __missing__(self, code: int) -> str:
        kind, options = _classify(chr(code))
        value = options[0] if self._reading else kind
        if len(self) < _TABLE_SIZE:
            self[code] = value
        return value


_CODES = _Table(reading=False)
_READS = _Table(reading=True)


def normalise_word(word: str) -> str:
    """The form in which a word-list entry is stored and compared.

    Casefolded, accents and separators dropped, look-alikes replaced by letters ("F.ü.C.k" and
    "fück" give "fuck", "@$$" gives "ass"); an ambiguous substitution takes its first reading
    ("1" gives "i"). Only letters remain, and normalising the result again changes nothing.
    """
    return word.translate(_READS)


def _units(text: str, codes: str) -> Iterator[tuple[int, int]]:
    """[start, end) of every word, except that single letters written apart form one unit."""
    run: tuple[int, int] | None = None
    for match in _WORD.finditer(codes):
        start, end = match.span()
        letters = codes.count(_LETTER, start, end)
        single = letters == 1 or (
            letters == 0 and end - start - codes.count(_SKIP, start, end) == 1
        )
        if single and run is not None:
            gap = text[run[1] : start]
            if len(gap) <= _MAX_GAP and "\n" not in gap:
                run = (run[0], end)
                continue
        if run is not None:
            yield run
        run = (start, end) if single else None
        if not single:
            yield start, end
    if run is not None:
        yield run


def _ranges(codes: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The unit, then without look-alikes at either end ("shit!" is "shit", not "shiti")."""
    yield start, end
    first = codes.find(_LETTER, start, end)
    if first >= 0:
        last = codes.rfind(_LETTER, start, end) + 1
        while last < end and codes[last] == _SKIP:
            last += 1
        for candidate in dict.fromkeys(((start, last), (first, end), (first, last))):
            if candidate != (start, end):
                yield candidate


def _readings(text: str, codes: str, start: int, end: int) -> Iterator[str]:
    """Every way text[start:end] can be read, at most 2**_MAX_AMBIGUOUS of them."""
    segment = text[start:end]
    if "D" not in codes[start:end] and "T" not in codes[start:end]:
        yield segment.translate(_READS)
        return
    choices = [_classify(ch)[1] for ch in segment]
    ambiguous = [i for i, options in enumerate(choices) if len(options) > 1]
    for i in ambiguous[_MAX_AMBIGUOUS:]:
        choices[i] = choices[i][:1]
    for combination in product(*choices):
        yield "".join(combination)


def _runs(word: str) -> tuple[str, tuple[int, ...]]:
    """ "shiiit" -> ("shit", (1, 1, 3, 1)): the letters with repeats collapsed, and the counts."""
    runs = [match[0] for match in _RUN.finditer(word)]
    return "".join(run[0] for run in runs), tuple(map(len, runs))


def _first_letter(run: re.Match[str]) -> str:
    return run[1]  # as a function: several times faster than the template r"\1"


def _suffix_start(word: str) -> int:
    """Where a suffix of ``word`` may start: in its last _SUFFIX_MAX letters, after the first."""
    cut = len(word)
    while cut > max(1, len(word) - _SUFFIX_MAX) and word[cut - 1] in _SUFFIX_LETTERS:
        cut -= 1
    return cut


class ProfanityFilter:
    """A normalising word-list filter.

    A listed word matches a whole word of the text, never part of one ("class", "Scunthorpe"
    and "assistant" are clean when "ass" and "cunt" are listed), after normalisation:
    case, accents, look-alikes ("sh1t", "$h!t", "a55ho1e"), repeated letters ("shiiiit" matches
    "shit"; "aaass" matches "ass", "as" does not), single letters written apart ("f.u.c.k",
    "f u c k", "f_u_c_k") and the suffixes s, es, ed, er, ers, in, ing, y ("fucking", "shits").
    A word of digits only is a number, never a match. Look-alike symbols at either end of a word
    are also read as punctuation ("shit!"). Entries with fewer than two letters are ignored.
    Cost: two ``str.translate`` passes, then a dictionary look-up per word.
    """

    def __init__(self, words: Iterable[str]) -> None:
        index: dict[str, set[tuple[int, ...]]] = {}
        for word in words:
            normal = normalise_word(word)
            if len(normal) >= 2:
                skeleton, counts = _runs(normal)
                index.setdefault(skeleton, set()).add(counts)
        self._index = {skeleton: tuple(counts) for skeleton, counts in index.items()}
        self._memo: dict[str, tuple[int, ...]] = {}  # unit -> _match(unit)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Sorted, disjoint [start, end) spans of ``text`` (code points) that are profane."""
        return list(self._spans(text))

    def contains(self, text: str) -> bool:
        """True if ``text`` has at least one profane word."""
        return next(self._spans(text), None) is not None

    def mask(self, text: str) -> str:
        """``text`` with each profane span replaced by as many MASK_CHARs; the rest is unchanged."""
        pieces: list[str] = []
        last = 0
        for start, end in self._spans(text):
            pieces += (text[last:start], MASK_CHAR * (end - start))
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        if not self._index:
            return
        for unit_start, unit_end in _units(text, text.translate(_CODES)):
            unit = text[unit_start:unit_end]
            found = self._memo.get(unit)
            if found is None:
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.clear()
                found = self._memo[unit] = self._match(unit)
            if found:
                yield unit_start + found[0], unit_start + found[1]

    def _match(self, unit: str) -> tuple[int, ...]:
        """The profane [start, end) of one unit, or () when it is clean."""
        codes = unit.translate(_CODES)
        for start, end in _ranges(codes, 0, len(unit)):
            if _NUMBER.fullmatch(codes, start, end):
                continue  # a number, not a word ("455 gold")
            if any(map(self._listed, _readings(unit, codes, start, end))):
                return start, end
        return ()

    def _listed(self, word: str) -> bool:
        """True if ``word`` (letters only) is a listed word, possibly followed by a suffix."""
        return self._hit(word) or any(
            _SUFFIX.fullmatch(word, stem_end) is not None and self._hit(word[:stem_end])
            for stem_end in range(_suffix_start(word), len(word))
        )

    def _hit(self, word: str) -> bool:
        minima = self._index.get(_REPEATS.sub(_first_letter, word))
        if not minima:
            return False
        counts = _runs(word)[1]
        return any(all(c >= m for c, m in zip(counts, minimum, strict=True)) for minimum in minima)


# --- history --------------------------------------------------------------------------------------

_BIGINT_MAX = 2**63 - 1  # message ids and times must fit the database column
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_CURSOR_BODY = re.compile(rb"([0-9]+)\.([0-9]+)")


def encode_cursor(created_ms: int, message_id: int) -> str:
    """An opaque URL-safe cursor for "before this message"; ``decode_cursor`` gives the pair back.

    Raises ValueError for a negative time or an id below 1 (or either past 2**63 - 1).
    """
    if not (0 <= created_ms <= _BIGINT_MAX and 1 <= message_id <= _BIGINT_MAX):
        raise ValueError(f"cursor out of range: ({created_ms}, {message_id})")
    raw = f"{created_ms}.{message_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int] | None:
    """(created_ms, message_id) of a cursor made by ``encode_cursor``; None for anything else.

    Never raises: wrong types, over-long strings, bad base64, other shapes, negative or
    out-of-range numbers and non-canonical spellings all give None.
    """
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_LENGTH:
        return None  # checked first: a huge string costs nothing
    if not _CURSOR_TEXT.fullmatch(cursor):
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        match = _CURSOR_BODY.fullmatch(raw)
        pair = (int(match[1]), int(match[2])) if match else None
        # encode_cursor rejects out-of-range numbers; comparing rejects non-canonical spellings.
        return pair if pair is not None and encode_cursor(*pair) == cursor else None
    except (binascii.Error, ValueError):
        return None


def clamp_limit(limit: int | None) -> int | None:
    """HISTORY_DEFAULT_LIMIT for None, ``limit`` if within 1..HISTORY_MAX_LIMIT, else None."""
    if limit is None:
        return HISTORY_DEFAULT_LIMIT
    if isinstance(limit, bool) or not 1 <= limit <= HISTORY_MAX_LIMIT:
        return None
    return limit


# --- typing -------------------------------------------------------------------------------------


def typing_broadcast_due(
    last_true_at: float | None, now: float, throttle_s: float = TYPING_THROTTLE_S
) -> bool:
    """True if a ``typing: true`` for this user and channel may be broadcast at ``now``.

    That is when none was broadcast yet (``last_true_at`` None) or the last one was at least
    ``throttle_s`` seconds ago. A clock that went backwards counts as no time passed.
    """
    return last_true_at is None or now - last_true_at >= throttle_s
