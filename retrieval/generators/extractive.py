"""`extractive`: no language model. Scores the sentences of the retrieved passages against
the question (`score_sentences`: the KB's embedding model on its calibrated scale, the
question's words weighted by how rare they are among the candidates, and a small cue for
a sentence holding what the question word asks for: a number, a date, a name) and
stitches the best few together, each followed by its `[n]` citation. It quotes and never
follows: text inside a document cannot instruct it, which makes it the safe offline
default. The scorer's candidates are compared in `tests/bench/bench_service_mlqa.py`.

Example::

    gen = ExtractiveGenerator(rt.embedder())
    gen.generate([], max_tokens=128, temperature=0, passages=passages, query="...")
    # 'Pyroclastic flows move at up to 700 km/h. [1] ...'
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from retrieval.calibration import dense_score
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
# Four, not more: "Текущий статус X — «одобрен»." is a whole answer in five.
MIN_ANSWER_WORDS = 4
# Added to the score of a sentence holding the kind of thing the question asks for (see
# `answer_kind`); small next to the semantic term, so it breaks near-ties.
ANSWER_CUE = 0.1

# What a question asks for, from its question word (en/es/ru; matched without accents):
# "time" (when, what year), "number" (how much/many/long/...), "person" (who), "place"
# (where, which city). A question matching none (what, why, how) gets no cue.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)"))
    for kind, words in (
        (
            "time",
            (
                r"when",
                r"(?:what|which) (?:year|month|date|century|day)",
                r"cuando",
                r"(?:que|cual) (?:ano|mes|fecha|siglo|dia)",
                r"когда",
                r"(?:каком|какого) (?:году|года|месяце|месяца|веке|века|числа)",
            ),
        ),
        (
            "number",
            (
                r"how (?:much|many|long|high|tall|deep|far|big|large|wide|old|heavy)",
                r"cuant[oa]s?",
                r"que (?:altura|longitud|tamano|profundidad|superficie|distancia|edad)",
                r"сколько",
                r"насколько",
                r"каков[аоы]? (?:\w+ )?(?:длина|высота|глубина|площадь|ширина|численность)",
            ),
        ),
        ("person", (r"who|whom|whose", r"quien(?:es)?", r"кто|кого|кем|кому")),
        (
            "place",
            (
                r"where|(?:which|what) (?:city|town|country|region)",
                r"donde|adonde|(?:que|cual) (?:ciudad|pueblo|pais|region)",
                r"где|откуда|куда|(?:каком|какой|какого) (?:городе|стране|регионе|города|страны)",
            ),
        ),
    )
)
_MONTHS = frozenset(
    "january february march april may june july august september october november december "
    "enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre "
    "noviembre diciembre".split()
)
_RU_MONTH = re.compile(  # a Russian month in any case: "в июне", "15 мая", "до марта"
    r"(?:январ|феврал|апрел|июн|июл|сентябр|октябр|ноябр|декабр)[ьяею]"
    r"|ма[йяе]|марта?|марте|августа?|августе"
)


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


def _plain(text: str) -> str:
    """Lower case without accents ("¿Cuánto?" → "¿cuanto?"), so users may omit them."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def answer_kind(question: str) -> str | None:
    """What the question word asks for: "time", "number", "person", "place" or None."""
    plain = _plain(question)
    for kind, pattern in _KINDS:
        if pattern.search(plain):
            return kind
    return None


def _is_name(word: str, asked: set[str]) -> bool:
    """A capitalised word (not an acronym, not a function word) the question lacks."""
    lower = word.lower()
    return word[:1].isupper() and not word.isupper() and lower not in asked | _STOPWORDS


def holds_kind(sentence: str, kind: str | None, question: str) -> bool:
    """Whether `sentence` holds something of `kind` that the question does not: a number
    ("number"), a number or a month ("time"), two capitalised words in a row, a given name
    and a surname ("person"), a capitalised word past the first ("place")."""
    if kind is None:
        return False
    asked = set(_WORD.findall(question.lower()))
    words = _WORD.findall(sentence)
    new = [w.lower() for w in words if w.lower() not in asked]
    if kind in ("number", "time") and any(any(c.isdigit() for c in w) for w in new):
        return True
    if kind == "time":
        return any(w in _MONTHS or _RU_MONTH.fullmatch(w) for w in new)
    if kind == "person":
        return any(_is_name(a, asked) and _is_name(b, asked) for a, b in itertools.pairwise(words))
    if kind == "place":
        return any(_is_name(w, asked) for w in words[1:])
    return False


def word_weights(query_words: set[str], sentence_words: Sequence[set[str]]) -> dict[str, float]:
    """Each question word's inverse document frequency over the candidate sentences,
    scaled so a word in one sentence (or none) weighs 1: the subject that every sentence
    repeats ("¿Cuánto mide el río Rénto?": rénto) tells them apart least."""
    n = len(sentence_words)
    if n < 2:
        return dict.fromkeys(query_words, 1.0)
    top = math.log(1 + n)
    return {
        w: math.log(1 + n / max(1, sum(w in s for s in sentence_words))) / top for w in query_words
    }


def score_sentences(
    query: str, sentences: Sequence[str], cosines: np.ndarray, *, model: str
) -> np.ndarray:
    """How well each sentence answers `query`: the semantic score (the cosine on the
    model's calibrated 0-1 scale, `retrieval.calibration`), mixed with the question's
    words found in the sentence (each weighted by `word_weights`), plus ANSWER_CUE when
    the sentence holds what the question word asks for (`answer_kind`)."""
    q_words = _content_words(query)
    words = [_content_words(s) for s in sentences]
    weights = word_weights(q_words, words)
    lexical = np.array(
        [sum(weights[w] for w in q_words & ws) / len(q_words) if q_words else 0.0 for ws in words]
    )
    semantic = np.array([dense_score(model, float(c)) for c in cosines])
    kind = answer_kind(query)
    cue = np.array([ANSWER_CUE if holds_kind(s, kind, query) else 0.0 for s in sentences])
    return SEMANTIC_WEIGHT * semantic + (1 - SEMANTIC_WEIGHT) * lexical + cue


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
        sentences = [s for _, _, s in candidates]
        cosines = self._embedder.encode(sentences) @ question
        scores = score_sentences(query, sentences, cosines, model=self._embedder.ref)
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
