"""The ingestion jobs. `ingest_revision` takes one document revision into every active
(non-retired) index version of its KB, each with that version's own config, so a version
building in the background never misses a change. `build_version` fills a new version
from the KB's current documents; `gc_versions` removes retired versions' data. All are
safe to retry: chunk ids are deterministic and index upserts idempotent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
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
from core.types import Piece, StageReport, sha256_hex
from index.versions import BUILD_JOB, GC_JOB, active_versions
from ingest.config import IngestionConfig
from ingest.documents import INGEST_JOB
from ingest.pipeline import STAGE_STATUS, IngestPipeline, build_pipeline

if TYPE_CHECKING:
    from ingest.services import IngestServices

log = logging.getLogger(__name__)

_STAGE_ORDER = [
    "parse",
    "clean",
    "boilerplate",
    "redact",
    "chunk",
    "dedupe",
    "near_dedupe",
    "embed",
]


def chunk_id(
    *, kb_id: str, document_id: str, revision_id: str, position: int, config_hash: str
) -> str:
    return sha256_hex(f"{kb_id}:{document_id}:{revision_id}:{position}:{config_hash}")[:32]


def pipeline_for(rt: IngestServices, config: IngestionConfig) -> IngestPipeline:
    return build_pipeline(
        config,
        embedder=rt.embedder(config.embedding_model),
        cache=rt.embedding_cache,
        redactor_factory=rt.redactor,
        parser=rt.parser(),
    )


@dataclass
class RevisionRef:
    kb_id: str
    document_id: str
    revision_id: str
    filename: str
    media_type: str
    sha: str
    metadata: dict[str, Any]


def revision_chunks(
    rt: IngestServices,
    pipeline: IngestPipeline,
    ref: RevisionRef,
    *,
    report: StageReport,
    on_stage: Any = None,
    reuse: bool = True,
) -> list[Piece]:
    """The revision's chunks under this pipeline config, with vectors. Chunks this config
    already produced are reused (their vectors come from the embedding cache) unless
    `reuse` is False; otherwise the raw bytes go through the whole pipeline and the chunk
    rows are replaced in one transaction (a failed run leaves the old ones in place)."""
    config_hash = pipeline.config_hash
    with rt.db.session() as s:
        rows = (
            []
            if not reuse
            else list(
                s.execute(
                    select(Chunk)
                    .where(Chunk.revision_id == ref.revision_id, Chunk.config_hash == config_hash)
                    .order_by(Chunk.position)
                ).scalars()
            )
        )
    if rows:
        pieces = [
            Piece(text=r.text, metadata=dict(r.metadata_), id=r.id, token_count=r.token_count)
            for r in rows
        ]
        return pipeline.embed(pieces, report)
    try:
        data = rt.blobs.get(ref.sha)
    except FileNotFoundError as exc:
        raise PermanentJobError(
            f"raw bytes of {ref.filename!r} are missing from the blob store"
        ) from exc
    result = pipeline.run(data, media_type=ref.media_type, filename=ref.filename, on_stage=on_stage)
    report.counts.update(result.report.counts)
    report.seconds.update(result.report.seconds)
    if not result.chunks:
        raise StageFailed(
            "chunk", "no text left to index after cleaning and redaction", document=ref.filename
        )
    for piece in result.chunks:
        piece.id = chunk_id(
            kb_id=ref.kb_id,
            document_id=ref.document_id,
            revision_id=ref.revision_id,
            position=piece.metadata["position"],
            config_hash=config_hash,
        )
    try:
        with rt.db.session() as s:
            s.execute(
                delete(Chunk).where(
                    Chunk.revision_id == ref.revision_id, Chunk.config_hash == config_hash
                )
            )
            s.add_all(
                Chunk(
                    id=p.id,
                    kb_id=ref.kb_id,
                    document_id=ref.document_id,
                    revision_id=ref.revision_id,
                    position=p.metadata["position"],
                    text=p.text,
                    text_hash=p.text_hash,
                    token_count=p.token_count or 0,
                    metadata_=p.metadata,
                    config_hash=config_hash,
                )
                for p in result.chunks
            )
    except IntegrityError as exc:
        raise PermanentJobError(
            f"{ref.filename!r} was deleted while it was being ingested"
        ) from exc
    return result.chunks


def payloads_for(ref: RevisionRef, chunks: list[Piece]) -> list[dict[str, Any]]:
    base = {k: v for k, v in ref.metadata.items() if isinstance(v, str | int | float | bool)}
    return [
        {
            **base,
            "document_id": ref.document_id,
            "revision_id": ref.revision_id,
            "filename": ref.filename,
            "page_number": p.metadata.get("page_number"),
            "section": p.metadata.get("section"),
            "language": p.metadata.get("language"),
        }
        for p in chunks
    ]


def document_language(chunks: list[Piece]) -> str | None:
    """The language most of the document's text is in (by characters)."""
    weights: dict[str, int] = {}
    for p in chunks:
        lang = p.metadata.get("language")
        if lang:
            weights[lang] = weights.get(lang, 0) + len(p.text)
    return max(weights, key=weights.__getitem__) if weights else None


