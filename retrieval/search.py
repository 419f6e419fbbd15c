"""Retrieval against a knowledge base's live (or pinned) index version, with citations.

Modes:
- `dense`: the vector index alone; `score` is the cosine similarity on one scale across
  models (`retrieval.calibration`; the raw cosine is `scores["dense"]`).
- `hybrid`: BM25 over the same version's chunks (see `retrieval.bm25`) fused with the dense
  list by score (`retrieval.fusion.fuse_scores`; BM25 hits with negligible scores are
  dropped first). The method and the dense list's weight depend on the embedding model
  and the query language (`retrieval.fusion.fusion_policy`): an English-only model gets
  a small vote on Spanish and none on Russian queries, so it cannot drag hybrid below
  BM25 alone. `score` is the fused score in [0, 1].
  On a Qdrant version whose points hold BM25 sparse vectors (every Qdrant version built
  since hybrid moved into the engine, `index.sparse`) the engine does all of it in ONE
  query: a dense and a sparse prefetch, both filtered, fused by the engine
  (`retrieval.fusion.engine_fusion`: RRF with the policy's per-language weights as
  rank weights); the in-process BM25 is never built for such a version. There
  `scores["fused"]` (and `score`) is the engine's fused score over its best possible
  value, in [0, 1] (1: first in both lists), and `scores["dense"]` / `scores["bm25"]` are
  None (the engine returns only the fused score). Older Qdrant versions and FAISS
  versions fuse in-process as above.

Then, optionally: a CrossEncoder `rerank` of the best candidates (`score` becomes the
reranker's, in [0, 1]), `mmr` diversity over the candidates' vectors, and
`score_threshold` on the final `score`. Every hit carries a `scores` breakdown (dense,
bm25, fused, rerank; None where that stage did not score it) and its citation:
document, revision, filename, page/section, KB.

Example::

    result = retrieve(rt, kb=kb, query="¿Dónde nace el río?", mode="hybrid", top_k=5)
    result.results[0].metadata["revision"], result.results[0].scores["bm25"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import Row, select

from core.catalog.models import Chunk, Document, DocumentRevision
from core.errors import InvalidInput
from core.metrics import timed_retrieval
from core.types import sha256_hex
from index.base import check_filters as _check_filter_shapes
from index.sparse import HybridSearch
from index.versions import queryable_version
from retrieval.calibration import dense_score
from retrieval.fusion import (
    RRF_K,
    detect_language,
    engine_fusion,
    fuse_scores,
    fusion_policy,
    mmr,
    rrf,
)
from retrieval.rerank import RERANK_CANDIDATES

if TYPE_CHECKING:
    from core.catalog.models import IndexVersion, KnowledgeBase
    from index.base import VectorIndex
    from retrieval.services import RetrievalServices

MAX_TOP_K = 100
Mode = Literal["dense", "hybrid"]
MODES: tuple[str, ...] = ("dense", "hybrid")
# Hybrid measured better than dense overall and never worse per language on the
# benchmark (tests/bench/results/retrieval.json), so it is the default.
DEFAULT_MODE: Mode = "hybrid"
# Candidates each list contributes before fusion / reranking / MMR: fusion needs depth
# beyond top_k for a hit ranked low by one list and high by the other to surface.
MIN_CANDIDATES = 30
MAX_CANDIDATES = 200
# With a `where` predicate the dense pool starts at max(pool, MIN_CANDIDATES, 4 * top_k)
# and grows 4x a round until top_k candidates pass or the index has no more, up to this
# many: past it, a KB whose best 10,000 chunks hold fewer than top_k matches answers
# with the matches found (one request never scans an unbounded index).
MAX_WHERE_CANDIDATES = 10_000
_HIDDEN_PAYLOAD = frozenset({"chunk_id", "document_id", "filename"})


@dataclass
class RetrievedChunk:
    chunk_id: str
    document_id: str
    filename: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)


@dataclass
class RetrievalResult:
    index_version: int | None
    results: list[RetrievedChunk]
    mode: str = DEFAULT_MODE
    language: str | None = None
    # The model of the version that answered: its vectors, its score scale.
    embedding_model: str | None = None


def check_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Equality, 'any of' lists and numeric/date ranges (see `index.base.check_filters`);
    InvalidInput (HTTP 422) names the bad key."""
    try:
        return _check_filter_shapes(filters)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


