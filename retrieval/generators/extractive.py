"""`extractive`: no language model. Scores the sentences of the retrieved passages against
the question (the KB's embedding model plus word overlap) and stitches the best few
together, each followed by its `[n]` citation. It quotes and never follows: text inside a
document cannot instruct it, which makes it the safe offline default.

Example::

    gen = ExtractiveGenerator(rt.embedder())
    gen.generate([], max_tokens=128, temperature=0, passages=passages, query="...")
    # 'Pyroclastic flows move at up to 700 km/h. [1] ...'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from retrieval.generators.base import Message, Passage, Usage

if TYPE_CHECKING:
    from ingest.embed import Embedder

# Sentence ends: Latin/Cyrillic/Greek punctuation, CJK full stops, and line breaks (a
# heading or a bullet is its own sentence). Splitting after the mark keeps it attached.
# "1. e4" and "2. Nf3" (numbered moves, list items) are not sentence ends.
_SENTENCE_END = re.compile(r"(?<=[.!?;…])(?<!\s\d\.)(?<!\s\d\d\.)\s+|\n+|(?<=[。！？])")
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
# Function words that make any two sentences look alike (en/es/ru); content words decide.
_STOPWORDS = frozenset(
    "the a an and or of to in on at for by with from is are was were be been it its this "
    "that these those what which who whom how when where why do does did can could should "
    "would will i you he she we they my your me us them as not no yes if than then there "
    "el la los las un una unos unas y o de del en con por para es son que qué cómo cuál "
    "и в во на с со по к о об что как где когда кто это не ли или а но из у за".split()
)
# Tuning knobs: how many sentences an answer stitches, and how far below the best
# sentence another may score and still be included.
MAX_SENTENCES = 3
RELATIVE_CUTOFF = 0.75
SEMANTIC_WEIGHT = 0.7
MIN_SENTENCE_CHARS = 12
# Headings and captions ("The Sicilian Defence") match a question's topic closely but
# answer nothing: prefer sentences with at least this many words when there are any.
MIN_ANSWER_WORDS = 6


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` in order; whitespace collapsed, fragments dropped."""
    out = []
    for piece in _SENTENCE_END.split(text):
        sentence = " ".join(piece.split())
        if len(sentence) >= MIN_SENTENCE_CHARS or (_CJK.search(sentence) and len(sentence) >= 4):
            out.append(sentence)
    return out


def _is_full_sentence(sentence: str) -> bool:
    if _CJK.search(sentence):
        return len(sentence) >= 10
    return len(sentence.split()) >= MIN_ANSWER_WORDS


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder, *, max_sentences: int = MAX_SENTENCES) -> None:
        self._embedder = embedder
        self.max_sentences = max_sentences

    @property
    def model(self) -> str | None:
        return None

    def warm_up(self) -> None:
        self._embedder.warm_up()

    def select(self, query: str, passages: Sequence[Passage]) -> list[tuple[Passage, int, str]]:
        """The chosen (passage, position, sentence) triples in reading order."""
        candidates = [
            (p, pos, s) for p in passages for pos, s in enumerate(split_sentences(p.text))
        ]
        full = [c for c in candidates if _is_full_sentence(c[2])]
        candidates = full or candidates
        if not candidates or not query.strip():
            return []
        question = self._embedder.encode([query], kind="query")[0]
        semantic = self._embedder.encode([s for _, _, s in candidates]) @ question
        q_words = _content_words(query)
        lexical = np.array(
            [
                len(q_words & _content_words(s)) / len(q_words) if q_words else 0.0
                for _, _, s in candidates
            ]
        )
        scores = SEMANTIC_WEIGHT * semantic + (1 - SEMANTIC_WEIGHT) * lexical
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        chosen, seen = [], set()
        for i in order[: self.max_sentences * 3]:
            if len(chosen) == self.max_sentences or float(scores[i]) < best * RELATIVE_CUTOFF:
                break
            key = candidates[i][2].lower()
            if key in seen:  # the same sentence in two overlapping chunks
                continue
            seen.add(key)
            chosen.append(candidates[i])
        return sorted(chosen, key=lambda c: (c[0].index, c[1]))

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> str:
        # Reads the structured passages, never the prompt; no model, so no token counts.
        del messages, temperature, usage
        parts: list[str] = []
        budget = max_tokens * 4  # ~4 characters per token
        for passage, _, sentence in self.select(query, passages):
            part = f"{sentence} [{passage.index}]"
            if parts and sum(len(p) + 1 for p in parts) + len(part) > budget:
                break
            parts.append(part)
        if not parts:
            return "I don't know: the retrieved documents do not contain an answer."
        return " ".join(parts)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> Iterator[str]:
        text = self.generate(
            messages, max_tokens=max_tokens, temperature=temperature, passages=passages, query=query
        )
        # Word by word, so clients see the same event flow as from a model.
        for match in re.finditer(r"\S+\s*", text):
            yield match.group(0)
