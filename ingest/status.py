"""Per-KB ingestion status: where documents are, how fast they move, what is stuck."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from core.catalog.models import (
    Document,
    DocumentRevision,
    Job,
    JobStatus,
    RevisionStatus,
    utcnow,
)
from ingest.documents import (
    INGEST_JOB,
    THROUGHPUT_WINDOW,
    finished_per_minute,
    queue_depth,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.catalog.models import KnowledgeBase
    from ingest.services import IngestServices

_WAITING = [
    s.value
    for s in RevisionStatus
    if s not in (RevisionStatus.INDEXED, RevisionStatus.FAILED, RevisionStatus.SUPERSEDED)
]


def status_counts(*, session: Session, kb_id: str) -> dict[str, int]:
    """Documents per status of their current revision."""
    return dict(
        session.execute(
            select(DocumentRevision.status, func.count())
            .join(Document, Document.current_revision_id == DocumentRevision.id)
            .where(Document.kb_id == kb_id)
            .group_by(DocumentRevision.status)
        ).all()
    )


def ingestion_status(rt: IngestServices, *, kb: KnowledgeBase) -> dict[str, Any]:
    now = utcnow()
    with rt.db.session() as s:
        current = (
            select(DocumentRevision)
            .join(Document, Document.current_revision_id == DocumentRevision.id)
            .where(Document.kb_id == kb.id)
        )
        counts = status_counts(session=s, kb_id=kb.id)
        oldest = s.execute(
            current.where(DocumentRevision.status.in_(_WAITING))
            .order_by(DocumentRevision.created_at)
            .limit(1)
        ).scalar_one_or_none()
        jobs = dict(
            s.execute(
                select(Job.status, func.count())
                .where(Job.kb_id == kb.id, Job.kind == INGEST_JOB)
                .group_by(Job.status)
            ).all()
        )
        throughput = {}
        for label, window in (
            ("last_5_minutes", timedelta(minutes=5)),
            ("last_hour", timedelta(hours=1)),
        ):
            docs, chunks = s.execute(
                select(
                    func.count(DocumentRevision.id),
                    func.coalesce(func.sum(DocumentRevision.chunk_count), 0),
                )
                .join(Document, Document.id == DocumentRevision.document_id)
                .where(Document.kb_id == kb.id, DocumentRevision.indexed_at >= now - window)
            ).one()
            minutes = window.total_seconds() / 60
            throughput[label] = {
                "documents": docs,
                "chunks": int(chunks),
                "documents_per_minute": round(docs / minutes, 3),
            }
        depth = queue_depth(session=s, kb_id=kb.id)
        overall = queue_depth(session=s)
        per_minute = finished_per_minute(session=s, kb_id=kb.id)
        failures = s.execute(
            select(
                Document.id, Document.filename, DocumentRevision.error, DocumentRevision.created_at
            )
            .join(DocumentRevision, Document.current_revision_id == DocumentRevision.id)
            .where(Document.kb_id == kb.id, DocumentRevision.status == RevisionStatus.FAILED)
            .order_by(DocumentRevision.created_at.desc())
            .limit(20)
        ).all()
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "jobs": {
            "queued": jobs.get(JobStatus.QUEUED, 0),
            "running": jobs.get(JobStatus.RUNNING, 0),
            "succeeded": jobs.get(JobStatus.SUCCEEDED, 0),
            # Jobs that used up their attempts: the dead-letter queue. Reprocess
            # a document to try again.
            "dead_letter": jobs.get(JobStatus.FAILED, 0),
        },
        "throughput": throughput,
        "oldest_pending": None
        if oldest is None
        else {
            "revision_id": oldest.id,
            "status": oldest.status,
            "created_at": oldest.created_at.isoformat() + "Z",
            "age_seconds": round((now - oldest.created_at).total_seconds(), 1),
        },
        "recent_failures": [
            {"document_id": d, "filename": f, "error": e, "created_at": c.isoformat() + "Z"}
            for d, f, e, c in failures
        ],
        "queue": _queue(rt, depth, overall, per_minute),
    }


def _queue(
    rt: IngestServices, depth: dict[str, int], overall: dict[str, int], per_minute: float
) -> dict[str, Any]:
    """The ingestion queue against its bounds (beyond them uploads get 429), how fast
    this KB's part drains and when it should be empty at that pace (None: nothing
    finished lately, so no estimate)."""
    waiting = depth["queued"] + depth["running"]
    if waiting == 0:
        eta: float | None = 0.0
    else:
        eta = round(waiting * 60 / per_minute, 1) if per_minute > 0 else None
    return {
        **depth,
        "limit": rt.settings.ingest_queue_max_per_kb,
        "overall": {**overall, "limit": rt.settings.ingest_queue_max},
        "documents_per_minute": round(per_minute, 3),
        "window_seconds": int(THROUGHPUT_WINDOW.total_seconds()),
        "eta_seconds": eta,
    }
