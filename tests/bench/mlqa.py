"""Loader for the multilingual retrieval QA set in `tests/bench/data/mlqa/` (built by
`mlqa_build.py`; sources, licences and counts in the README there).

Every split searches the same corpus: all passages of the question's language (1,050 per
language, distractors included). Splits are disjoint in what they ask about: no passage
relevant to a test question is relevant to a dev question. A hit on any id in
`relevant_ids` counts as relevant (a long section or FAQ answer is several passages).

    passages, questions = load("test")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "mlqa"
LANGUAGES = ("en", "es", "ru")
SPLITS = ("dev", "test")
# The same GNOME Help pages and questions in every language: compare languages on these.
PARALLEL_SOURCES = frozenset({"gnome-help-title", "hand-written"})


@dataclass(frozen=True)
class Passage:
    id: str
    language: str
    title: str
    text: str
    source: str


@dataclass(frozen=True)
class Question:
    id: str
    language: str
    question: str
    relevant_ids: tuple[str, ...]
    answer: str | None
    source: str
    split: str  # "dev" (tuning) or "test" (reporting)


def _rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_passages(language: str | None = None) -> list[Passage]:
    rows = [Passage(**row) for row in _rows("passages.jsonl")]
    return [p for p in rows if language is None or p.language == language]


def load_questions(split: str | None = None, language: str | None = None) -> list[Question]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    rows = [
        Question(**{**row, "relevant_ids": tuple(row["relevant_ids"])})
        for row in _rows("questions.jsonl")
    ]
    return [
        q
        for q in rows
        if (split is None or q.split == split) and (language is None or q.language == language)
    ]


def load(split: str) -> tuple[list[Passage], list[Question]]:
    """The whole corpus and the questions of one split ("dev" or "test")."""
    return load_passages(), load_questions(split)
