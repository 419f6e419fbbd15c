"""Chunking measured in the embedding model's own tokens, so that no chunk is ever longer
than what the model embeds (all-MiniLM-L6-v2 silently truncates at 256 tokens; a default
tiktoken-sized chunk would lose half), with boundaries anchored on content so that an
edit re-chunks only its neighbourhood and every other chunk keeps its text (and with it
its cached vector)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.types import Piece, StageReport

Tokenize = Callable[[str], list[int]]

# A sentence ends at a run of terminal punctuation (plus closing quotes or brackets)
# followed by whitespace; a blank line always ends one.
_BREAK = re.compile(r"([.!?…]+[\"'”’»)\]]*)(\s+)|(\s*\n[^\S\n]*\n\s*)")
# Where a sentence longer than a chunk is cut, coarsest first: line breaks, clause
# punctuation, then any whitespace (words); a single over-long word is cut by length.
_SUBSPLITS = (
    re.compile(r"\s*\n\s*"),
    re.compile(r"(?<=[,;:])\s+"),
    re.compile(r"\s+"),
)
_OPENERS = "([{\"'«“‘¿¡"
# A period after one of these (lower-cased, trailing period dropped) does not end a
# sentence. Most abbreviations are followed by a lower-case word, which never starts a
# sentence here; these are the ones usually followed by a capital or a number.
_ABBREVIATIONS = frozenset(
    # en
    "mr mrs ms dr prof sr jr st mt ft vs etc fig figs no nos vol vols p pp ch sec eq "
    "approx dept est inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec "
    "e.g i.e cf al "
    # es
    "sra srta dra ud uds vd vds dña pág págs núm art cap av avda tel p.ej "
    # ru
    "г гг т д др пр см ср стр рис табл им ул д.р т.е т.д т.п т.к тыс млн млрд руб коп "
    "проф акад".split()
)


@dataclass(slots=True)
class _Unit:
    """A sentence (or a cut of an over-long one) of one element."""

    text: str
    sep: str  # the whitespace before it inside its element; "" for the element's first
    tokens: int
    element: int


def split_sentences(text: str) -> list[tuple[str, str]]:
    """`(whitespace before, sentence)` pairs of stripped `text`, in order; joining them
    gives `text` back. Sentences end at `.`, `!`, `?`, `…` (or runs such as `?!`, `...`)
    optionally followed by closing quotes or brackets, then whitespace, and at blank
    lines. Not a sentence end: a break followed by a lower-case letter (covers most
    abbreviations and Spanish `¿...? dijo`); a single period after a known abbreviation
    (`Dr.`, `Sra.`, `ул.`), an initial (`J.`), a dotted short form (`U.S.`, `т.е.`) or
    a one- or two-digit number opening the sentence (`1.` numbering a list item).
    Spanish `¿`/`¡` open a sentence like any other non-lower-case character.

    Example: ``split_sentences("Hola. ¿Qué tal? Bien.")`` gives
    ``[("", "Hola."), (" ", "¿Qué tal?"), (" ", "Bien.")]``."""
    out: list[tuple[str, str]] = []
    start, sep = 0, ""
    for match in _BREAK.finditer(text):
        if match.group(3) is not None:
            end, gap = match.start(), match.group(3)
        else:
            if not _ends_sentence(text, match, start):
                continue
            end, gap = match.end(1), match.group(2)
        if end > start:
            out.append((sep, text[start:end]))
            sep = gap
        else:
            sep += gap
        start = match.end()
    if start < len(text):
        out.append((sep, text[start:]))
    return out


def _ends_sentence(text: str, match: re.Match[str], start: int) -> bool:
    after = match.end()
    if after < len(text) and text[after].islower():
        return False
    if match.group(1).rstrip("\"'”’»)]") != ".":
        return True  # ?, !, …, or a run such as "..." or "?!"
    word = text[max(start, match.start() - 24) : match.start()].rsplit(None, 1)[-1:]
    if not word:
        return True
    token = word[0].lstrip(_OPENERS).lower()
    return not (
        token in _ABBREVIATIONS
        or (len(token) == 1 and token.isalpha())
        or ("." in token and len(token) <= 6)
        # "1." opening a sentence numbers a list item
        or (token.isdigit() and len(token) <= 2 and match.start() - len(word[0]) == start)
    )


def _anchor_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class SentenceChunker:
    """Packs the elements of one page, section and language into chunks of at most
    `chunk_size` model tokens, cutting between sentences where possible, at boundaries
    anchored on content so that an edit re-chunks only its neighbourhood.

    The rule, per run of consecutive elements sharing page, section and language (a
    change of any of them always ends a chunk, and overlap never crosses it):

    - **Units.** An element of at most `chunk_size` tokens is one unit, never split. A
      longer one is split on sentences (`split_sentences`) into parts packed greedily
      from the element's own start (the first up to `chunk_size` tokens, each later one
      up to what its overlap leaves), so its cuts depend on its text alone. A sentence
      longer than `chunk_size` is cut at line breaks, then after `,;:`, then between
      words, then inside a word (counted in the report as `hard_splits`).
    - **Packing.** Units join the current chunk while it stays within `chunk_size`; one
      that does not fit starts the next chunk.
    - **Anchors.** A chunk always ends right after an anchor element: one whose text
      hash (64-bit blake2b; stable across processes and releases, unlike `hash()`) is
      divisible by `ANCHOR_MODULUS`, and whose span - the elements after the previous
      element with a divisible hash, up to and including it - holds at least
      `ANCHOR_MIN_SPAN` times `chunk_size` tokens (so a heading or a one-liner never
      ends a chunk on its own). Both conditions depend only on the element and its
      span, never on where earlier chunks ended, so packing re-synchronises at the
      first anchor after an edit: the edit changes the chunks from the one holding it
      up to that anchor (the next one, if the edited element was the anchor), plus the
      next chunk's overlap if the edit reached the end of a chunk. Every other chunk
      keeps exactly its text.
    - **Overlap.** A chunk after the first of a run opens with the last whole sentences
      of the previous chunk's last unit, up to `chunk_overlap` tokens (none when that
      unit's last sentence alone is longer, as in llama-index's SentenceSplitter), fewer
      when its first unit needs the room. Because it comes from that one unit, the chunk
      after an anchor opens with text of the anchor element only.

    `ANCHOR_MODULUS = 2`, `ANCHOR_MIN_SPAN = 0.25`: about every second element may end
    a chunk, unless that would close a span of under a quarter chunk. Paragraphs run
    from a quarter of a chunk to several chunks, so chunks stay reasonably full: on
    generated English, Spanish and Russian prose (`api.bench.corpus`, chunk_size 200,
    overlap 32) the average chunk holds 85% of the tokens of plain greedy sentence
    packing (129 vs 152), while of about 400 single-paragraph replacements and
    insertions in long documents over 99% changed at most 3 chunks (a paragraph that
    grows past a chunk adds the chunks it now needs). A higher modulus or span gives
    fuller chunks and longer ripples.

    Each output piece carries `page_number`, `section`, `language` and `position`
    metadata and its exact `token_count`. Sentence counts are added up rather than each
    chunk re-counted, which is exact for tokenizers whose tokens never span whitespace
    (WordPiece and SentencePiece ones; a probe on first use checks); with any other,
    every chunk is re-counted and shed overlap, or is cut between words, if it went over.

    Example::

        chunker = SentenceChunker(embedder.tokenize, chunk_size=200, chunk_overlap=32,
                                  max_tokens=embedder.max_tokens)
        chunker.warm_up()  # optional: loads the tokenizer
        chunks = chunker(cleaned_elements, report)
    """

    name = "chunk"
    ANCHOR_MODULUS = 2
    ANCHOR_MIN_SPAN = 0.25

    def __init__(
        self, tokenize: Tokenize, *, chunk_size: int, chunk_overlap: int, max_tokens: int
    ) -> None:
        if chunk_size > max_tokens:
            raise ValueError(
                f"chunk_size {chunk_size} exceeds the embedding model's limit of {max_tokens} "
                "tokens; the rest of each chunk would be silently truncated"
            )
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size); got {chunk_overlap}")
        self.tokenize = tokenize
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_tokens = max_tokens
        self._additive: bool | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {
            "splitter": "anchored-sentence",
            "version": 2,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "unit": "model tokens",
            "anchor_hash": "blake2b-64",
            "anchor_modulus": self.ANCHOR_MODULUS,
            "anchor_min_span": self.ANCHOR_MIN_SPAN,
        }

    def warm_up(self) -> None:
        """Loads the tokenizer and probes it (see the class doc); cheap once done."""
        self._is_additive()

    def _is_additive(self) -> bool:
        """Whether whitespace-joined texts tokenize to the texts' tokens, joined."""
        if self._additive is None:
            a, b = "Lava flows, cools and cracks.", "¿Dónde está el faro? Маяк у гавани."
            ta, tb = self.tokenize(a), self.tokenize(b)
            self._additive = all(self.tokenize(a + gap + b) == ta + tb for gap in (" ", "\n\n"))
        return self._additive

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        additive = self._is_additive()
        out: list[Piece] = []
        for texts, meta in self._groups(pieces):
            for units, n_overlap in self._pack(texts, report):
                for text, count in self._finish(units, n_overlap, additive, report):
                    out.append(
                        Piece(text=text, metadata={**meta, "position": len(out)}, token_count=count)
                    )
        report.add(self.name, "chunks", len(out))
        return out

    def _groups(self, pieces: list[Piece]) -> list[tuple[list[str], dict[str, Any]]]:
        groups: list[tuple[list[str], dict[str, Any]]] = []
        for piece in pieces:
            text = piece.text.strip()
            if not text:
                continue
            meta = {
                "page_number": piece.metadata.get("page_number"),
                "section": piece.metadata.get("section"),
                "language": piece.metadata.get("language"),
            }
            if groups and groups[-1][1] == meta:
                groups[-1][0].append(text)
            else:
                groups.append(([text], meta))
        return groups

    # -- packing ---------------------------------------------------------------------

    def _pack(self, texts: list[str], report: StageReport) -> list[tuple[list[_Unit], int]]:
        """One run's chunks as (units, how many leading units are overlap)."""
        size = self.chunk_size
        min_span = self.ANCHOR_MIN_SPAN * size
        chunks: list[tuple[list[_Unit], int]] = []
        current: list[_Unit] = []
        n_overlap = tokens = body = span = 0  # body: units after the overlap
        last_block: list[_Unit] = []
        for index, text in enumerate(texts):
            units = self._units(text, index, report)
            total = sum(u.tokens for u in units)
            for block in [units] if total <= size else self._parts(units):
                block_tokens = sum(u.tokens for u in block)
                if body and tokens + block_tokens > size:
                    chunks.append((current, n_overlap))
                    body = 0
                if not body:
                    current = self._overlap(last_block, size - block_tokens) if chunks else []
                    n_overlap = len(current)
                    tokens = sum(u.tokens for u in current)
                current.extend(block)
                tokens += block_tokens
                body += len(block)
                last_block = block
            span += total
            if _anchor_hash(text) % self.ANCHOR_MODULUS == 0:
                if span >= min_span:
                    chunks.append((current, n_overlap))
                    body = 0
                span = 0
        if body:
            chunks.append((current, n_overlap))
        return chunks

    def _parts(self, units: list[_Unit]) -> list[list[_Unit]]:
        """An over-long element's units, packed greedily: the first part up to
        `chunk_size` tokens, each later one up to what its overlap leaves."""
        parts: list[list[_Unit]] = []
        current: list[_Unit] = []
        tokens, budget = 0, self.chunk_size
        for unit in units:
            if current and tokens + unit.tokens > budget:
                parts.append(current)
                overlap = self._overlap(current, self.chunk_size)
                budget = self.chunk_size - sum(u.tokens for u in overlap)
                current, tokens = [], 0
            current.append(unit)
            tokens += unit.tokens
        parts.append(current)
        return parts

    def _overlap(self, block: list[_Unit], room: int) -> list[_Unit]:
        """The last whole units of `block` within `chunk_overlap` and `room` tokens."""
        limit = min(self.chunk_overlap, room)
        taken = 0
        start = len(block)
        while start > 0 and taken + block[start - 1].tokens <= limit:
            start -= 1
            taken += block[start].tokens
        return block[start:]

    def _units(self, text: str, element: int, report: StageReport) -> list[_Unit]:
        units: list[_Unit] = []
        for sep, sentence in split_sentences(text):
            count = len(self.tokenize(sentence))
            if count <= self.chunk_size:
                units.append(_Unit(sentence, sep, count, element))
            else:
                report.add(self.name, "hard_splits")
                units.extend(self._cut(sep, sentence, count, element, self.chunk_size, 0))
        return units

    def _cut(
        self, sep: str, text: str, count: int, element: int, budget: int, level: int
    ) -> list[_Unit]:
        """`text` as units of at most `budget` tokens, split at the coarsest separator
        that splits it, recursively; a single over-long word is cut into pieces joined
        by a space."""
        if count <= budget:
            return [_Unit(text, sep, count, element)]
        if level == len(_SUBSPLITS):
            return self._cut_word(sep, text, element, budget)
        pieces = _split_keep(text, _SUBSPLITS[level])
        if len(pieces) == 1:
            return self._cut(sep, text, count, element, budget, level + 1)
        out: list[_Unit] = []
        for i, (gap, piece) in enumerate(pieces):
            n = len(self.tokenize(piece))
            out.extend(self._cut(sep if i == 0 else gap, piece, n, element, budget, level + 1))
        return out

    def _cut_word(self, sep: str, word: str, element: int, budget: int) -> list[_Unit]:
        out: list[_Unit] = []
        while True:
            n = len(self.tokenize(word))
            if n <= budget:
                out.append(_Unit(word, sep, n, element))
                return out
            lo, hi = 1, len(word) - 1  # the longest prefix within budget, by bisection
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if len(self.tokenize(word[:mid])) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            out.append(_Unit(word[:lo], sep, len(self.tokenize(word[:lo])), element))
            word, sep = word[lo:], " "

    # -- output ----------------------------------------------------------------------

    def _finish(
        self, units: list[_Unit], n_overlap: int, additive: bool, report: StageReport
    ) -> list[tuple[str, int]]:
        if additive:
            return [(_join(units), sum(u.tokens for u in units))]
        # Counts that do not add up: count exactly, shed overlap, then cut between
        # words, re-counting each candidate, if the chunk is still too long.
        for start in range(n_overlap + 1):
            text = _join(units[start:])
            count = len(self.tokenize(text))
            if count <= self.chunk_size:
                return [(text, count)]
        report.add(self.name, "hard_splits")
        words = self._cut("", text, count, 0, self.chunk_size, len(_SUBSPLITS) - 1)
        texts: list[str] = []
        current: list[_Unit] = []
        for word in words:
            if current and len(self.tokenize(_join([*current, word]))) > self.chunk_size:
                texts.append(_join(current))
                current = []
            current.append(word)
        texts.append(_join(current))
        return [(text, len(self.tokenize(text))) for text in texts]


def _split_keep(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """`(separator before, piece)` pairs of `text` split at `pattern`."""
    out: list[tuple[str, str]] = []
    start, gap = 0, ""
    for match in pattern.finditer(text):
        if match.start() > start:
            out.append((gap, text[start : match.start()]))
        gap = match.group()
        start = match.end()
    if start < len(text):
        out.append((gap, text[start:]))
    return out


def _join(units: list[_Unit]) -> str:
    parts: list[str] = []
    previous = None
    for unit in units:
        if previous is not None:
            parts.append(unit.sep if unit.element == previous else "\n\n")
        parts.append(unit.text)
        previous = unit.element
    return "".join(parts).strip()
