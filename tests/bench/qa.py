"""Loader for the multilingual retrieval QA set in `tests/bench/data/` (built by
`qa_build.py`): documents rendered to bytes for upload, questions with their split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.utils.corpus import make_html, make_md, make_text

DATA = Path(__file__).parent / "data"
LANGUAGES = ("en", "es", "ru")


@dataclass(frozen=True)
class Question:
    id: str
    language: str
    question: str
    filename: str
    answer: str
    split: str  # "train" (used to tune fusion weights) or "heldout"


def load_documents() -> list[dict[str, Any]]:
    with open(DATA / "docs.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_questions(split: str | None = None) -> list[Question]:
    with open(DATA / "qa.jsonl", encoding="utf-8") as fh:
        rows = [Question(**json.loads(line)) for line in fh if line.strip()]
    return [q for q in rows if split is None or q.split == split]


def render(doc: dict[str, Any]) -> bytes:
    """The document as the file its name says (Markdown, plain text or HTML)."""
    maker = {"md": make_md, "txt": make_text, "html": make_html}[doc["filename"].rsplit(".")[-1]]
    return maker(doc["title"], doc["paragraphs"])


def is_relevant(question: Question, filename: str, text: str) -> bool:
    """A hit answers the question when it is from the right document and holds the answer."""
    return filename == question.filename and question.answer.casefold() in text.casefold()
