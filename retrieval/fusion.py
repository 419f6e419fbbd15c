"""Rank fusion and diversity: score fusion of a dense and a lexical list (RRF, DBSF,
convex) with per-language weights per embedding model, reciprocal rank fusion of many
lists, maximal marginal relevance.

Example::

    policy = fusion_policy("all-MiniLM-L6-v2")
    fused = fuse_scores(dense, bm25, policy.weight("es"), policy.method)  # [(id, score)]
    fused = rrf([["a", "b"], ["b", "c"]], weights=[1.0, 0.5])  # {"b": ..., "a": ..., "c": ...}
    order = mmr(query_vector, candidate_vectors, relevance, top_k=5, lambda_=0.7)
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from index.sparse import EngineFusion
from ingest.language import detect_language as detect

# RRF's k: 60 is the value of Cormack et al. (2009); larger flattens the rank curve.
RRF_K = 60


@dataclass(frozen=True)
class FusionPolicy:
    """How hybrid search fuses the dense and the BM25 list for one embedding model: the
    method (see `fuse_scores`) and the dense list's weight per query language (BM25
    gets 1 − weight). Chosen per language on the dev split of the multilingual QA set
    (`tests/bench/bench_retrieval_mlqa.py`; held-out figures in docs/benchmarks.md)."""

    method: str
    dense_weights: dict[str, float]

    def weight(self, language: str, query: str = "") -> float:
        """The dense weight for a query in `language`; capped at IDENTIFIER_DENSE_WEIGHT
        when the query names an identifier (see `names_identifier`)."""
        weight = self.dense_weights.get(language, self.dense_weights["other"])
        if query and names_identifier(query):
            weight = min(weight, IDENTIFIER_DENSE_WEIGHT)
        return weight


# An identifier (INV-2024-00123, DOCTOKEN_0045, JIRA-4821, SKU 48213-B, ДОГ-2023/117):
# letters and digits joined by - _ / . or mixed in one token. Embeddings blur such
# tokens (INV-2023-00159 and INV-2023-00152 embed almost alike) where BM25 matches them
# exactly, so for these queries the lexical list leads. Measured through the service on
# 200 identifier records in en/es/ru (tests/bench/bench_service_mlqa.py): top-1 holds the
# identifier for 0.93 of queries at the per-language weights, 1.00 at a dense weight of
# 0.35 or less; the held-out mlqa questions hardly name identifiers (5 of 975).
IDENTIFIER_DENSE_WEIGHT = 0.2
_IDENTIFIER = re.compile(
    r"(?<!\w)(?:"
    r"[^\W\d_]+[-_/.]?\d[\w/.-]*"  # letters then digits: INV-2024-1, JIRA-4821, A1
    r"|(?:\d+[-_/.])+[^\W\d_][\w-]*"  # digits then letters: 48213-B, 2023/117-A
    r"|\w*\d\w*_\w+"  # underscored with a digit: DOC_0045, 0045_final
    r")"
)


def names_identifier(query: str) -> bool:
    """Whether the query holds an identifier-like token (letters and digits in one
    token, e.g. INV-2024-00123, SKU 48213-B, ДОГ-2023/117); plain words and plain numbers
    (years, amounts) do not count."""
    return any(_IDENTIFIER.fullmatch(token.strip(".,;:!?()[]{}\"'«»¿¡")) for token in query.split())


# An English-only model (the bundled all-MiniLM-L6-v2): on Spanish its vectors are weak
# and on Russian near random, so there BM25 leads (dev MRR@10 at weight 0.5 vs the
# chosen one: es 0.779 → 0.815, ru 0.535 → 0.677). "other" is untested: in between.
ENGLISH_MODEL_FUSION = FusionPolicy(
    method="convex", dense_weights={"en": 0.65, "es": 0.2, "ru": 0.0, "other": 0.35}
)
# Models named here vote in every language with MULTILINGUAL_FUSION. With
# multilingual-e5-small the dense list leads everywhere (dev MRR@10, convex at the chosen
# weight vs dense alone vs per-language BM25: en 0.885 / 0.866 / 0.801, es 0.881 / 0.821 /
# 0.796, ru 0.762 / 0.722 / 0.677); convex beat DBSF and RRF in es and ru.
MULTILINGUAL_MODELS: frozenset[str] = frozenset(
    {"multilingual-e5-small", "intfloat/multilingual-e5-small"}
)
MULTILINGUAL_FUSION = FusionPolicy(
    method="convex", dense_weights={"en": 0.8, "es": 0.5, "ru": 0.65, "other": 0.65}
)


def detect_language(text: str) -> str:
    """The query's language: "en" | "es" | "ru" | "other"."""
    language = detect(text)
    return language if language in ("en", "es", "ru") else "other"


def fusion_policy(embedding_model: str) -> FusionPolicy:
    if embedding_model in MULTILINGUAL_MODELS:
        return MULTILINGUAL_FUSION
    return ENGLISH_MODEL_FUSION


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


