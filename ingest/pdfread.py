"""A rule-based PDF text reader on PDFium (pypdfium2): PDF bytes in, `Piece`s out.

Why this exists: speed. unstructured's `partition_pdf(strategy="fast")` runs pdfminer's
layout analysis in Python and classifies every element with NLP heuristics: 140-200 ms
for a 600-word, 2-page PDF. PDFium extracts the characters in C++; the rules below turn
its lines into paragraphs, in 5-7 ms for the same PDF (about 20x faster).

Every piece carries exactly `category` ("Title", "NarrativeText" or "ListItem"),
`page_number` (1-based) and `section` (the text of the nearest Title at or above it,
across pages, else None), as the unstructured path does; the caller adds `language`.

Lines (`_PageReader`): PDFium lists a page's characters in content-stream order and ends
a line where the next text object is not on the same line. Each line keeps its loose
box (the union of its words' first and last characters' font boxes: PDFium puts a space
into any gap inside a line), its baseline and its font size: the medians over its
first, middle and last characters of their origins and of their effective sizes (Tf
size times the text and CTM scale), so one superscript or odd glyph does not decide
them. PDFium joins two lines at a line-end hyphen it recognises;
they are split again there. All text PDFium extracts is read, invisible text (the OCR
layer of a scanned page) included.

Text: kept as PDFium maps it (ToUnicode, encodings), except that runs of whitespace
become one space; control characters (C0 and C1, NUL included), lone surrogates and
unmapped characters (code 0) are dropped; dot leaders drawn dot by dot (". . . . .")
lose the spaces PDFium puts between the dots. Ligatures stay (the cleaner's NFKC splits
them). Nothing else is dropped, except a list item's bullet (below).

Columns (`_split_columns`): a line is cut at a horizontal gap of at least `_GAP_EM`
(1.5 em) when it is a gutter, i.e. at least `_GUTTER_LINES` (3) lines of the page have a
gap at the same place (at the gap's left edge, middle or right edge), or when the gap is
at least `_WIDE_GAP_EM` (3 em) wide; never right after a leading bullet, list number or
section number ("•", "3)", "2.1", "A.1"). PDFium joins text drawn row by row across two
columns into one line: the cut keeps the columns apart. Table rows are cut at their
column gaps too, so a table reads column by column, as pdfminer's boxes read it.

Paragraphs (`_Layout._blocks`), page by page in content-stream order: a line continues
one of the page's `_OPEN_BLOCKS` (16) most recent paragraphs when it is

- the rest of that paragraph's last line: overlapping its vertical band by half, and
  starting just right of its end (at most 1 em away), whatever its size (a superscript,
  a word in another font PDFium put on a line of its own); or
- the next line below its last line: font size within 5%, baseline lower by at most the
  line pitch for that size plus a quarter em, overlapping the paragraph horizontally, and
  not a first-line indent (starting over 1 em right of the paragraph's left edge after a
  line that ends a sentence).

The line pitch is learned per document and font size (half-point steps): the most
frequent baseline distance between a line and the nearest line above it in its column
where the upper line does not end a sentence and the lower one starts with a lower-case
letter (a wrapped sentence; the smallest pitch at least half as frequent as the most
frequent one wins), else 1.25 em. So a gap clearly larger than the line spacing, a
change of font size, another column (no horizontal overlap, or higher up) and a list
marker all start a new paragraph, and double-spaced text still reads in paragraphs.
Because a line may continue any of the recent paragraphs, two columns drawn row by row
come out as two paragraphs, one after the other, never interleaved. Paragraphs come out
in the order their first lines appear in the content stream: there is no geometric
re-sorting, so a page whose content stream runs out of reading order reads that way.

Joining a paragraph's lines: with a space, except at a hyphen that breaks a word: a line
ending in a letter and a hyphen (`-`, U+2010, or a soft hyphen U+00AD) followed by a line
starting with a letter or digit is joined without a space. The hyphen is dropped when it
is a soft hyphen, or when the letters on both sides are lower case and the joined word
("example" from "exam-" + "ple") occurs elsewhere in the document; otherwise it stays
("well-known", "COVID-19", and "inter-national" in a document that never spells
"international"). A compound is never glued into a non-word and no letter is lost; the
price is a kept soft-break hyphen in words the document uses only once.

Categories:

- "ListItem": the paragraph's first line starts with a bullet (`-`, `*`, `+` and a space,
  or one of `•◦▪‣●○■□`, or Word's Symbol/Wingdings bullets U+F0B7, U+F0A7, U+F0D8,
  U+F076, U+F0FC) or a number (1-3 digits, `.` or `)`, a space); its wrapped lines join
  it. The bullet is dropped from the text, a number kept (as unstructured and
  `ingest.textread` do).
- "Title": the paragraph's font size (its first line's) is at least `TITLE_SIZE_RATIO`
  (1.15) times the document's body size (the size of most characters, in half-point
  steps), and its text has at most `TITLE_MAX_WORDS` (12) words, at least two non-space
  characters, a letter, no dot leader ("....", a table of contents entry), and does not
  end with sentence or clause punctuation (`.` `!` `?` `…` `:` `;` `,`, looked at past
  closing quotes and brackets). A numbered heading ("1. Introduction") in such a font is
  a Title, not a ListItem; a bold line at body size is not a Title.
- "NarrativeText": everything else.

Deliberate differences from unstructured's fast strategy (pdfminer + NLP classification):

- No "Header", "Footer", "UncategorizedText", and no "Title" guessed from wording:
  unstructured calls a page's first element a "Header" when it sits near the top edge,
  which the cleaner then drops (on the bench corpus: every document's title line and
  the first paragraph of its second page, 39 of 328 pieces), and calls sentences like
  "Contact Maria Lopez at ... for details." a "Title". Here a short line at body size
  is narrative; running heads and page numbers are left to the cleaner's repeated-line
  rule.
- Hyphenated line ends are joined (above); unstructured gives "exam- ple".
- One piece per list item; pdfminer often merges consecutive items into one.
- Paragraph boundaries come from the rules above; pdfminer groups lines by its own
  proximity rules, which now and then split or merge differently (same text).
- Text PDFium maps better or differently: "(cid:13)" placeholders for unmapped glyphs are
  not produced; dot leaders come out as "....".
- Damaged files PDFium repairs are read: with a cross-reference table whose offsets are
  all wrong, unstructured reported "no extractable text"; files cut short before the
  cross-reference table fail the same way in both.

Failures raise `ingest.formats.FormatError` with the parse stage's wording
(`ingest.parse._pdf_problem`): a PDF that needs a password, or whose security handler
PDFium cannot open, is "password-protected"; one PDFium cannot open is "not a valid PDF
(file is truncated or corrupt)", as is one none of whose pages loads; one without pages
says so. A page that fails to load while others load is skipped (a warning is logged).
A PDF whose pages hold no text (a scan without OCR layer) gives an empty list.

Resources and threads: every page, text page and document is closed in `finally`
blocks, on errors too, so a long-lived worker does not leak PDFium memory; the bytes
stay referenced while the document is open. PDFium is not thread-safe: every PDFium call
runs under one module-level lock (`_LOCK`), held while a document's lines are read;
grouping them into paragraphs runs outside it. Other code calling pypdfium2 in the same
process does not take this lock and must not run concurrently. pypdfium2 is imported on
first use (loading and initialising PDFium takes about 50 ms).

Hostile input: no recursion; the work is linear in the number of characters (one PDFium
call per character, one more per word's first and last, a few per line) and lines (each
compared with at most 16 earlier lines or paragraphs), plus sorting a page's gaps;
strings are built by joining, never by repeated concatenation. Parsing the file is
PDFium's (C++): run untrusted files under `ingest.isolate` for time and memory limits.
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import logging
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from core.types import Piece
from ingest.formats import FormatError

# Part of the parse stage's cache key: bump it when a rule changes what pieces come out.
PDF_READER_VERSION = "1"

TITLE = "Title"
NARRATIVE = "NarrativeText"
LIST_ITEM = "ListItem"

# Title rule (see the module docstring).
TITLE_MAX_WORDS = 12
TITLE_SIZE_RATIO = 1.15

LOCKED = "the PDF is password-protected; upload an unencrypted copy"
CORRUPT = "not a valid PDF (file is truncated or corrupt)"
NO_PAGES = "not a valid PDF (it has no pages)"

logger = logging.getLogger(__name__)

# One lock for every PDFium call in this process (PDFium is not thread-safe).
_LOCK = threading.Lock()

# A gap between characters of a line at least this wide (in em) may cut it (a gutter);
# one at least `_WIDE_GAP_EM` wide always does.
_GAP_EM = 1.5
_WIDE_GAP_EM = 3.0
# Lines of a page with a gap at the same place make it a gutter.
_GUTTER_LINES = 3
# A line may continue one of this many most recent paragraphs of its page.
_OPEN_BLOCKS = 16
# Font sizes within this fraction are the same size.
_SIZE_TOLERANCE = 0.05
# Line pitch: allowed excess over the document's pitch (em), default pitch (em).
_PITCH_SLACK_EM = 0.25
_DEFAULT_PITCH_EM = 1.25
# The rest of a line: at most this far (em) to the right of the line's end.
_SAME_LINE_GAP_EM = 1.0
# First-line indent (em) that starts a new paragraph after a sentence end.
_INDENT_EM = 1.0

_TERMINAL = frozenset(".!?…:;,。！？")
_SENTENCE_END = frozenset(".!?…:。！？")
_CLOSING = "\"'”’»)]}"
_ASCII_BULLETS = "-*+"
_UNICODE_BULLETS = "•◦▪‣●○■□\uf0b7\uf0a7\uf0d8\uf076\uf0fc"
_HYPHENS = "-\u2010\u00ad"
_SOFT_HYPHEN = "\u00ad"
# Whitespace above ASCII; each becomes a plain space.
_SPACE_CODES = frozenset(
    [0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, *range(0x2000, 0x200B)]
)
_WORD = re.compile(r"\w+")
# A list or section label a line may start with: "2", "2.1.3", "A.1", "(a)", "iv.", "3)".
_LABEL = re.compile(r"[(\[]?(?:[0-9]{1,3}|[A-Za-z]|[ivxIVX]{1,5})(?:\.[0-9]{1,3})*[.):\]]?")
# Dot leaders drawn dot by dot (PDFium puts a space between the dots): ". . . . ."
_SPACED_DOTS = re.compile(r"\.(?: \.){3,}")
_CR, _LF, _TAB, _SPACE, _PDFIUM_HYPHEN = 13, 10, 9, 32, 2


@dataclass(slots=True)
class _Line:
    """One line (or a column's part of one) as PDFium placed it, in PDF points (y up)."""

    text: str
    left: float
    bottom: float
    right: float
    top: float
    base: float  # baseline
    size: float  # effective font size
    # Gaps of at least `_GAP_EM` inside the line: (text offset, gap left, gap right).
    gaps: list[tuple[int, float, float]] = field(default_factory=list)


@dataclass(slots=True)
class _Block:
    """A paragraph being built: its lines and horizontal extent."""

    lines: list[_Line]
    left: float
    right: float


def read_pdf(data: bytes) -> list[Piece]:
    """Pieces of a PDF document, paragraph by paragraph in reading order (rules in the
    module docstring). A PDF without text (scanned pages) gives an empty list.

    Raises `FormatError` when the PDF is locked by a password, damaged beyond repair or
    has no pages.
    """
    pages = _extract(bytes(data))
    return _Layout(pages).pieces()


# ---------------------------------------------------------------- PDFium


@functools.cache
def _pdfium() -> Any:
    import pypdfium2.raw as pdfium_c  # the package import initialises PDFium

    return pdfium_c


def _extract(data: bytes) -> list[list[_Line]]:
    """Each page's lines, under the lock; every PDFium handle is closed on the way out."""
    lib = _pdfium()
    with _LOCK:
        document = lib.FPDF_LoadMemDocument64(data, len(data), None)
        if not document:
            raise FormatError(_load_error(lib, lib.FPDF_GetLastError()))
        try:
            count = lib.FPDF_GetPageCount(document)
            if count <= 0:
                raise FormatError(NO_PAGES)
            pages: list[list[_Line]] = []
            failed = 0
            for index in range(count):
                lines = _read_page(lib, document, index)
                if lines is None:
                    failed += 1
                    lines = []
                pages.append(lines)
        finally:
            lib.FPDF_CloseDocument(document)
    if failed == count:
        raise FormatError(CORRUPT)
    if failed:
        logger.warning("skipped %d of %d PDF pages that could not be loaded", failed, count)
    return pages


def _load_error(lib: Any, code: int) -> str:
    if code in (lib.FPDF_ERR_PASSWORD, lib.FPDF_ERR_SECURITY):
        return LOCKED
    return CORRUPT


def _read_page(lib: Any, document: Any, index: int) -> list[_Line] | None:
    """The page's lines, or None when PDFium cannot load the page."""
    page = lib.FPDF_LoadPage(document, index)
    if not page:
        return None
    try:
        textpage = lib.FPDFText_LoadPage(page)
        if not textpage:
            return None
        try:
            return _PageReader(lib, textpage).lines()
        finally:
            lib.FPDFText_ClosePage(textpage)
    finally:
        lib.FPDF_ClosePage(page)


class _PageReader:
    """One pass over a text page's characters: each character's code, the box of each
    word's first and last characters (a word's inner characters touch: PDFium puts a
    space into any gap), and sizes and baselines of three characters per line."""

    def __init__(self, lib: Any, textpage: Any) -> None:
        self.lib = lib
        self.textpage = textpage
        self.rect = lib.FS_RECTF()
        self.rect_ref = ctypes.byref(self.rect)
        self.matrix = lib.FS_MATRIX()
        self.x = ctypes.c_double()
        self.y = ctypes.c_double()
        self.out: list[_Line] = []
        self._reset()

    def _reset(self) -> None:
        self.text: list[str] = []
        self.indices: list[int] = []  # character indices of the non-space characters
        self.gaps: list[tuple[int, float, float]] = []
        self.left = self.bottom = self.right = self.top = 0.0
        self.gap_limit = 0.0

    def lines(self) -> list[_Line]:
        lib, textpage = self.lib, self.textpage
        count = lib.FPDFText_CountChars(textpage)
        get_unicode = lib.FPDFText_GetUnicode
        get_box = lib.FPDFText_GetLooseCharBox
        rect, rect_ref = self.rect, self.rect_ref
        text, indices = self.text, self.indices
        space = False
        pending = -1  # the last character read, when inside a word (its box not read)
        for index in range(count):
            code = get_unicode(textpage, index)
            if code <= _SPACE:
                if code in (_SPACE, _TAB):
                    space = True
                    continue
                if code in (_CR, _LF):
                    self._end(pending)
                elif code == _PDFIUM_HYPHEN and lib.FPDFText_IsHyphen(textpage, index) == 1:
                    # PDFium's mark for a hyphen at a line end: it joins the two lines.
                    if text:
                        text.append("-")
                    self._end(pending)
                else:
                    continue  # other control characters are dropped
                text, indices, space, pending = self.text, self.indices, False, -1
                continue
            if code in _SPACE_CODES:
                space = True
                continue
            if 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                continue  # DEL, C1 controls, lone surrogates, not a code point
            if text and not space:
                text.append(chr(code))
                indices.append(index)
                pending = index
                continue
            # The first character of a word.
            if pending >= 0:
                self._extend(pending)
                pending = -1
            get_box(textpage, index, rect_ref)
            left, bottom, right, top = rect.left, rect.bottom, rect.right, rect.top
            if not text:
                self._start(index, left, bottom, right, top)
                text.append(chr(code))
                space = False
                continue
            gap = left - self.right
            if gap >= self.gap_limit:
                self.gaps.append((len(text), self.right, left))
            text.append(" ")
            text.append(chr(code))
            indices.append(index)
            space = False
            self._extend_box(left, bottom, right, top)
        self._end(pending)
        return self.out

    def _extend(self, index: int) -> None:
        """Take a character's box into the line's."""
        rect = self.rect
        self.lib.FPDFText_GetLooseCharBox(self.textpage, index, self.rect_ref)
        self._extend_box(rect.left, rect.bottom, rect.right, rect.top)

    def _extend_box(self, left: float, bottom: float, right: float, top: float) -> None:
        if left < self.left:
            self.left = left
        if right > self.right:
            self.right = right
        if bottom < self.bottom:
            self.bottom = bottom
        if top > self.top:
            self.top = top

    def _start(self, index: int, left: float, bottom: float, right: float, top: float) -> None:
        self.indices.append(index)
        self.left, self.bottom, self.right, self.top = left, bottom, right, top
        size = self._size(index)
        if size <= 0:  # a negative or zero Tf size: the glyph box's height instead
            size = max(top - bottom, 1.0)
        # A first guess: `_split_columns` checks each gap against the line's own size.
        self.gap_limit = _GAP_EM * size

    def _end(self, pending: int) -> None:
        """Close the line; `pending`: its last character when its box is still unread."""
        if pending >= 0:
            self._extend(pending)
        if self.text:
            box = (self.left, self.bottom, self.right, self.top)
            if not all(math.isfinite(v) for v in box):
                box = (0.0, 0.0, 0.0, 0.0)  # PDFium clamps coordinates; just in case
            indices = self.indices
            samples = (indices[0], indices[len(indices) // 2], indices[-1])
            sizes = sorted(size for size in map(self._size, samples) if size > 0)
            size = sizes[len(sizes) // 2] if sizes else max(box[3] - box[1], 1.0)
            bases = sorted(base for base in map(self._origin_y, samples) if math.isfinite(base))
            base = bases[len(bases) // 2] if bases else box[1]
            self.out.append(_Line("".join(self.text), *box, base, size, self.gaps))
        self._reset()

    def _origin_y(self, index: int) -> float:
        """A character's baseline (its origin's y), NaN when PDFium has none."""
        if self.lib.FPDFText_GetCharOrigin(self.textpage, index, self.x, self.y):
            return float(self.y.value)
        return math.nan

    def _size(self, index: int) -> float:
        """Effective font size of a character: its Tf size times the matrix scale."""
        lib = self.lib
        size = float(lib.FPDFText_GetFontSize(self.textpage, index))
        m = self.matrix
        if lib.FPDFText_GetMatrix(self.textpage, index, m):
            scale = math.sqrt(abs(m.a * m.d - m.b * m.c))
            if scale > 0 and math.isfinite(scale):
                size *= scale
        return size if math.isfinite(size) else 0.0


# ---------------------------------------------------------------- layout


def _bucket(size: float) -> float:
    return round(size * 2) / 2


def _same_size(a: float, b: float) -> bool:
    return abs(a - b) <= _SIZE_TOLERANCE * max(a, b)


def _overlaps(line: _Line, left: float, right: float) -> bool:
    return line.left <= right and line.right >= left


def _list_item(text: str) -> str | None:
    """The item's text when `text` starts a list item (bullet dropped), else None."""
    first = text[0]
    if first in _ASCII_BULLETS:
        return text[2:].strip() if text[1:2] == " " else None
    if first in _UNICODE_BULLETS:
        return text[1:].strip()
    digits = 0
    while digits < len(text) and digits < 4 and "0" <= text[digits] <= "9":
        digits += 1
    if 1 <= digits <= 3 and text[digits : digits + 2] in (". ", ") "):
        return text
    return None


def _is_label(text: str) -> bool:
    """A lone bullet, list number or section number: "•", "-", "12.", "3)", "2.1"."""
    text = text.strip()
    if len(text) == 1 and (text in _UNICODE_BULLETS or text in _ASCII_BULLETS):
        return True
    return len(text) <= 12 and _LABEL.fullmatch(text) is not None


def _ends_sentence(text: str) -> bool:
    end = text.rstrip().rstrip(_CLOSING)
    return bool(end) and end[-1] in _SENTENCE_END


def _wraps(above: str, below: str) -> bool:
    """Whether two lines read as one sentence wrapped: no sentence end above, a lower-case
    letter below. Only such pairs teach the line pitch, so lines that are paragraphs of
    their own (headings, spaced lists) do not pass their gaps off as line spacing."""
    return not _ends_sentence(above) and below[:1].islower()


def _is_title_text(text: str) -> bool:
    if len(text) > 400 or len(text.split()) > TITLE_MAX_WORDS:
        return False
    if len(text.replace(" ", "")) < 2 or not any(c.isalpha() for c in text):
        return False
    if "...." in text:
        return False  # a table of contents entry
    end = text.rstrip(_CLOSING)
    return bool(end) and end[-1] not in _TERMINAL


def _unspaced(match: re.Match[str]) -> str:
    return match.group().replace(" ", "")


def _split_columns(lines: list[_Line]) -> list[_Line]:
    """Cut lines at gutters and very wide gaps (see the module docstring)."""
    for line in lines:
        if line.gaps:
            line.gaps = [g for g in line.gaps if g[2] - g[1] >= _GAP_EM * line.size]
    lefts = sorted(gap[1] for line in lines for gap in line.gaps)
    if not lefts:
        return lines
    rights = sorted(gap[2] for line in lines for gap in line.gaps)

    def covering(x: float) -> int:
        # Gaps with left <= x <= right: all that start by x, less those ended before it.
        return bisect.bisect_right(lefts, x) - bisect.bisect_left(rights, x)

    out: list[_Line] = []
    for line in lines:
        cuts = [
            (offset, left, right)
            for offset, left, right in line.gaps
            if right - left >= _WIDE_GAP_EM * line.size
            or any(
                covering(x) >= _GUTTER_LINES
                for x in (left + 0.25, (left + right) / 2, right - 0.25)
            )
        ]
        if not cuts:
            out.append(line)
            continue
        start, start_x = 0, line.left
        for offset, left, right in cuts:
            part = line.text[start:offset]
            if start == 0 and _is_label(part):
                continue  # a bullet or number and its text stay together
            out.append(_part(line, part, start_x, left))
            start, start_x = offset, right
        out.append(_part(line, line.text[start:], start_x, line.right))
    return [line for line in out if line.text]


def _part(line: _Line, text: str, left: float, right: float) -> _Line:
    return _Line(text.strip(), left, line.bottom, right, line.top, line.base, line.size)


class _Layout:
    """Paragraphs of all pages: document-wide statistics (body size, line pitch), then
    each page's lines grouped into blocks and classified."""

    def __init__(self, pages: list[list[_Line]]) -> None:
        self.pages = [_split_columns(lines) for lines in pages]
        self.body = self._body_size()
        self.pitches = self._line_pitches()
        self._vocabulary: set[str] | None = None

    def pieces(self) -> list[Piece]:
        pieces: list[Piece] = []
        section: str | None = None
        for number, lines in enumerate(self.pages, start=1):
            for block in self._blocks(lines):
                category, text = self._classify(block)
                if not text:
                    continue
                if category == TITLE:
                    section = text
                pieces.append(
                    Piece(
                        text=text,
                        metadata={"category": category, "page_number": number, "section": section},
                    )
                )
        return pieces

    def _body_size(self) -> float:
        weight: dict[float, int] = {}
        for lines in self.pages:
            for line in lines:
                key = _bucket(line.size)
                weight[key] = weight.get(key, 0) + len(line.text)
        return max(weight, key=lambda k: (weight[k], -k)) if weight else 0.0

    def _line_pitches(self) -> dict[float, float]:
        """Per size bucket, the usual baseline distance between a paragraph's lines: each
        line against the nearest earlier line of its page above it in its column."""
        counts: dict[float, dict[float, int]] = {}
        for lines in self.pages:
            for number, below in enumerate(lines):
                size = below.size
                for above in reversed(lines[max(0, number - _OPEN_BLOCKS) : number]):
                    if not _overlaps(below, above.left, above.right):
                        continue
                    pitch = above.base - below.base
                    if (
                        _same_size(above.size, size)
                        and 0.5 * size < pitch <= 3 * size
                        and _wraps(above.text, below.text)
                    ):
                        by_pitch = counts.setdefault(_bucket(size), {})
                        key = round(pitch * 2) / 2
                        by_pitch[key] = by_pitch.get(key, 0) + 1
                    break
        pitches: dict[float, float] = {}
        for bucket, by_pitch in counts.items():
            most = max(by_pitch.values())
            if most < 2:
                continue
            # The smallest frequent pitch: paragraph gaps are larger and rarer.
            pitches[bucket] = min(p for p, n in by_pitch.items() if 2 * n >= most)
        return pitches

    def _max_pitch(self, size: float) -> float:
        pitch = self.pitches.get(_bucket(size), _DEFAULT_PITCH_EM * size)
        return pitch + max(_PITCH_SLACK_EM * size, 1.0)

    def _blocks(self, lines: list[_Line]) -> list[_Block]:
        blocks: list[_Block] = []
        recent: list[_Block] = []
        for line in lines:
            target = None
            if _list_item(line.text) is None:
                for block in reversed(recent):
                    if self._continues(block, line):
                        target = block
                        break
            if target is None:
                target = _Block([line], line.left, line.right)
                blocks.append(target)
            else:
                target.lines.append(line)
                target.left = min(target.left, line.left)
                target.right = max(target.right, line.right)
                recent.remove(target)
            recent.append(target)
            if len(recent) > _OPEN_BLOCKS:
                del recent[0]
        return blocks

    def _continues(self, block: _Block, line: _Line) -> bool:
        last = block.lines[-1]
        em = max(last.size, line.size)
        # The rest of the last line (PDFium broke it: a superscript, objects out of order).
        band = min(last.top, line.top) - max(last.bottom, line.bottom)
        if (
            band >= 0.5 * min(last.top - last.bottom, line.top - line.bottom)
            and last.right - 0.25 * em <= line.left <= last.right + _SAME_LINE_GAP_EM * em
        ):
            return True
        if not _same_size(last.size, line.size):
            return False
        pitch = last.base - line.base
        if pitch < 0.5 * em or pitch > self._max_pitch(line.size):
            return False
        if not _overlaps(line, block.left, block.right):
            return False
        return not (line.left > block.left + _INDENT_EM * em and _ends_sentence(last.text))

    def _classify(self, block: _Block) -> tuple[str, str]:
        text = self._join(block.lines)
        if not text:
            return NARRATIVE, ""
        item = _list_item(text)
        size = block.lines[0].size
        # A numbered heading ("1. Introduction") is a title; a bulleted line never is.
        large = self.body > 0 and size >= TITLE_SIZE_RATIO * self.body
        if large and item in (None, text) and _is_title_text(text):
            return TITLE, text
        if item is not None:
            return LIST_ITEM, item
        return NARRATIVE, text

    def _join(self, lines: list[_Line]) -> str:
        """A paragraph's lines as one line (hyphen rule in the module docstring)."""
        out: list[str] = []  # line texts and the separators between them
        for line in lines:
            text = " ".join(line.text.split())
            if not text:
                continue
            if ". . . ." in text:
                text = _SPACED_DOTS.sub(_unspaced, text)
            if out:
                last = out[-1]
                if (
                    len(last) >= 2
                    and last[-1] in _HYPHENS
                    and last[-2].isalpha()
                    and (text[0].isalpha() or text[0].isdigit())
                ):
                    if self._drop_hyphen(last, text):
                        out[-1] = last[:-1]
                else:
                    out.append(" ")
            out.append(text)
        return "".join(out)

    def _drop_hyphen(self, before: str, after: str) -> bool:
        """Whether the hyphen ending `before` is a soft break of one word."""
        if before[-1] == _SOFT_HYPHEN:
            return True
        if not (before[-2].islower() and after[0].islower()):
            return False
        head = _WORD.findall(before[-100:-1])
        tail = _WORD.match(after)
        return bool(head and tail) and (head[-1] + tail.group()).casefold() in self._words()

    def _words(self) -> set[str]:
        """Every word of the document, casefolded (for the hyphen rule)."""
        if self._vocabulary is None:
            self._vocabulary = {
                word.casefold()
                for lines in self.pages
                for line in lines
                for word in _WORD.findall(line.text)
            }
        return self._vocabulary
