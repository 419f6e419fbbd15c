"""Cleaning stages: normalise text before redaction, drop duplicate chunks after chunking."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from core.types import Piece, StageReport

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def normalise_text(text: str, form: str = "NFKC") -> str:
    """Unicode form (NFKC by default), no control or zero-width characters, single
    spaces, at most one blank line."""
    if form != "none":
        text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class Cleaner:
    """Normalises each element's text and drops elements left empty.

    Example: ``Cleaner()([Piece("  a\\u00a0 b ")], report)`` → ``[Piece("a b")]``.
    """

    name = "clean"

    def __init__(self, unicode_normalization: str = "NFKC") -> None:
        if unicode_normalization not in {"NFKC", "NFC", "none"}:
            raise ValueError(
                f"unicode_normalization must be NFKC, NFC or none, got {unicode_normalization!r}"
            )
        self.form = unicode_normalization

    @property
    def config(self) -> dict[str, Any]:
        return {"unicode": self.form, "whitespace": "collapse"}

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        out: list[Piece] = []
        for piece in pieces:
            text = normalise_text(piece.text, self.form)
            if not text:
                report.add(self.name, "empty_elements_dropped")
                continue
            out.append(Piece(text=text, metadata=dict(piece.metadata)))
        return out


class ExactDeduplicator:
    """Removes chunks whose normalised text repeats an earlier chunk of the same revision
    (repeated disclaimers, boilerplate paragraphs), so they are embedded and ranked once."""

    name = "dedupe"

    @property
    def config(self) -> dict[str, Any]:
        return {"mode": "exact", "key": "casefolded text"}

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        seen: set[str] = set()
        out: list[Piece] = []
        for piece in pieces:
            key = " ".join(piece.text.casefold().split())
            if key in seen:
                report.add(self.name, "duplicate_chunks_removed")
                continue
            seen.add(key)
            out.append(piece)
        return out


_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"\w+")
# Element types unstructured itself recognises as page furniture.
_FURNITURE = frozenset({"Header", "Footer", "PageNumber"})


def _line_key(line: str) -> str:
    """What running headers share from page to page: "Page 3 of 10" → "page # of #"."""
    return " ".join(_DIGITS.sub("#", line.casefold()).split())


class HeaderFooterRemover:
    """Drops page furniture from parsed elements, before redaction and chunking.

    Two rules:

    - elements unstructured classified as Header, Footer or PageNumber are dropped
      (counted as ``header_footer_removed``);
    - in documents of at least ``min_pages`` pages, a short line (at most ``max_words``
      words) among the first or last ``edge_lines`` lines of its page is removed when
      the same line — compared casefolded, whitespace collapsed, digits as ``#`` —
      sits at a page edge on at least ``min_pages_fraction`` of the pages and on at least
      ``min_pages`` pages (two short lines meeting at page edges by chance are common
      enough; three are not). Counted per line as ``repeated_lines_removed``; an element left
      empty is dropped. Elements without a page number (single-page formats) and
      documents shorter than ``min_pages`` are never touched by this rule.

    A removed line that was a Title no longer serves as the ``section`` of the elements
    after it: they get the previous kept heading instead.

    Example: five pages each starting "ACME Corp — Confidential" and ending
    "Page N of 5" lose both lines; a sentence repeated on two of ten pages stays.
    """

    name = "boilerplate"

    def __init__(
        self,
        *,
        min_pages_fraction: float = 0.5,
        min_pages: int = 3,  # also the fewest pages a line must recur on
        max_words: int = 15,
        edge_lines: int = 3,
    ) -> None:
        if not 0.0 < min_pages_fraction <= 1.0:
            raise ValueError(f"min_pages_fraction must be in (0, 1], got {min_pages_fraction!r}")
        self.min_pages_fraction = min_pages_fraction
        if min_pages < 2:
            raise ValueError(f"min_pages must be at least 2, got {min_pages!r}")
        self.min_pages = min_pages
        self.max_words = max_words
        self.edge_lines = edge_lines

    @property
    def config(self) -> dict[str, Any]:
        return {
            "categories": sorted(_FURNITURE),
            "min_pages_fraction": self.min_pages_fraction,
            "min_pages": self.min_pages,
            "max_words": self.max_words,
            "edge_lines": self.edge_lines,
        }

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        kept: list[Piece] = []
        removed_titles: set[str] = set()
        for piece in pieces:
            if piece.metadata.get("category") in _FURNITURE:
                report.add(self.name, "header_footer_removed")
                continue
            kept.append(piece)
        repeated = self._repeated_edge_lines(kept)
        out: list[Piece] = []
        for index, piece in enumerate(kept):
            drop = repeated.get(index, set())
            if not drop:
                out.append(piece)
                continue
            lines = piece.text.split("\n")
            remaining = [line for n, line in enumerate(lines) if n not in drop]
            report.add(self.name, "repeated_lines_removed", len(lines) - len(remaining))
            text = "\n".join(remaining).strip()
            if piece.metadata.get("category") == "Title":
                removed_titles.add(_heading_key(piece.text))
            if text:
                out.append(Piece(text=text, metadata=dict(piece.metadata)))
        if removed_titles:
            _repair_sections(out, removed_titles)
        return out

    def _repeated_edge_lines(self, pieces: list[Piece]) -> dict[int, set[int]]:
        """Map piece index → line numbers inside it to remove."""
        # Each page's non-empty lines in reading order, as (piece index, line number, key).
        pages: dict[int, list[tuple[int, int, str]]] = {}
        for index, piece in enumerate(pieces):
            page = piece.metadata.get("page_number")
            if page is None:
                continue
            for n, line in enumerate(piece.text.split("\n")):
                if line.strip() and len(line.split()) <= self.max_words:
                    pages.setdefault(page, []).append((index, n, _line_key(line)))
                elif line.strip():
                    # Long lines still occupy a position: they push others off the edge.
                    pages.setdefault(page, []).append((index, n, ""))
        if len(pages) < self.min_pages:
            return {}
        edges: dict[int, list[tuple[int, int, str]]] = {}
        seen_on: dict[str, set[int]] = {}
        for page, lines in pages.items():
            k = self.edge_lines
            edge = lines if len(lines) <= 2 * k else lines[:k] + lines[-k:]
            edges[page] = [item for item in edge if item[2]]
            for _, _, key in edges[page]:
                seen_on.setdefault(key, set()).add(page)
        needed = max(self.min_pages, math.ceil(self.min_pages_fraction * len(pages)))
        boilerplate = {key for key, on in seen_on.items() if len(on) >= needed}
        drop: dict[int, set[int]] = {}
        for lines in edges.values():
            for index, n, key in lines:
                if key in boilerplate:
                    drop.setdefault(index, set()).add(n)
        return drop


def _heading_key(text: str) -> str:
    # `section` holds the parser's raw heading text; piece text went through the Cleaner.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _repair_sections(pieces: list[Piece], removed_titles: set[str]) -> None:
    """Point `section` past removed headings to the previous heading that stayed."""
    current: str | None = None
    for piece in pieces:
        section = piece.metadata.get("section")
        if section is not None and _heading_key(section) in removed_titles:
            piece.metadata["section"] = current
        elif section is not None:
            current = section
        if piece.metadata.get("category") == "Title":
            current = piece.text


def _shingles(text: str, size: int = 3) -> set[bytes]:
    """Word n-grams over Unicode word tokens (Cyrillic, accents), casefolded; a text
    shorter than `size` words is one shingle."""
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i : i + size]).encode("utf-8") for i in range(len(words) - size + 1)}


class NearDuplicateRemover:
    """Removes chunks that nearly repeat an earlier chunk of the same revision (a
    disclaimer with another date, a page reprinted with one word changed), keeping the
    first.

    Candidates come from MinHash LSH (datasketch) over word 3-gram shingles; a candidate
    counts as a duplicate only when the exact Jaccard similarity of the two shingle sets
    is at least `threshold`, so estimation noise never drops a distinct chunk. With
    3-grams one changed word moves up to three shingles, so at 0.9 a one-word edit is
    caught in chunks of roughly 60 words or more (default chunks are ~150 words).
    Deterministic: fixed seed and permutation scheme.

    Example: ``NearDuplicateRemover(0.9)(chunks, report)`` with a chunk repeated with
    one word changed keeps the first and adds
    ``report.counts["near_dedupe"]["near_duplicate_chunks_removed"] == 1``.
    """

    name = "near_dedupe"

    # 128 permutations keep LSH recall high near a 0.9 threshold; hashing 2,000 chunks
    # still takes well under a second.
    NUM_PERM = 128
    SEED = 1
    SHINGLE = 3

    def __init__(self, threshold: float = 0.9) -> None:
        if not 0.5 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0.5 and 1.0, got {threshold!r}")
        self.threshold = threshold

    @property
    def config(self) -> dict[str, Any]:
        return {
            "method": "minhash-lsh",
            "shingle": f"word-{self.SHINGLE}",
            "threshold": self.threshold,
            "num_perm": self.NUM_PERM,
            "seed": self.SEED,
        }

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        if len(pieces) < 2:
            return pieces
        from datasketch import MinHash, MinHashLSH

        shingles = [_shingles(p.text, self.SHINGLE) for p in pieces]
        sketches = MinHash.bulk(
            [list(s) for s in shingles], num_perm=self.NUM_PERM, seed=self.SEED, scheme="affine32"
        )
        lsh = MinHashLSH(num_perm=self.NUM_PERM, params=_lsh_params(self.threshold, self.NUM_PERM))
        out: list[Piece] = []
        for index, (piece, own, sketch) in enumerate(zip(pieces, shingles, sketches, strict=True)):
            if any(_jaccard(own, shingles[other]) >= self.threshold for other in lsh.query(sketch)):
                report.add(self.name, "near_duplicate_chunks_removed")
                continue
            lsh.insert(index, sketch)
            out.append(piece)
        return out


def _lsh_params(threshold: float, num_perm: int, recall: float = 0.999) -> tuple[int, int]:
    """Bands and rows whose candidate probability at `threshold` is at least `recall`.

    datasketch's own choice balances false positives against misses, which misses about
    two thirds of pairs right at 0.9; exact Jaccard filters the extra candidates, so
    recall is what matters. The most rows (fewest spurious candidates) that still
    reach `recall` wins.
    """
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
