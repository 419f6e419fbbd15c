"""Find the encoding of uploaded text: Unicode, or a legacy code page.

UTF-8 is the fast path: valid UTF-8 is never second-guessed. A byte order mark names
UTF-8/16/32; UTF-16 without one shows itself by NUL bytes on one side of each byte pair.
Everything else is a single-byte code page, and there a detector is weakest where we
need it most: on a line or two `charset_normalizer` takes cp1251 for mac-cyrillic,
koi8-r for Shift-JIS, Spanish windows-1252 for cp1250 (ñ becomes ń). So the code pages
our users write in (cp1251, koi8-r and cp866 for Russian; windows-1252 and Latin-1 for
English and Spanish) are judged here, by which decoding reads most like text:

- each word is in one script: Spanish read as cp1251 gives "Aсo" for "Año";
- its case is lower, UPPER, Title or CamelCase: koi8-r and cp1251 swap the case of
  each other's letters, so the wrong one gives "оРИВЕТ" or a text in capitals;
- its Russian letters are the frequent ones, and an accented Latin word keeps some
  ASCII letters: Russian read as windows-1252 gives "Ïðèâåò";
- no stray symbols, C1 controls or box drawing: cp866 read as cp1251 gives "нв®в",
  cp1251 read as cp866 gives box drawing where the capitals were.

Only when none of them reads cleanly is the detector asked, for other languages' code
pages; its pick must read better by the same measure. Binary data never gets that far:
a NUL byte (outside UTF-16) or more than 1% control characters reject it first, so no
permissive code page turns an image or an executable into "text". An HTML page's own
`<meta charset>` wins when the bytes decode with it.

Example::

    decoded = detect("Привет, как дела?".encode("koi8-r"))
    decoded.text, decoded.encoding  # -> ("Привет, как дела?", "koi8-r")
"""

from __future__ import annotations

import codecs
import math
import re
import unicodedata
from dataclasses import dataclass

# Share of control characters (besides tab/newline/CR/FF) above which "text" is binary.
MAX_CONTROL_RATIO = 0.01

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])

# UTF-16 without a BOM: the head looked at, the share of NULs one side of the byte
# pairs needs (the high byte of ASCII, and of spaces and digits in Cyrillic text), and
# the share the other side may have.
_UTF16_HEAD = 8192
_UTF16_MIN_NULS = 0.1
_UTF16_MAX_OTHER_NULS = 0.01
# Text uses a few Unicode blocks, so its high bytes take a few values; binary data with
# NULs on one side has them all over the place.
_UTF16_MAX_HIGH_BYTES = 16

# An HTML page's declared charset, looked for where browsers look for it.
_DECLARATION_HEAD = 2048
_META_CHARSET_RE = re.compile(rb"<meta\s[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_.:-]+)", re.I)
_XML_ENCODING_RE = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([a-z0-9_.:-]+)", re.I)
# Browsers read these labels as windows-1252 (WHATWG Encoding standard), as do we.
_READ_AS_CP1252 = frozenset({"ascii", "iso8859-1"})

# The code pages we judge ourselves, in the order that breaks a tie: the same text
# from windows-1252 and Latin-1 is reported as windows-1252.
_CANDIDATES = ("cp1252", "cp1251", "koi8-r", "cp866", "latin-1")
# Words holding a non-ASCII byte (the only ones that read differently), sampled over
# the whole file up to this many bytes.
_SAMPLE_BYTES = 16 * 1024
_WORD_SIDE = 40
_WORD_RE = re.compile(rb"\S{0,%d}[\x80-\xff]\S{0,%d}" % (_WORD_SIDE, _WORD_SIDE))
_HIGH_RE = re.compile(rb"[\x80-\xff]")
_SPACE_RE = re.compile(r"[ \t\n\r\f\v]+")
# Shares of the non-ASCII characters in implausible words or stray symbols: below the
# first a reading is clearly text, and the detector is not asked; above the second (and
# one character) no reading is text. Text has about none; a wrong code page or binary
# data has most.
_CLEARLY_TEXT = 0.05
_MAX_IMPLAUSIBLE = 0.2
# Mean log-score of the non-ASCII characters below which a reading is not clearly
# text: Russian scores -3.1 (1 in 100 one-line snippets below -3.6), accented Latin
# -3.9, Greek read as cp1251 -4.4.
_CLEARLY_TEXT_SCORE = -4.2
# The detector sees this much of a file, and may call no more of it a mess.
_DETECTOR_BYTES = 256 * 1024
_MAX_DETECTOR_CHAOS = 0.1
_UNICODE = ("utf_7", "utf_8", "utf_16", "utf_32")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))

