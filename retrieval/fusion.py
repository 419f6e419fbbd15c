"""Rank fusion and diversity: weighted reciprocal rank fusion, language-aware weights,
maximal marginal relevance.

Example::

    fused = rrf([["a", "b"], ["b", "c"]], weights=[1.0, 0.5])  # {"b": ..., "a": ..., "c": ...}
    order = mmr(query_vector, candidate_vectors, relevance, top_k=5, lambda_=0.7)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.language import detect_language as detect

# RRF's k: 60 is the value of Cormack et al. (2009); larger flattens the rank curve.
RRF_K = 60

# Weight of the dense list against BM25 (weight 1.0) per query language, for an
# English-only embedding model (the default all-MiniLM-L6-v2). On Spanish and Russian its
# vectors are weak (on Russian near random), so an equal vote would let it push BM25's
# correct hits down. Tuned on the training
# split of tests/bench/data (see tests/bench/results/retrieval.json for held-out figures).
# On the train split any dense vote lowered es/ru recall@5 (es: 0.864 at 0 → 0.758 at 0.1
# → 0.545 at 1.0), so es/ru use BM25's order, dense hits only appended after it; "other"
# is untested and kept in between.
ENGLISH_MODEL_DENSE_WEIGHTS: dict[str, float] = {"en": 1.0, "es": 0.0, "ru": 0.0, "other": 0.5}
# A multilingual model (named in MULTILINGUAL_MODELS) votes equally in every language.
MULTILINGUAL_DENSE_WEIGHT = 1.0
MULTILINGUAL_MODELS: frozenset[str] = frozenset()


def detect_language(text: str) -> str:
    """The query's language: "en" | "es" | "ru" | "other"."""
    language = detect(text)
    return language if language in ("en", "es", "ru") else "other"


def dense_weight(embedding_model: str, language: str) -> float:
    if embedding_model in MULTILINGUAL_MODELS:
        return MULTILINGUAL_DENSE_WEIGHT
    return ENGLISH_MODEL_DENSE_WEIGHTS.get(language, ENGLISH_MODEL_DENSE_WEIGHTS["other"])


def rrf(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> dict[str, float]:
    """Weighted reciprocal rank fusion: id → Σ weight / (k + rank), rank from 1.

    Returned best first (ties keep first-seen order, so the result is deterministic).
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))


def mmr(
    query: np.ndarray,
    vectors: np.ndarray,
    relevance: Sequence[float] | None = None,
    *,
    top_k: int,
    lambda_: float = 0.7,
) -> list[int]:
    """Maximal marginal relevance over candidate rows: repeatedly pick the row that
    maximises λ·relevance − (1−λ)·max cosine to the rows already picked.

    `vectors` are unit rows; `relevance` defaults to the cosine with `query` and is
    scaled so its largest magnitude is 1, commensurable with cosine redundancy (min-max
    scaling would zero the last candidate and overstate gaps in short lists). λ=1 keeps
    the relevance order, λ=0 maximises diversity.
    """
    n = len(vectors)
    if n == 0 or top_k <= 0:
        return []
    rel = (
        vectors @ np.asarray(query, dtype=np.float32)
        if relevance is None
        else np.asarray(relevance, dtype=np.float32)
    )
    top = float(np.abs(rel).max())
    rel = rel / top if top > 0 else np.ones_like(rel)
    sim = vectors @ vectors.T
    picked: list[int] = []
    redundancy = np.full(n, -np.inf, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    for _ in range(min(top_k, n)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        objective = lambda_ * rel - (1.0 - lambda_) * penalty
        objective[~available] = -np.inf
        best = int(np.argmax(objective))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, sim[best])
    return picked