def _is_current(rt: IngestServices, ref: RevisionRef) -> bool:
    with rt.db.session() as s:
        doc = s.get(Document, ref.document_id)
        return doc is not None and doc.current_revision_id == ref.revision_id


def ensure_versions(
    rt: IngestServices, kb: KnowledgeBase, config: IngestionConfig, pipeline: IngestPipeline
) -> list[IndexVersion]:
    """The KB's active versions; the first upload creates version 1 and makes it live."""
    for _ in range(3):
        with rt.db.session() as s:
            versions = active_versions(session=s, kb_id=kb.id)
        if versions:
            return versions
        embedder = rt.embedder(config.embedding_model)
        params: dict[str, Any] = (
            {"index_type": rt.settings.faiss_index_type}
            if rt.settings.index_backend == "faiss"
            else {}
        )
        try:
            with rt.db.session() as s:
                version = IndexVersion(
                    kb_id=kb.id,
                    number=1,
                    status=VersionStatus.LIVE,
                    backend=rt.settings.index_backend,
                    embedding_model=config.embedding_model,
                    dimension=embedder.dimension,
                    config=config.model_dump(),
                    config_hash=pipeline.config_hash,
                    index_params=params,
                    progress=1.0,
                    ready_at=utcnow(),
                    promoted_at=utcnow(),
                )
                s.add(version)
            return [version]
        except IntegrityError:
            continue  # another worker created it first
    raise RuntimeError(f"could not create the first index version of {kb.name!r}")


def _set_status(rt: IngestServices, revision_id: str, status: str, **values: Any) -> None:
    with rt.db.session() as s:
        s.execute(
            update(DocumentRevision)
            .where(DocumentRevision.id == revision_id)
            .values(status=status, **values)
        )


