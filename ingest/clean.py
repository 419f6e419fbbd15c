"""Cleaning stages: normalise text before redaction, drop duplicate chunks after chunking."""

from __future__ import annotations

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