# Letter frequencies of Russian (per letter): the log-score of a Cyrillic letter.
_RUSSIAN_FREQUENCY = {
    "о": 0.1097, "е": 0.0845, "а": 0.0801, "и": 0.0735, "н": 0.0670, "т": 0.0626,
    "с": 0.0547, "р": 0.0473, "в": 0.0454, "л": 0.0440, "к": 0.0349, "м": 0.0321,
    "д": 0.0298, "п": 0.0281, "у": 0.0262, "я": 0.0201, "ы": 0.0190, "ь": 0.0174,
    "г": 0.0170, "з": 0.0165, "б": 0.0159, "ч": 0.0144, "й": 0.0121, "х": 0.0097,
    "ж": 0.0094, "ш": 0.0073, "ю": 0.0064, "ц": 0.0048, "щ": 0.0036, "э": 0.0032,
    "ф": 0.0026, "ъ": 0.0004, "ё": 0.0004,
    "і": 0.002, "ї": 0.002, "є": 0.002, "ґ": 0.002, "ў": 0.002,  # Ukrainian, Belarusian
}  # fmt: skip
_CYRILLIC_SCORE = {letter: math.log(p) for letter, p in _RUSSIAN_FREQUENCY.items()}
_RARE_CYRILLIC_SCORE = math.log(0.0005)  # Serbian, Macedonian: "Ђ", "Џ"
_UPPER_SCORE = math.log(0.15)  # capitals are rarer than lower case in running text
_CAMEL_SCORE = math.log(0.01)  # "ЧаВо", "ФайлЭкспорт" happen; Greek read as cp1251 too
_LATIN_SCORE = math.log(0.02)  # an accented Latin letter
# Other scripts, in the detector's readings: an alphabet's letter (Greek, Hebrew...), or
# one of a few thousand characters (CJK ideographs, Hangul syllables, half-width kana).
_ALPHABET_SCORE = math.log(0.03)
_SCRIPT_SCORE = {
    "CJK": math.log(0.0005),
    "HANGUL": math.log(0.0005),
    "HALFWIDTH": math.log(0.0005),
    "FULLWIDTH": math.log(0.0005),
    "HIRAGANA": math.log(0.005),
    "KATAKANA": math.log(0.005),
}
_SYMBOL_SCORE = math.log(0.02)
_BOX_SCORE = math.log(0.001)  # real in old DOS tables, but the sign of a wrong cp866
_IMPLAUSIBLE_SCORE = math.log(0.0001)
# Mean log-score of Cyrillic letters below which they are not Russian (nor Ukrainian)
# text: the rare letters only, as in "цццц" (a file of one repeated byte).
_MIN_CYRILLIC_SCORE = -5.0
# Letters in the longest word of a language written with spaces; a longer one is a run
# of bytes, not a word.
_MAX_WORD = 40
_SPACED = frozenset({"LATIN", "CYRILLIC", "GREEK"})
# Below this share of non-ASCII bytes among the letters, a non-Latin letter pays: there
# a lone "ó" or "á" is likelier Spanish than the Russian word "у" or "с".
_NON_LATIN_SHARE = 0.3

