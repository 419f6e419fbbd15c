"""The ingestion jobs. Ingest jobs run in batches (`ingest.stream.ingest_batch`): each
takes one document revision into every active (non-retired) index version of its KB,
each with that version's own config, so a version building in the background never
misses a change. `build_version` fills a new version from the KB's current documents;
`gc_versions` removes retired versions' data. All are safe to retry: chunk ids are
deterministic and index upserts idempotent."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select, update

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    RevisionStatus,
    VersionStatus,
    utcnow,
)
from core.errors import StageFailed
from core.jobs import JobContext, PermanentJobError
from core.types import Piece, StageReport
from index.versions import BUILD_JOB, GC_JOB, active_versions
from ingest.config import IngestionConfig
from ingest.documents import INGEST_JOB
from ingest.pipeline import IngestPipeline
from ingest.revisions import (
    RevisionRef,
    Superseded,
    check_current,
    current_revisions,
    payloads_for,
    pipeline_for,
    prepared_chunks,
    save_chunks,
    set_status,
    stored_chunks,
)
from ingest.stream import ingest_batch

if TYPE_CHECKING:
    from ingest.services import IngestServices

log = logging.getLogger(__name__)


def revision_chunks(
    rt: IngestServices,
    pipeline: IngestPipeline,
    ref: RevisionRef,
    *,
    report: StageReport,
) -> list[Piece]:
    """The revision's chunks under this pipeline config, with vectors. Chunks this config
    already produced are reused (their vectors come from the embedding cache); otherwise
    the raw bytes go through the whole pipeline and the chunk rows are saved in one
    transaction (a failed run leaves the old ones in place)."""
    config_hash = pipeline.config_hash
    with rt.db.session() as s:
        stored = stored_chunks(s, ref, config_hash)
    if stored:
        return pipeline.embed(stored, report)
    result = prepared_chunks(rt, pipeline, ref)
    pipeline.embed_documents([result.chunks], [result.report])
    report.counts.update(result.report.counts)
    report.seconds.update(result.report.seconds)
    with rt.db.session() as s:
        check_current(s, ref)
        save_chunks(s, ref, result.chunks, config_hash)
    return result.chunks


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
            except Superseded:
                continue  # replaced meanwhile: the newer revision's job adds it
            except (StageFailed, PermanentJobError) as exc:
                failures.append(f"{ref.filename}: {exc}")
        with rt.indexes.writer(version) as index:
            current = current_revisions(rt, [ref for ref, _ in prepared])
            for ref, chunks in prepared:
                if ref.revision_id not in current:
                    continue
                index.upsert(
                    [p.id for p in chunks],
                    np.vstack([p.embedding for p in chunks]).astype(np.float32),
                    payloads_for(ref, chunks),
                    [p.text for p in chunks],  # Qdrant: BM25 sparse vectors
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
    set_status(rt, [payload["revision_id"]], RevisionStatus.FAILED, error=reason)


def record_build_failure(rt: IngestServices, payload: dict[str, Any], reason: str) -> None:
    with rt.db.session() as s:
        s.execute(
            update(IndexVersion)
            .where(IndexVersion.id == payload["version_id"])
            .values(error=reason)
        )


def register_handlers(rt: IngestServices) -> None:
    rt.workers.register_batch(
        INGEST_JOB,
        lambda items: ingest_batch(rt, items),
        max_batch=rt.settings.ingest_batch_documents,
        on_final_failure=lambda p, reason: record_failure(rt, p, reason),
    )
    rt.workers.register(
        BUILD_JOB,
        lambda p, ctx: build_version(rt, p, ctx),
        on_final_failure=lambda p, reason: record_build_failure(rt, p, reason),
    )
    rt.workers.register(GC_JOB, lambda p, ctx: gc_versions(rt, p, ctx))