@dataclass
class _Candidate:
    chunk_id: str
    payload: dict[str, Any]
    dense: float | None = None
    bm25: float | None = None
    fused: float | None = None
    rerank: float | None = None
    score: float = 0.0


def _dense_candidates(
    rt: RetrievalServices,
    version: IndexVersion,
    index: VectorIndex,
    query: str,
    k: int,
    filters: dict[str, Any] | None,
    vector: np.ndarray | None = None,
) -> tuple[np.ndarray, list[_Candidate]]:
    if vector is None:
        vector = rt.embedder(version.embedding_model).encode([query], kind="query")[0]
    hits = index.search(vector, k, filters)  # backends raise InvalidInput / Unavailable
    model = version.embedding_model
    return vector, [
        _Candidate(h.chunk_id, h.payload, dense=h.score, score=dense_score(model, h.score))
        for h in hits
    ]


def _engine_candidates(
    rt: RetrievalServices,
    version: IndexVersion,
    index: HybridSearch,
    query: str,
    k: int,
    filters: dict[str, Any] | None,
    language: str,
    vector: np.ndarray | None = None,
) -> tuple[np.ndarray, list[_Candidate]]:
    """Hybrid inside the engine: one query, `k` candidates from each side, fused there;
    up to 2k hits (the union), as the in-process fusion yields."""
    if vector is None:
        vector = rt.embedder(version.embedding_model).encode([query], kind="query")[0]
    fusion = engine_fusion(fusion_policy(version.embedding_model), language, query)
    hits = index.search_hybrid(vector, query, 2 * k, filters, fusion=fusion, candidates=k)
    best = fusion.best()
    out = []
    for h in hits:
        fused = min(1.0, h.score / best)
        out.append(_Candidate(h.chunk_id, h.payload, fused=fused, score=fused))
    return vector, out


def _bm25_candidates(
    rt: RetrievalServices, version: IndexVersion, query: str, k: int, filters: dict[str, Any] | None
) -> list[_Candidate]:
    bm25 = rt.bm25.for_version(version)
    return [
        _Candidate(bm25.ids[row], bm25.payloads[row], bm25=score, score=score)
        for row, score in bm25.search(query, k, filters)
    ]


def _fuse(
    dense: list[_Candidate], lexical: list[_Candidate], w_dense: float, method: str
) -> list[_Candidate]:
    """One list from both, best first; `fused` (and `score`) in [0, 1]: 1 is a hit ranked
    first (RRF) or scored highest (DBSF, convex) by every list."""
    by_id: dict[str, _Candidate] = {c.chunk_id: c for c in dense}
    for c in lexical:
        if c.chunk_id in by_id:
            by_id[c.chunk_id].bm25 = c.bm25
        else:
            by_id[c.chunk_id] = c
    fused = fuse_scores(
        [(c.chunk_id, c.dense or 0.0) for c in dense],
        [(c.chunk_id, c.bm25 or 0.0) for c in lexical],
        w_dense,
        method,
    )
    scale = RRF_K + 1 if method == "rrf" else 1.0  # RRF's best is 1 / (RRF_K + 1)
    out = []
    for chunk_id, value in fused:
        cand = by_id[str(chunk_id)]
        cand.fused = min(1.0, value * scale)
        cand.score = cand.fused
        out.append(cand)
    return out


def _chunk_rows(rt: RetrievalServices, ids: list[str]) -> dict[str, Row[Any]]:
    """The catalog rows of chunk `ids` that still exist, by id: only the columns a hit
    needs (no ORM objects, no JSON metadata decoding)."""
    if not ids:
        return {}
    with rt.db.session() as s:
        rows = s.execute(
            select(
                Chunk.id,
                Chunk.document_id,
                Chunk.text,
                Chunk.text_hash,
                Document.filename,
                DocumentRevision.number,
            )
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentRevision, DocumentRevision.id == Chunk.revision_id)
            .where(Chunk.id.in_(ids))
        ).all()
    return {row.id: row for row in rows}


