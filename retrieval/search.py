"""Dense retrieval against a knowledge base's live index version, with citations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import Chunk, Document, DocumentRevision
from core.errors import InvalidInput
from index.versions import queryable_version

if TYPE_CHECKING:
    from core.catalog.models import KnowledgeBase
    from core.runtime import Runtime

MAX_TOP_K = 100


@dataclass
class RetrievedChunk:
    chunk_id: str
    document_id: str
    filename: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RetrievalResult:
    index_version: int | None
    results: list[RetrievedChunk]


def check_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Equality filters only: scalar values, or a list of scalars meaning 'any of'."""
    if not filters:
        return None
    scalar = str | int | float | bool
    for key, value in filters.items():
        ok = isinstance(value, scalar) or (
            isinstance(value, list) and value and all(isinstance(v, scalar) for v in value)
        )
        if not ok:
            raise InvalidInput(
                f"filter {key!r}: expected a string, number, boolean or a "
                f"non-empty list of them, got {value!r}"
            )
    return filters


def retrieve(
    rt: Runtime,
    *,
    kb: KnowledgeBase,
    query: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    score_threshold: float | None = None,
    index_version: int | None = None,
) -> RetrievalResult:
    query = query.strip()
    if not query:
        raise InvalidInput("query is empty; send the text to search for")
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    filters = check_filters(filters)
    with rt.db.session() as s:
        version = queryable_version(session=s, kb=kb, number=index_version)
    if version is None:
        return RetrievalResult(index_version=None, results=[])
    # Resolve the version once; the snapshot stays valid even if a writer publishes
    # a newer one while this request runs.
    index = rt.indexes.reader(version)
    vector = rt.embedder(version.embedding_model).encode([query])[0]
    hits = index.search(vector, top_k, filters)
    if score_threshold is not None:
        hits = [h for h in hits if h.score >= score_threshold]
    if not hits:
        return RetrievalResult(index_version=version.number, results=[])
    with rt.db.session() as s:
        rows = s.execute(
            select(Chunk, Document.filename, DocumentRevision.number)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentRevision, DocumentRevision.id == Chunk.revision_id)
            .where(Chunk.id.in_([h.chunk_id for h in hits]))
        ).all()
        by_id = {chunk.id: (chunk, filename, number) for chunk, filename, number in rows}
        results = []
        for hit in hits:
            if hit.chunk_id not in by_id:
                continue  # deleted between the index snapshot and this lookup
            chunk, filename, number = by_id[hit.chunk_id]
            meta = {
                k: v
                for k, v in hit.payload.items()
                if k not in {"chunk_id", "document_id", "filename"} and v is not None
            }
            meta["revision"] = number
            results.append(
                RetrievedChunk(
                    chunk_id=chunk.id,
                    document_id=chunk.document_id,
                    filename=filename,
                    text=chunk.text,
                    score=round(hit.score, 6),
                    metadata=meta,
                )
            )
    return RetrievalResult(index_version=version.number, results=results)