# Hybrid inside the engine (Qdrant versions with BM25 sparse vectors, `index.sparse`):
# Qdrant fuses by rank (RRF; a weight scales a list's ranks) or by each list's score
# distribution (DBSF, unweighted), never by min-max-normalised scores, so the convex
# weights above cannot be sent as they are. The engine gets weighted RRF: the policy's
# dense weight w (identifier cap included) as the rank weights (w, 1 − w), with a small k
# so that the weights matter (at k = 60 a weight hardly moves a rank's vote). Chosen by
# agreement with the in-process path on all of tests/bench/data (324 questions plus
# identifier records; recall@5 per language en / es / ru, in-process → engine):
# - multilingual-e5-small: in-process 1.000 / 0.972 / 1.000; weighted RRF k=2 1.000 /
#   0.981 / 1.000 (top-5 overlap with in-process 0.94 / 0.89 / 0.92); DBSF 1.000 / 0.972
#   / 1.000 (overlap 0.88 / 0.96 / 0.97); weighted RRF k=60 1.000 / 0.907 / 1.000;
# - all-MiniLM-L6-v2: in-process 1.000 / 0.787 / 1.000; weighted RRF k=2 1.000 / 0.889
#   / 1.000; DBSF 1.000 / 0.639 / 1.000 (no weights: the English-only model's Spanish
#   list votes as much as BM25); weighted RRF k=60 1.000 / 0.454 / 1.000.
# Identifier queries found their record first with both, at k=2. What the engine cannot
# do: drop lexical hits under LEXICAL_FLOOR (a weak match still casts a rank vote) or
# weigh how far apart the scores are; the congruence test bounds the effect
# (tests/integration/retrieval/test_hybrid_engine.py).
ENGINE_FUSION_METHOD = "rrf"
ENGINE_RRF_K = 2


def engine_fusion(
    policy: FusionPolicy, language: str, query: str = "", method: str = ENGINE_FUSION_METHOD
) -> EngineFusion:
    """The engine's fusion for a query in `language` under `policy`: weighted RRF (see
    ENGINE_FUSION_METHOD), or unweighted DBSF with `method="dbsf"`."""
    if method == "dbsf":
        return EngineFusion("dbsf")
    if method != "rrf":
        raise ValueError(f"engine fusion must be rrf or dbsf, got {method!r}")
    weight = policy.weight(language, query)
    return EngineFusion("rrf", (weight, 1.0 - weight), ENGINE_RRF_K)


FUSION_METHODS: tuple[str, ...] = ("rrf", "dbsf", "convex")
# BM25 hits scoring below this share of the list's best score are dropped before fusion:
# a query for an exact identifier matches its document strongly and, through a common
# prefix, others at ~1e-4 of that score; rank-based fusion would count those as votes.
LEXICAL_FLOOR = 0.01
# The least a hit can score in a list it is in (normalised): min-max maps a list's last
# hit to 0, which would tie it with hits the list does not hold at all.
LISTED = 0.01


def fuse_scores(
    dense: Sequence[tuple[Hashable, float]],
    lexical: Sequence[tuple[Hashable, float]],
    dense_weight: float,
    method: str = "dbsf",
) -> list[tuple[Hashable, float]]:
    """Fuse a dense and a lexical ranking, each (id, score) best first, into one ranking
    (id, fused score) best first. The dense list weighs `dense_weight` (0..1), the
    lexical one `1 - dense_weight`; an id missing from a list scores 0 there.

    - "rrf": Σ weight / (RRF_K + rank); ignores how far apart the scores are.
    - "dbsf": distribution-based score fusion: each list's scores mapped through
      (s − (μ − 3σ)) / 6σ of that list's own scores, clipped to [0, 1], then summed.
      Robust to the score scale of each list (cosine in a narrow band, BM25 unbounded).
    - "convex": min-max normalised scores, summed.
    Ties keep first-seen order (dense first), so results are deterministic.
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion {method!r}; choose from {', '.join(FUSION_METHODS)}")
    if not 0.0 <= dense_weight <= 1.0:
        raise ValueError(f"dense_weight must be within 0..1, got {dense_weight}")
    if lexical:
        floor = LEXICAL_FLOOR * max(score for _, score in lexical)
        lexical = [(i, score) for i, score in lexical if score >= floor]
    fused: dict[Hashable, float] = {}
    for ranking, weight in ((dense, dense_weight), (lexical, 1.0 - dense_weight)):
        for item, value in zip((i for i, _ in ranking), _normalised(ranking, method), strict=True):
            fused[item] = fused.get(item, 0.0) + weight * value
    return sorted(fused.items(), key=lambda kv: -kv[1])


def _normalised(ranking: Sequence[tuple[Hashable, float]], method: str) -> list[float]:
    if not ranking:
        return []
    if method == "rrf":
        return [1.0 / (RRF_K + rank) for rank in range(1, len(ranking) + 1)]
    scores = np.asarray([score for _, score in ranking], dtype=np.float64)
    if method == "dbsf":
        low, spread = scores.mean() - 3 * scores.std(), 6 * scores.std()
    else:
        low, spread = scores.min(), scores.max() - scores.min()
    if spread <= 0:  # one hit, or all equal: each counts fully
        return [1.0] * len(ranking)
    scaled = np.clip((scores - low) / spread, 0.0, 1.0)
    return (LISTED + (1.0 - LISTED) * scaled).tolist()


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