def _existing_head(
    rt: RetrievalServices, candidates: list[_Candidate], top_k: int
) -> tuple[list[_Candidate], dict[str, Row[Any]]]:
    """The first `top_k` candidates whose chunk rows still exist, and those rows: looks
    up top_k ids (one query unless some were deleted since the snapshot), not the pool."""
    kept: list[_Candidate] = []
    by_id: dict[str, Row[Any]] = {}
    pos = 0
    while len(kept) < top_k and pos < len(candidates):
        window = candidates[pos : pos + top_k - len(kept)]
        pos += len(window)
        found = _chunk_rows(rt, [c.chunk_id for c in window])
        by_id.update(found)
        kept += [c for c in window if c.chunk_id in found]
    return kept, by_id


def _vectors(rt: RetrievalServices, version: IndexVersion, rows: list[Row[Any]]) -> np.ndarray:
    """The candidates' vectors: from the embedding cache (the ingest path filled it),
    embedding only what is missing."""

    embedder = rt.embedder(version.embedding_model)
    hashes = [row.text_hash or sha256_hex(row.text) for row in rows]
    found = rt.embedding_cache.get_many(embedder.digest, hashes)
    missing = [i for i, h in enumerate(hashes) if h not in found]
    if missing:
        fresh = embedder.encode([rows[i].text for i in missing])
        for i, vector in zip(missing, fresh, strict=True):
            found[hashes[i]] = vector
    return np.vstack([found[h] for h in hashes]).astype(np.float32)


