"""The ingestion job: one document revision through the pipeline into every live or
building index version of its knowledge base. Safe to retry: chunk ids are deterministic
and index upserts idempotent."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    RevisionStatus,
    VersionStatus,
    utcnow,
)
from core.errors import StageFailed
from core.jobs import JobContext, PermanentJobError
from core.types import Piece, sha256_hex
from ingest.config import IngestionConfig
from ingest.documents import INGEST_JOB
from ingest.pipeline import STAGE_STATUS, build_pipeline

if TYPE_CHECKING:
    from core.runtime import Runtime
    from ingest.embed import Embedder

log = logging.getLogger(__name__)

_STAGE_ORDER = ["parse", "clean", "redact", "chunk", "dedupe", "embed"]


def chunk_id(
    *, kb_id: str, document_id: str, revision_id: str, position: int, config_hash: str
) -> str:
    return sha256_hex(f"{kb_id}:{document_id}:{revision_id}:{position}:{config_hash}")[:32]


def ensure_live_version(
    rt: Runtime, *, kb: KnowledgeBase, config: IngestionConfig, embedder: Embedder, config_hash: str
) -> list[IndexVersion]:
    """The KB's non-retired versions; the first upload creates version 1 and makes it live."""
    for _ in range(3):
        with rt.db.session() as s:
            versions = list(
                s.execute(
                    select(IndexVersion)
                    .where(
                        IndexVersion.kb_id == kb.id, IndexVersion.status != VersionStatus.RETIRED
                    )
                    .order_by(IndexVersion.number)
                ).scalars()
            )
            if versions:
                return versions
        try:
            with rt.db.session() as s:
                version = IndexVersion(
                    kb_id=kb.id,
                    number=1,
                    status=VersionStatus.LIVE,
                    backend="faiss",
                    embedding_model=config.embedding_model,
                    dimension=embedder.dimension,
                    config=config.model_dump(),
                    config_hash=config_hash,
                    promoted_at=utcnow(),
                )
                s.add(version)
            return [version]
        except IntegrityError:
            continue  # another worker created it first
    raise RuntimeError(f"could not create the first index version of {kb.name!r}")


def _set_status(rt: Runtime, revision_id: str, status: str, **values: Any) -> None:
    with rt.db.session() as s:
        s.execute(
            update(DocumentRevision)
            .where(DocumentRevision.id == revision_id)
            .values(status=status, **values)
        )


