"""The lexical side of hybrid search, as both search paths share it: the tokeniser, and
BM25 as sparse vectors that Qdrant stores beside each point's dense vector and fuses
with it inside the engine (`index.edge_index`, `index.qdrant_index`).

Tokenisation is Unicode-aware and the same for documents and queries: `\\w+` runs
(`_` splits), casefolded, accents stripped for matching (á→a, ñ→n, ё→е), and light
Snowball stemming in the token's language (Cyrillic → Russian; Latin → Spanish or
English, decided once per text by a stop-word vote). The in-process BM25 of FAISS
versions (`retrieval.bm25`) uses the same `tokenize`.

BM25 as sparse vectors (what `encode_document` / `encode_query` produce):
- a dimension per distinct token: 4 bytes of its BLAKE2b hash (Qdrant's sparse indices
  are 32-bit). n distinct tokens hold about n²/2³³ colliding pairs (about 1 at 100k
  tokens, about 120 at 1M); the two words of a pair score as one;
- a document's value per token is BM25's term-frequency part, as bm25s's Lucene variant
  computes it: tf / (tf + K1 · (1 − B + B · len / AVG_LEN)), len = the text's token count;
- a query's value per token is how often the query holds it;
- the collection's sparse vector `SPARSE_VECTOR` is declared with Qdrant's IDF modifier,
  so the engine multiplies each query dimension by ln(1 + (N − n + 0.5) / (n + 0.5)) at
  query time (N: points with a sparse vector, n: those holding the dimension; the same
  IDF as bm25s). Their dot product is the BM25 score of `retrieval.bm25` for the same
  text, except for the length normalisation below.
- AVG_LEN replaces the corpus's mean length: a document is encoded once, when written,
  and the mean moves with every write. The engine path's lexical ranking therefore
  differs from the in-process one where chunk lengths differ from AVG_LEN by much (the
  congruence test, tests/integration/retrieval/test_hybrid_engine.py, bounds the
  effect on recall).

Example::

    indices, values = encode_document("Река Мста впадает в озеро Ильмень.")
    encode_query("реки")  # ([token_index("рек")], [1.0]): "реки" matches "река"
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from index.base import Hit

# BM25 parameters (Lucene variant): K1 saturates repeated terms, B normalises by length.
K1 = 1.2
B = 0.75
# Expected chunk length in tokens for the length normalisation of sparse vectors: about
# what the default chunker (RAGOPS_CHUNK_SIZE 200 model tokens) yields in words. Changing
# it changes only documents written afterwards; rebuild a version to apply it everywhere.
AVG_LEN = 150.0
# The name of the sparse vector in Qdrant collections and Edge shards (the dense vector
# stays the unnamed default one, as before hybrid).
SPARSE_VECTOR = "bm25"

_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")

# A small stop-word vote decides which Latin-script stemmer a text gets. Only en/es are
# told apart here; other Latin languages get the English stemmer (harmless: it only
# trims a few suffixes, the same way on both sides).
_EN_STOP = frozenset(
    "the and of to is in that for with was are as on by this from at which be it an".split()
)
_ES_STOP = frozenset(
    "el la los las de que y en del por para una un es con se al su sus lo como más fue".split()
)


def strip_accents(text: str) -> str:
    """Drop combining marks after canonical decomposition: á→a, ñ→n, ё→е, й→и."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def latin_language(words: Sequence[str] | Counter[str]) -> str:
    """ "es" or "en" for Latin-script words (already casefolded, or their counts), by
    stop-word vote."""
    counts = words if isinstance(words, Counter) else Counter(words)
    es = sum(counts.get(w, 0) for w in _ES_STOP)
    en = sum(counts.get(w, 0) for w in _EN_STOP)
    return "es" if es > en else "en"


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer({"en": "english", "es": "spanish", "ru": "russian"}[language])


@lru_cache(maxsize=200_000)
def _token(word: str, language: str) -> str:
    """A word's matching token: stemmed before its accents are stripped (the Snowball
    rules are written for the real spelling: Spanish suffixes with accents, Russian ё/й).
    Cached: a corpus repeats its words, and this is most of tokenising one."""
    return strip_accents(_stemmer(language).stemWord(word))


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold().replace("_", " "))


def _stemmed(word: str, latin: str) -> str:
    """The word's token: Russian stemming for Cyrillic, else the text's Latin language."""
    return _token(word, "ru" if _CYRILLIC.search(word) else latin)


def tokenize(text: str, *, stem: bool = True) -> list[str]:
    """Matching tokens of `text`: casefolded words, stemmed in their language, with
    accents stripped. Documents and queries must go through the same function."""
    words = _words(text)
    if not stem:
        return [strip_accents(w) for w in words]
    latin = latin_language(words)
    return [_stemmed(word, latin) for word in words]


def token_counts(text: str) -> Counter[str]:
    """`Counter(tokenize(text))`, computed per distinct word (a text repeats its words:
    this is what indexing a large corpus spends its time on)."""
    words = Counter(_words(text))
    latin = latin_language(words)
    out: Counter[str] = Counter()
    for word, times in words.items():
        out[_stemmed(word, latin)] += times
    return out