def ingest_revision(rt: IngestServices, payload: dict[str, Any], ctx: JobContext) -> str:
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
        force = bool(payload.get("force"))
        if rev.status == RevisionStatus.INDEXED and not force:
            return "already indexed"
        kb_config = IngestionConfig.model_validate(kb.config)
        ref = RevisionRef(
            kb.id,
            doc.id,
            rev.id,
            doc.filename,
            rev.media_type,
            rev.content_sha256,
            dict(doc.metadata_ or {}),
        )

    def on_stage(stage: str) -> None:
        _set_status(rt, revision_id, STAGE_STATUS.get(stage, RevisionStatus.PARSING))
        done = _STAGE_ORDER.index(stage) if stage in _STAGE_ORDER else 0
        ctx.progress(done / (len(_STAGE_ORDER) + 1), f"{stage} {ref.filename}")

    versions = ensure_versions(rt, kb, kb_config, pipeline_for(rt, kb_config))
    # One pipeline run per distinct config; versions that differ only in backend or index
    # type share chunks and vectors.
    groups: dict[str, tuple[IngestPipeline, list[IndexVersion]]] = {}
    for version in versions:
        pipeline = pipeline_for(rt, IngestionConfig.model_validate(version.config))
        groups.setdefault(pipeline.config_hash, (pipeline, []))[1].append(version)

    reports: dict[str, StageReport] = {}
    total_chunks = 0
    for config_hash, (pipeline, group) in groups.items():
        report = reports[config_hash] = StageReport()
        with rt.db.session() as s:
            before = set(
                s.execute(
                    select(Chunk.id).where(
                        Chunk.revision_id == ref.revision_id, Chunk.config_hash == config_hash
                    )
                ).scalars()
            )
        chunks = revision_chunks(
            rt, pipeline, ref, report=report, on_stage=on_stage, reuse=not force
        )
        # A forced re-run may yield fewer chunks: their old vectors go too.
        stale = sorted(before - {p.id for p in chunks})
        _set_status(rt, revision_id, RevisionStatus.INDEXING)
        ctx.progress(0.9, f"indexing {ref.filename}")
        with rt.db.session() as s:
            old_ids = list(
                s.execute(
                    select(Chunk.id).where(
                        Chunk.document_id == ref.document_id,
                        Chunk.revision_id != ref.revision_id,
                        Chunk.config_hash == config_hash,
                    )
                ).scalars()
            )
        matrix = np.vstack([p.embedding for p in chunks]).astype(np.float32)
        payloads = payloads_for(ref, chunks)
        for version in group:
            with rt.indexes.writer(version) as index:
                if not _is_current(rt, ref):
                    break  # replaced or deleted meanwhile: the newer job owns the index now
                # New vectors in and the old revision's out, in one published snapshot.
                index.upsert([p.id for p in chunks], matrix, payloads)
                index.delete(old_ids + stale)
        if any(v.status == VersionStatus.LIVE for v in group) or not total_chunks:
            total_chunks = len(chunks)
            live_report = report
            language = document_language(chunks)

    with rt.db.session() as s:
        doc = s.get(Document, ref.document_id)
        if doc is None or doc.current_revision_id != ref.revision_id:
            s.execute(
                update(DocumentRevision)
                .where(DocumentRevision.id == revision_id)
                .values(status=RevisionStatus.SUPERSEDED)
            )
            return f"{ref.filename}: replaced or deleted while it was being ingested"
        s.execute(
            delete(Chunk).where(
                Chunk.document_id == ref.document_id, Chunk.revision_id != ref.revision_id
            )
        )
        s.execute(
            update(DocumentRevision)
            .where(
                DocumentRevision.document_id == ref.document_id,
                DocumentRevision.id != ref.revision_id,
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
                chunk_count=total_chunks,
                error=None,
                report={
                    "counts": live_report.counts,
                    "seconds": live_report.seconds,
                    "language": language,
                },
            )
        )
    return f"indexed {ref.filename}: {total_chunks} chunks in {len(versions)} version(s)"


