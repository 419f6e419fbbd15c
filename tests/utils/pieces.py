"""Views of parsed `Piece`s that reader tests compare against."""

from __future__ import annotations

from core.types import Piece


def shape(pieces: list[Piece]) -> list[tuple[str, str, str | None]]:
    """(category, text, section) of each piece."""
    return [(p.metadata["category"], p.text, p.metadata["section"]) for p in pieces]


def texts(pieces: list[Piece]) -> list[str]:
    return [p.text for p in pieces]


def normalised_text(pieces: list[Piece]) -> str:
    """All pieces' text as one string, whitespace runs collapsed to single spaces."""
    return " ".join(" ".join(p.text for p in pieces).split())