def ingest_revision(rt: Runtime, payload: dict[str, Any], ctx: JobContext) -> str:
    revision_id = payload["revision_id"]
    with rt.db.session() as s:
        rev = s.get(DocumentRevision, revision_id)
        if rev is None:
            return "revision no longer exists (document deleted); nothing to do"
        doc = s.get(Document, rev.document_id)
        kb = s.get(KnowledgeBase, doc.kb_id) if doc else None
        if doc is None or kb is None:
            return "document deleted; nothing to do"
        if doc.current_revision_id != rev.id:
            rev.status = RevisionStatus.SUPERSEDED
            return "superseded by a newer revision before it was processed"
        if rev.status == RevisionStatus.INDEXED:
            return "already indexed"
        config = IngestionConfig.model_validate(kb.config)
        filename, media_type, sha = doc.filename, rev.media_type, rev.content_sha256
        document_id, metadata = doc.id, dict(doc.metadata_ or {})
    try:
        data = rt.blobs.get(sha)
    except FileNotFoundError as exc:
        raise PermanentJobError(
            f"raw bytes of {filename!r} are missing from the blob store"
        ) from exc

    embedder = rt.embedder(config.embedding_model)
    pipeline = build_pipeline(
        config, embedder=embedder, cache=rt.embedding_cache, redactor_factory=rt.redactor
    )

    def on_stage(stage: str) -> None:
        _set_status(rt, revision_id, STAGE_STATUS.get(stage, RevisionStatus.PARSING))
        done = _STAGE_ORDER.index(stage) if stage in _STAGE_ORDER else 0
        ctx.progress(done / (len(_STAGE_ORDER) + 1), f"{stage} {filename}")

    result = pipeline.run(data, media_type=media_type, filename=filename, on_stage=on_stage)
    if not result.chunks:
        raise StageFailed(
            "chunk", "no text left to index after cleaning and redaction", document=filename
        )
    config_hash = pipeline.config_hash
    chunks: list[Piece] = result.chunks
    for piece in chunks:
        piece.id = chunk_id(
            kb_id=kb.id,
            document_id=document_id,
            revision_id=revision_id,
            position=piece.metadata["position"],
            config_hash=config_hash,
        )

    ctx.progress(0.9, f"indexing {filename}")
    try:
        with rt.db.session() as s:
            s.execute(delete(Chunk).where(Chunk.revision_id == revision_id))
            s.add_all(
                Chunk(
                    id=p.id,
                    kb_id=kb.id,
                    document_id=document_id,
                    revision_id=revision_id,
                    position=p.metadata["position"],
                    text=p.text,
                    text_hash=p.text_hash,
                    token_count=p.token_count or 0,
                    metadata_=p.metadata,
                )
                for p in chunks
            )
            s.execute(
                update(DocumentRevision)
                .where(DocumentRevision.id == revision_id)
                .values(status=RevisionStatus.INDEXING)
            )
    except IntegrityError as exc:
        raise PermanentJobError(f"{filename!r} was deleted while it was being ingested") from exc

    versions = ensure_live_version(
        rt, kb=kb, config=config, embedder=embedder, config_hash=config_hash
    )
    with rt.db.session() as s:
        old_ids = list(
            s.execute(
                select(Chunk.id).where(
                    Chunk.document_id == document_id, Chunk.revision_id != revision_id
                )
            ).scalars()
        )
    ids = [p.id for p in chunks]
    vectors = [p.embedding for p in chunks]
    base_payload = {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)}
    payloads = [
        {
            **base_payload,
            "document_id": document_id,
            "revision_id": revision_id,
            "filename": filename,
            "page_number": p.metadata.get("page_number"),
            "section": p.metadata.get("section"),
        }
        for p in chunks
    ]
    import numpy as np

    matrix = np.vstack(vectors).astype(np.float32)
    for version in versions:
        if version.embedding_model != config.embedding_model:
            continue  # other models are rebuilt by their own version build jobs
        with rt.indexes.writer(version) as index:
            # New vectors go in and the old revision's go out in one published snapshot.
            index.upsert(ids, matrix, payloads)
            index.delete(old_ids)

    with rt.db.session() as s:
        s.execute(delete(Chunk).where(Chunk.id.in_(old_ids)))
        s.execute(
            update(DocumentRevision)
            .where(
                DocumentRevision.document_id == document_id,
                DocumentRevision.id != revision_id,
                DocumentRevision.status == RevisionStatus.INDEXED,
            )
            .values(status=RevisionStatus.SUPERSEDED)
        )
        s.execute(
            update(DocumentRevision)
            .where(DocumentRevision.id == revision_id)
            .values(
                status=RevisionStatus.INDEXED,
                indexed_at=utcnow(),
                chunk_count=len(chunks),
                error=None,
                report={"counts": result.report.counts, "seconds": result.report.seconds},
            )
        )
    return f"indexed {filename}: {len(chunks)} chunks"


def record_failure(rt: Runtime, payload: dict[str, Any], reason: str) -> None:
    _set_status(rt, payload["revision_id"], RevisionStatus.FAILED, error=reason)


def register_handlers(rt: Runtime) -> None:
    rt.workers.register(
        INGEST_JOB,
        lambda payload, ctx: ingest_revision(rt, payload, ctx),
        on_final_failure=lambda payload, reason: record_failure(rt, payload, reason),
    )