def build_version(rt: IngestServices, payload: dict[str, Any], ctx: JobContext) -> str:
    """Fill a `building` version from the KB's current indexed revisions, in batches,
    then mark it `ready`. Pending revisions are added by their own ingest jobs (this
    version is active, so they include it); a revision replaced mid-build is skipped."""
    started = time.perf_counter()
    with rt.db.session() as s:
        version = s.get(IndexVersion, payload["version_id"])
        if version is None or version.status != VersionStatus.BUILDING:
            return "version is no longer building; nothing to do"
        config = IngestionConfig.model_validate(version.config)
        rows = s.execute(
            select(Document, DocumentRevision)
            .join(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
            .where(
                Document.kb_id == version.kb_id, DocumentRevision.status == RevisionStatus.INDEXED
            )
            .order_by(Document.filename)
        ).all()
        refs = [
            RevisionRef(
                version.kb_id,
                d.id,
                r.id,
                d.filename,
                r.media_type,
                r.content_sha256,
                dict(d.metadata_ or {}),
            )
            for d, r in rows
        ]
    pipeline = pipeline_for(rt, config)
    with rt.db.session() as s:
        s.execute(
            update(IndexVersion)
            .where(IndexVersion.id == version.id)
            .values(config_hash=pipeline.config_hash, progress=0.0, error=None)
        )
    report = StageReport()
    failures: list[str] = []
    chunks_total = 0
    batch = max(1, rt.settings.build_batch_documents)
    for start in range(0, len(refs), batch):
        if _retired(rt, version.id):
            return f"version {version.number} was retired during its build; stopped"
        prepared: list[tuple[RevisionRef, list[Piece]]] = []
        for ref in refs[start : start + batch]:
            try:
                prepared.append((ref, revision_chunks(rt, pipeline, ref, report=report)))
            except (StageFailed, PermanentJobError) as exc:
                failures.append(f"{ref.filename}: {exc}")
        with rt.indexes.writer(version) as index:
            for ref, chunks in prepared:
                if not _is_current(rt, ref):
                    continue
                index.upsert(
                    [p.id for p in chunks],
                    np.vstack([p.embedding for p in chunks]).astype(np.float32),
                    payloads_for(ref, chunks),
                )
                chunks_total += len(chunks)
        done = min(len(refs), start + batch)
        with rt.db.session() as s:
            s.execute(
                update(IndexVersion)
                .where(IndexVersion.id == version.id)
                .values(progress=done / max(1, len(refs)))
            )
        ctx.progress(done / max(1, len(refs)), f"version {version.number}: {done}/{len(refs)}")
    stats = {
        "documents": len(refs) - len(failures),
        "chunks": chunks_total,
        "failed_documents": failures[:50],
        "seconds": report.seconds,
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    with rt.db.session() as s:
        s.execute(
            update(IndexVersion)
            .where(IndexVersion.id == version.id, IndexVersion.status == VersionStatus.BUILDING)
            .values(
                status=VersionStatus.READY,
                progress=1.0,
                ready_at=utcnow(),
                stats=stats,
                error=("; ".join(failures)[:2000] or None),
            )
        )
    return f"version {version.number} ready: {chunks_total} chunks from {len(refs)} documents"


def _retired(rt: IngestServices, version_id: str) -> bool:
    with rt.db.session() as s:
        v = s.get(IndexVersion, version_id)
        return v is None or v.status == VersionStatus.RETIRED


def gc_versions(rt: IngestServices, payload: dict[str, Any], ctx: JobContext) -> str:
    """Drop the index data of retired versions beyond the newest `keep_retired_versions`
    per KB, and chunk rows no active version uses."""
    keep = rt.settings.keep_retired_versions
    with rt.db.session() as s:
        query = select(IndexVersion).where(
            IndexVersion.status == VersionStatus.RETIRED, IndexVersion.purged_at.is_(None)
        )
        if payload.get("kb_id"):
            query = query.where(IndexVersion.kb_id == payload["kb_id"])
        retired = list(s.execute(query.order_by(IndexVersion.retired_at.desc())).scalars())
    seen: dict[str, int] = {}
    purged = []
    for version in retired:
        seen[version.kb_id] = seen.get(version.kb_id, 0) + 1
        if seen[version.kb_id] <= keep:
            continue
        rt.indexes.drop(version)
        with rt.db.session() as s:
            s.execute(
                update(IndexVersion)
                .where(IndexVersion.id == version.id)
                .values(purged_at=utcnow(), vector_count=0)
            )
        purged.append(version)
    for kb_id in {v.kb_id for v in purged}:
        with rt.db.session() as s:
            in_use = {v.config_hash for v in active_versions(session=s, kb_id=kb_id)}
            s.execute(delete(Chunk).where(Chunk.kb_id == kb_id, Chunk.config_hash.not_in(in_use)))
    return f"purged {len(purged)} retired version(s)"


def record_failure(rt: IngestServices, payload: dict[str, Any], reason: str) -> None:
    _set_status(rt, payload["revision_id"], RevisionStatus.FAILED, error=reason)


def record_build_failure(rt: IngestServices, payload: dict[str, Any], reason: str) -> None:
    with rt.db.session() as s:
        s.execute(
            update(IndexVersion)
            .where(IndexVersion.id == payload["version_id"])
            .values(error=reason)
        )


def register_handlers(rt: IngestServices) -> None:
    rt.workers.register(
        INGEST_JOB,
        lambda p, ctx: ingest_revision(rt, p, ctx),
        on_final_failure=lambda p, reason: record_failure(rt, p, reason),
    )
    rt.workers.register(
        BUILD_JOB,
        lambda p, ctx: build_version(rt, p, ctx),
        on_final_failure=lambda p, reason: record_build_failure(rt, p, reason),
    )
    rt.workers.register(GC_JOB, lambda p, ctx: gc_versions(rt, p, ctx))