@lru_cache(maxsize=200_000)
def token_index(token: str) -> int:
    """The sparse dimension of a token: 32 bits of its BLAKE2b hash (stable everywhere,
    unlike Python's `hash`)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")


def _sparse(counts: Counter[str], values: dict[str, float]) -> tuple[list[int], list[float]]:
    by_index: dict[int, float] = {}
    for token in counts:
        index = token_index(token)
        by_index[index] = by_index.get(index, 0.0) + values[token]  # a hash collision
    indices = sorted(by_index)
    return indices, [by_index[i] for i in indices]


def encode_document(text: str) -> tuple[list[int], list[float]]:
    """The text's BM25 sparse vector (indices ascending, values in (0, 1)); empty for a
    text without words. See the module docstring for the formula."""
    tokens = tokenize(text)
    counts = Counter(tokens)
    norm = K1 * (1.0 - B + B * len(tokens) / AVG_LEN)
    return _sparse(counts, {t: tf / (tf + norm) for t, tf in counts.items()})


def encode_query(text: str) -> tuple[list[int], list[float]]:
    """The query's sparse vector: each token weighted by how often the query holds it
    (as bm25s scores a query); empty when the query has no words."""
    counts = Counter(tokenize(text))
    return _sparse(counts, {t: float(n) for t, n in counts.items()})


def encode_documents(texts: Sequence[str], count: int) -> list[tuple[list[int], list[float]]]:
    """`encode_document` of each text; ValueError unless there is one text (a string) per
    point."""
    if isinstance(texts, str) or len(texts) != count:
        raise ValueError(f"expected a list of {count} texts, one per id")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must be strings, got {type(bad[0]).__name__}")
    return [encode_document(t) for t in texts]


@dataclass(frozen=True)
class EngineFusion:
    """How the engine fuses the dense and the sparse prefetch of a hybrid query.

    - `method="rrf"`: Σ 1 / ((rank / weight) + k − 1) over the lists holding a point, rank
      from 1 (Qdrant's weighted reciprocal rank fusion: a weight scales the rank, so 1
      is classic RRF with constant k, and 0 drops that list's vote);
    - `method="dbsf"`: each list's scores normalised by its mean ± 3σ, summed; no weights.
    `weights` are (dense, lexical), RRF only; None weighs both 1. `k` defaults to
    Qdrant's own default, 2.
    """

    method: str = "rrf"
    weights: tuple[float, float] | None = None
    k: int = 2

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "dbsf"):
            raise ValueError(f"engine fusion must be rrf or dbsf, got {self.method!r}")
        if self.method == "dbsf" and self.weights is not None:
            raise ValueError("DBSF takes no weights; use rrf with weights")
        if self.weights is not None and (
            len(self.weights) != 2 or any(not 0.0 <= w <= 1.0 for w in self.weights)
        ):
            raise ValueError(f"weights must be two numbers in 0..1, got {self.weights!r}")
        if self.k < 1:
            raise ValueError(f"RRF k must be at least 1, got {self.k}")

    def best(self) -> float:
        """The highest fused score a point can get (first in both lists, or at the top of
        both distributions): fused / best() is in [0, 1]."""
        if self.method == "dbsf":
            return 2.0
        weights = self.weights or (1.0, 1.0)
        return sum(1.0 / (1.0 / w + self.k - 1.0) for w in weights if w > 0) or 1.0


@runtime_checkable
class HybridSearch(Protocol):
    """An index that stores each point's BM25 sparse vector beside its dense one and fuses
    both lists itself (the Qdrant engines). `lexical` is False for a collection created
    before hybrid (no sparse vector declared): callers search its text elsewhere.

    Contract (errors as `index.base.VectorIndex.search`):
    - `search_hybrid` runs ONE query: a dense prefetch and a sparse prefetch of
      `candidates` points each, both filtered by `filters`, fused by the engine per
      `fusion`; at most `top_k` hits, best first, `Hit.score` the engine's fused score.
      A query without words runs the dense prefetch alone (fused the same way).
    - `search_lexical` is the sparse side alone: BM25 scores (IDF applied by the engine),
      only points sharing a token with the query.
    Both raise InvalidInput on a collection without sparse vectors (`lexical` False).
    A point upserted without its text has no sparse vector: only the dense side finds it.

    Example::

        hits = index.search_hybrid(vector, "¿Dónde nace el río?", 10, {"lang": "es"},
                                   fusion=EngineFusion("rrf", (0.5, 0.5)), candidates=30)
    """

    lexical: bool

    def search_hybrid(
        self,
        vector: np.ndarray,
        text: str,
        top_k: int,
        filters: dict[str, Any] | None = None,
        *,
        fusion: EngineFusion,
        candidates: int,
    ) -> list[Hit]: ...

    def search_lexical(
        self, text: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]: ...