_SYMBOLS = frozenset(
    "\u00a0\u00ad€‚„…†‡‰‹›‘’“”•–—™«»§©®°±·¶µ¹²³¼½¾¿¡¢£¥№×÷"
)  # fmt: skip
# May sit between two letters of a word: "it’s", "rojo—azul".
_JOINERS = frozenset("’‘–—\u00a0\u00ad")
_BOX_DRAWING = frozenset([*map(chr, range(0x2500, 0x25A0)), "\u2219", "\u221a"])
_LATIN_EXTRA = frozenset("ªº")  # Spanish ordinals: 1ª, 2º
_HIGH_BYTES = bytes(range(0x80, 0x100))
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Decoded:
    """Text and the encoding it was read with: a Python codec name such as "utf-8",
    "utf-16-le", "cp1251", "koi8-r", "cp866", "cp1252" or "iso8859-1"."""

    text: str
    encoding: str


def detect(data: bytes) -> Decoded | None:
    """Decode `data` if it is text, else None (binary data, or no encoding reads it).

    Text has no NUL and at most `MAX_CONTROL_RATIO` control characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decoded(data[len(bom) :], encoding)
    if b"\x00" in data:
        return _utf16_without_bom(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _legacy(data)
    return _text_only(text, "utf-8")


def _decoded(data: bytes, encoding: str) -> Decoded | None:
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return _text_only(text, codecs.lookup(encoding).name)


def _text_only(text: str, encoding: str) -> Decoded | None:
    if "\x00" in text:
        return None
    if text and len(_CONTROL_RE.findall(text)) / len(text) > MAX_CONTROL_RATIO:
        return None
    return Decoded(text, encoding)


def _utf16_without_bom(data: bytes) -> Decoded | None:
    """Latin text in UTF-16 has a NUL for every high byte, Cyrillic one for each space,
    digit and punctuation mark; the side they are on gives the byte order."""
    if len(data) % 2:
        return None
    head = data[:_UTF16_HEAD]
    pairs = len(head) // 2
    even_nuls, odd_nuls = head[0::2].count(0), head[1::2].count(0)
    if odd_nuls >= _UTF16_MIN_NULS * pairs and even_nuls <= _UTF16_MAX_OTHER_NULS * pairs:
        encoding, high = "utf-16-le", head[1::2]
    elif even_nuls >= _UTF16_MIN_NULS * pairs and odd_nuls <= _UTF16_MAX_OTHER_NULS * pairs:
        encoding, high = "utf-16-be", head[0::2]
    else:
        return None
    if len(set(high)) > _UTF16_MAX_HIGH_BYTES:
        return None
    return _decoded(data, encoding)


def _legacy(data: bytes) -> Decoded | None:
    """A single-byte code page (or another language's legacy encoding), or None."""
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls > MAX_CONTROL_RATIO * len(data):
        return None
    declared = _declared_encoding(data[:_DECLARATION_HEAD])
    if declared is not None:
        decoded = _decoded(data, declared)
        if decoded is not None:
            return decoded
    sample = _sample(data)
    script_prior = _script_prior(data[: 4 * _SAMPLE_BYTES])
    readings: list[_Reading] = []
    for order, encoding in enumerate(_CANDIDATES):
        try:
            text = sample.decode(encoding)
        except UnicodeDecodeError:
            continue
        readings.append(_Reading.of(text, encoding, order, script_prior))
    if not any(r.clearly_text for r in readings):
        proposed = _detector_proposal(data)
        if proposed is not None:
            text, encoding = proposed
            readings.append(_Reading.of(text, encoding, len(_CANDIDATES), script_prior))
    for reading in sorted(r for r in readings if r.plausible):
        decoded = _decoded(data, reading.encoding)
        if decoded is not None:
            return decoded
    return None


def _declared_encoding(head: bytes) -> str | None:
    match = _META_CHARSET_RE.search(head) or _XML_ENCODING_RE.match(head)
    if match is None:
        return None
    try:
        encoding = codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
    if encoding.startswith(("utf-16", "utf-32")):
        return None  # these bytes are not UTF-16, whatever the page says
    return "cp1252" if encoding in _READ_AS_CP1252 else encoding


def _sample(data: bytes) -> bytes:
    """Space-separated words that hold a non-ASCII byte, from all over the file (its
    head may be plain ASCII)."""
    words: list[bytes] = []
    size = pos = 0
    while size < _SAMPLE_BYTES:
        high = _HIGH_RE.search(data, pos)
        if high is None:
            break
        # Look for the word just before that byte: scanning mostly-ASCII text for words
        # with a high byte in them is several times slower.
        word = _WORD_RE.search(data, max(pos, high.start() - _WORD_SIDE))
        if word is None:  # cannot happen: the high byte alone matches
            break
        words.append(word.group())
        size += len(words[-1]) + 1
        pos = word.end()
    return b" ".join(words)


def _script_prior(head: bytes) -> float:
    """Log-score added to each Cyrillic (or Greek, CJK...) letter: zero unless the text
    is mostly ASCII letters."""
    high = len(head) - len(head.translate(None, _HIGH_BYTES))
    ascii_letters = len(head) - len(head.translate(None, _ASCII_LETTERS))
    share = high / ((high + ascii_letters) or 1)
    return math.log(min(1.0, max(share, 0.01) / _NON_LATIN_SHARE))


def _detector_proposal(data: bytes) -> tuple[str, str] | None:
    """charset_normalizer's best code page other than ours, and its text of the head."""
    from charset_normalizer import from_bytes  # only for files none of ours reads

    head = data[:_DETECTOR_BYTES]
    if len(data) > _DETECTOR_BYTES:
        head = head[: head.rfind(b"\n") + 1] or head  # do not cut a multi-byte character
    for match in from_bytes(head, cp_exclusion=list(_CANDIDATES)):
        if match.chaos > _MAX_DETECTOR_CHAOS:
            break  # sorted by chaos: the rest are worse
        # UTF-16 would have had NULs; EBCDIC reads bytes as other ASCII characters.
        if not match.encoding.startswith(_UNICODE) and _keeps_ascii(match.encoding):
            return str(match)[:_SAMPLE_BYTES], match.encoding
    return None


def _keeps_ascii(encoding: str) -> bool:
    try:
        return _PRINTABLE_ASCII.decode(encoding) == _PRINTABLE_ASCII.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False


@dataclass(frozen=True, order=True)
class _Reading:
    """One code page's reading of the sample; the most plausible sorts first."""

    neg_score: float  # log-score per non-ASCII byte, with the script prior
    order: int
    encoding: str
    text_score: float  # the same without the prior
    implausible: float  # share of the non-ASCII characters
    plausible: bool

    @property
    def clearly_text(self) -> bool:
        return self.implausible <= _CLEARLY_TEXT and self.text_score >= _CLEARLY_TEXT_SCORE

    @classmethod
    def of(cls, text: str, encoding: str, order: int, script_prior: float) -> _Reading:
        tally = _Tally()
        for token in _SPACE_RE.split(text):
            tally.token(token)
        count = tally.count or 1
        # Per byte, so that a multi-byte code page's reading compares with ours.
        width = len(text.encode(encoding, "replace")) - len(text.encode("ascii", "ignore"))
        score = tally.total / max(width, 1)
        # One odd character is not enough to call a short text binary.
        plausible = tally.implausible <= max(_MAX_IMPLAUSIBLE * count, 1) and (
            tally.cyrillic_total >= _MIN_CYRILLIC_SCORE * tally.cyrillic
        )
        implausible = tally.implausible / count
        prior = script_prior * tally.non_latin / max(width, 1)
        return cls(-(score + prior), order, encoding, score, implausible, plausible)


@dataclass
class _Tally:
    """Log-scores of a text's non-ASCII characters (ASCII reads the same in every code
    page), and how many of them no language writes so."""

    total: float = 0.0
    non_latin: int = 0  # letters that pay the script prior
    cyrillic: int = 0
    cyrillic_total: float = 0.0
    count: int = 0
    implausible: int = 0

    def add(self, score: float, n: int = 1) -> None:
        self.total += score * n
        self.count += n

    def reject(self, n: int = 1) -> None:
        self.add(_IMPLAUSIBLE_SCORE, n)
        self.implausible += n

    def token(self, token: str) -> None:
        runs = _runs(token)
        for i, (run, is_word) in enumerate(runs):
            if is_word:
                self.word(run)
            else:  # runs alternate, so an inner one has letters on both sides
                self.symbols(run, inside_word=0 < i < len(runs) - 1)

    def symbols(self, run: str, *, inside_word: bool) -> None:
        for ch in run:
            if ch.isascii():
                continue
            if inside_word and ch not in _JOINERS:
                self.reject()  # "нв®в", "b·squeda": a letter read as a symbol
            elif ch in _SYMBOLS:
                self.add(_SYMBOL_SCORE)
            elif ch in _BOX_DRAWING:
                self.add(_BOX_SCORE)
            else:
                self.reject()

    def word(self, word: str) -> None:
        if word.isascii():
            return
        non_ascii = sum(not ch.isascii() for ch in word)
        segments = _script_segments(word)
        if (
            not all(_cased_like_text(segment) for segment, _ in segments)
            or any(segment[0].islower() for segment, _ in segments[1:])
            or any(len(s) > _MAX_WORD for s, script in segments if script in _SPACED)
        ):
            self.reject(non_ascii)  # scripts change only where a joined word starts
            return
        for segment, script in segments:
            if script == "CYRILLIC":
                for i, ch in enumerate(segment):
                    low = ch.lower()
                    score = _CYRILLIC_SCORE.get(low, _RARE_CYRILLIC_SCORE)
                    if ch != low:
                        score += _UPPER_SCORE if i == 0 or segment.isupper() else _CAMEL_SCORE
                    self.add(score)
                    self.cyrillic_total += score
                self.non_latin += len(segment)
                self.cyrillic += len(segment)
            elif script != "LATIN":
                self.add(_SCRIPT_SCORE.get(script, _ALPHABET_SCORE), len(segment))
                self.non_latin += len(segment)
            elif len(segment) > 1 and not any(ch.isascii() for ch in segment):
                self.reject(len(segment))  # "Ïðèâåò": Russian read as windows-1252
            else:
                self.add(_LATIN_SCORE, sum(not ch.isascii() for ch in segment))


def _is_letter(ch: str) -> bool:
    # Not "µ" (a symbol here) nor spacing modifiers such as "ˆ" (cp1251's "€" in cp1252).
    return ch.isalpha() and ch not in _SYMBOLS and not "\u02b0" <= ch <= "\u02ff"


def _runs(token: str) -> list[tuple[str, bool]]:
    """Split a token into alternating runs of letters (True) and anything else."""
    runs: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(token) + 1):
        if i == len(token) or _is_letter(token[i]) != _is_letter(token[start]):
            runs.append((token[start:i], _is_letter(token[start])))
            start = i
    return runs