@timed_retrieval
def retrieve(
    rt: RetrievalServices,
    *,
    kb: KnowledgeBase,
    query: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    score_threshold: float | None = None,
    index_version: int | None = None,
    mode: str | None = None,
    mmr_diversity: bool = False,
    mmr_lambda: float = 0.7,
    rerank: bool | None = None,
    where: Callable[[Mapping[str, Any]], bool] | None = None,
) -> RetrievalResult:
    """Best chunks first. `rerank=None` reranks when the KB has a reranker configured;
    `rerank=True` without one is an InvalidInput. `where` keeps only the candidates whose
    index payload (upload metadata, filename, document_id, page_number, section,
    language) it accepts, on top of `filters`; the pool grows until top_k pass (see
    MAX_WHERE_CANDIDATES)."""
    query = query.strip()
    if not query:
        raise InvalidInput("query is empty; send the text to search for")
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    mode = mode or DEFAULT_MODE
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0.0 <= mmr_lambda <= 1.0:
        raise InvalidInput(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}")
    filters = check_filters(filters)
    reranker_ref = (kb.config or {}).get("reranker")
    if rerank and not reranker_ref:
        raise InvalidInput(
            f"knowledge base {kb.name!r} has no reranker; set one with PATCH /v1/kbs/"
            f"{kb.name} {{'reranker': '/path/to/cross-encoder'}} or send rerank=false"
        )
    use_rerank = bool(reranker_ref) and rerank is not False
    language = detect_language(query) if mode == "hybrid" else None

    with rt.db.session() as s:
        version = queryable_version(session=s, kb=kb, number=index_version)
    if version is None:
        return RetrievalResult(index_version=None, results=[], mode=mode, language=language)
    # Resolve the version once; the snapshot stays valid even if a writer publishes
    # a newer one while this request runs.
    pool = top_k
    if mode == "hybrid" or use_rerank or mmr_diversity:
        pool = min(MAX_CANDIDATES, max(MIN_CANDIDATES, 4 * top_k))
    fetch = pool
    if where is not None:
        fetch = min(MAX_WHERE_CANDIDATES, max(pool, MIN_CANDIDATES, 4 * top_k))
    query_vector: np.ndarray | None = None
    index = rt.indexes.reader(version)
    # Qdrant versions with BM25 sparse vectors fuse inside the engine (module docstring).
    in_engine = mode == "hybrid" and isinstance(index, HybridSearch) and index.lexical
    while True:
        if in_engine:
            query_vector, candidates = _engine_candidates(
                rt, version, index, query, fetch, filters, language or "other", query_vector
            )
        else:
            query_vector, candidates = _dense_candidates(
                rt, version, index, query, fetch, filters, query_vector
            )
        exhausted = len(candidates) < fetch  # every chunk passing `filters` was seen
        if mode == "hybrid" and not in_engine:
            lexical = _bm25_candidates(rt, version, query, fetch, filters)
            policy = fusion_policy(version.embedding_model)
            candidates = _fuse(
                candidates, lexical, policy.weight(language or "other", query), policy.method
            )
        if where is None:
            break
        candidates = [c for c in candidates if where(c.payload)]
        if len(candidates) >= top_k or exhausted or fetch >= MAX_WHERE_CANDIDATES:
            # At most what a pool yields without `where` (one pool from each list).
            candidates = candidates[: 2 * pool]
            break
        fetch = min(MAX_WHERE_CANDIDATES, 4 * fetch)
    if not candidates:
        return RetrievalResult(
            index_version=version.number,
            results=[],
            mode=mode,
            language=language,
            embedding_model=version.embedding_model,
        )

    # Chunks deleted between the index snapshot and this lookup are gone. Without a
    # reranker or MMR the scores are final, so only the best top_k (past the threshold)
    # need their rows; otherwise every candidate does.
    if use_rerank or mmr_diversity:
        by_id = _chunk_rows(rt, [c.chunk_id for c in candidates])
        candidates = [c for c in candidates if c.chunk_id in by_id]
    else:
        if score_threshold is not None:
            candidates = [c for c in candidates if c.score >= score_threshold]
        candidates, by_id = _existing_head(rt, candidates, top_k)

    if use_rerank and candidates:
        head = candidates[:RERANK_CANDIDATES]
        scores = rt.reranker(reranker_ref).score(query, [by_id[c.chunk_id].text for c in head])
        for cand, value in zip(head, scores.tolist(), strict=True):
            cand.rerank = float(value)
            cand.score = float(value)
        candidates = sorted(head, key=lambda c: -c.score) + candidates[RERANK_CANDIDATES:]

    if score_threshold is not None:
        candidates = [c for c in candidates if c.score >= score_threshold]
    if mmr_diversity and len(candidates) > 1:
        vectors = _vectors(rt, version, [by_id[c.chunk_id] for c in candidates])
        order = mmr(
            query_vector,
            vectors,
            [c.score for c in candidates],
            top_k=top_k,
            lambda_=mmr_lambda,
        )
        candidates = [candidates[i] for i in order]
    candidates = candidates[:top_k]

    results = []
    for cand in candidates:
        row = by_id[cand.chunk_id]
        meta = {k: v for k, v in cand.payload.items() if k not in _HIDDEN_PAYLOAD and v is not None}
        meta["revision"] = row.number
        meta["kb"] = kb.name
        results.append(
            RetrievedChunk(
                chunk_id=row.id,
                document_id=row.document_id,
                filename=row.filename,
                text=row.text,
                score=round(cand.score, 6),
                metadata=meta,
                scores={
                    "dense": _round(cand.dense),
                    "bm25": _round(cand.bm25),
                    "fused": _round(cand.fused),
                    "rerank": _round(cand.rerank),
                },
            )
        )
    return RetrievalResult(
        index_version=version.number,
        results=results,
        mode=mode,
        language=language,
        embedding_model=version.embedding_model,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass
class MultiRetrievalResult:
    index_versions: dict[str, int | None]
    results: list[RetrievedChunk]


def retrieve_many(
    rt: RetrievalServices, *, kbs: list[KnowledgeBase], query: str, top_k: int = 5, **options: Any
) -> MultiRetrievalResult:
    """Retrieve from each KB (same options), then fuse the per-KB rankings by RRF; each
    hit names its KB in `metadata["kb"]` and keeps its own KB's `score`, with the
    cross-KB fused value in `scores["kbs_fused"]`."""
    if not kbs:
        raise InvalidInput("kbs is empty; name at least one knowledge base")
    names = [kb.name for kb in kbs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"kbs lists a knowledge base twice: {names}")
    per_kb = {kb.name: retrieve(rt, kb=kb, query=query, top_k=top_k, **options) for kb in kbs}
    hits = {(name, r.chunk_id): r for name, res in per_kb.items() for r in res.results}
    fused = rrf([[f"{name}\0{r.chunk_id}" for r in res.results] for name, res in per_kb.items()])
    best = 1.0 / (RRF_K + 1)
    results = []
    for key, value in list(fused.items())[:top_k]:
        name, chunk_id = key.split("\0", 1)
        hit = hits[(name, chunk_id)]
        hit.scores["kbs_fused"] = round(value / best, 6)
        results.append(hit)
    return MultiRetrievalResult(
        index_versions={name: res.index_version for name, res in per_kb.items()},
        results=results,
    )