def _script(ch: str) -> str:
    if ch.isascii() or "\u00c0" <= ch <= "\u024f" or ch in _LATIN_EXTRA:
        return "LATIN"
    if "\u0400" <= ch <= "\u04ff":
        return "CYRILLIC"
    return unicodedata.name(ch, "?").partition(" ")[0]


def _script_segments(word: str) -> list[tuple[str, str]]:
    """A word split where its script changes, each part with its script."""
    segments: list[tuple[str, str]] = []
    for ch in word:
        script = _script(ch)
        if segments and segments[-1][1] == script:
            segments[-1] = (segments[-1][0] + ch, script)
        else:
            segments.append((ch, script))
    return segments


def _cased_like_text(word: str) -> bool:
    """lower, UPPER, Title or CamelCase ("ФайлЭкспорт", "ЧаВо"); not "пРИВЕТ" (koi8-r
    read as cp1251), "оН" or "ЏаЁўҐв" (cp866 read as cp1251)."""
    if word.islower() or word.isupper():
        return True
    capitals = [i for i, ch in enumerate(word) if ch.isupper()]
    if any(i > 0 and word[i - 1].isupper() for i in capitals):
        return False
    if word[-1].isupper() and not word[0].isupper():
        return False
    return len(capitals) <= 1 + len(word) // 4
