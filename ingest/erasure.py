"""The ingestion layer's part of an erase: a document's raw bytes (every revision), its
rows (document, revisions, chunks), the embedding cache of its chunk texts, the jobs that
processed it, its vectors in every index version, and the filenames that version stats
quote; and, for an erase by data subject, which documents mention the values at all
(filename, metadata, chunk text or raw text: redaction keeps an e-mail out of the chunks,
not out of the uploaded file).

The order matters: rows go first, in one transaction, then the vectors. Both ingestion
write paths re-check under each version's writer lock that a revision is still its
document's current one, so a build or ingest that read the document before the erase
either wrote before the erase took that lock (and the erase removes it) or finds the
document gone and writes nothing: an erase is never undone by a write in flight."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    Job,
    JobStatus,
)
from core.erasure import Needles, Receipt, delete_embedding_cache, mentions_any
from index.snapshots import erase_snapshots
from ingest.services import IngestServices

log = logging.getLogger(__name__)

# Media types whose raw bytes are searched as text; anything else is parsed first.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-ndjson")


@dataclass
class DocumentTargets:
    """Ids of everything a set of documents owns. `texts` and `filenames` stay in memory
    (to find copies elsewhere) and never reach a receipt."""

    document_ids: list[str] = field(default_factory=list)
    kb_ids: list[str] = field(default_factory=list)
    revision_ids: list[str] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    chunk_ids: list[str] = field(default_factory=list)
    text_hashes: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    filenames: list[str] = field(default_factory=list)
    # When the earliest of the documents was first uploaded: older snapshots lack them.
    first_upload: datetime | None = None

    def ids(self) -> dict[str, list[str]]:
        """What an interrupted erase needs to finish (ids and hashes only)."""
        return {
            "document_ids": self.document_ids,
            "kb_ids": self.kb_ids,
            "chunk_ids": self.chunk_ids,
            "shas": self.shas,
            "since": [self.first_upload.isoformat()] if self.first_upload else [],
        }


def collect_documents(*, session: Session, document_ids: list[str]) -> DocumentTargets:
    targets = DocumentTargets()
    docs = session.execute(
        select(Document).where(Document.id.in_(document_ids)).order_by(Document.id)
    ).scalars()
    for doc in docs:
        targets.document_ids.append(doc.id)
        targets.filenames.append(doc.filename)
        if targets.first_upload is None or doc.created_at < targets.first_upload:
            targets.first_upload = doc.created_at
        if doc.kb_id not in targets.kb_ids:
            targets.kb_ids.append(doc.kb_id)
        for rev in doc.revisions:
            targets.revision_ids.append(rev.id)
            if rev.content_sha256 not in targets.shas:
                targets.shas.append(rev.content_sha256)
    if targets.document_ids:
        for chunk_id, text_hash, text in session.execute(
            select(Chunk.id, Chunk.text_hash, Chunk.text).where(
                Chunk.document_id.in_(targets.document_ids)
            )
        ):
            targets.chunk_ids.append(chunk_id)
            targets.text_hashes.append(text_hash)
            targets.texts.append(text)
    return targets


def documents_mentioning(rt: IngestServices, *, needles: Needles, kb_ids: list[str]) -> list[str]:
    """Ids of the documents in `kb_ids` whose filename, metadata, chunks or raw text (of
    any revision) mention a needle."""
    found: set[str] = set()
    with rt.db.session() as s:
        docs = list(s.execute(select(Document).where(Document.kb_id.in_(kb_ids))).scalars())
        for doc in docs:
            if needles.in_text(doc.filename) or needles.in_json(doc.metadata_):
                found.add(doc.id)
        for document_id, text in s.execute(
            select(Chunk.document_id, Chunk.text).where(Chunk.kb_id.in_(kb_ids))
        ):
            if document_id not in found and needles.in_text(text):
                found.add(document_id)
        revisions = [
            (doc.id, rev.content_sha256, rev.media_type, doc.filename)
            for doc in docs
            if doc.id not in found
            for rev in doc.revisions
        ]
    for document_id, sha, media_type, filename in revisions:
        if document_id not in found and needles.in_text(
            raw_text(rt, sha, media_type=media_type, filename=filename)
        ):
            found.add(document_id)
    return sorted(found)


def raw_text(rt: IngestServices, sha: str, *, media_type: str, filename: str) -> str:
    """The text of a stored upload: decoded when it is text, else parsed; "" when the
    bytes are gone. A file the parser cannot read is searched as decoded bytes."""
    try:
        data = rt.blobs.get(sha)
    except FileNotFoundError:
        return ""
    decoded = data.decode("utf-8", errors="ignore")
    if media_type.startswith(_TEXT_TYPES):
        return decoded
    try:
        pieces = rt.parser().parse(data, media_type=media_type, filename=filename)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is still searched raw
        log.info("erase: %s could not be parsed (%s); searching its raw bytes", sha[:12], exc)
        return decoded
    return decoded + "\n" + "\n".join(p.text for p in pieces)


def erase_document_rows(*, session: Session, targets: DocumentTargets, receipt: Receipt) -> None:
    """Delete the documents' rows, their cached embeddings and their jobs, and take
    their filenames out of version stats. One transaction (the caller's)."""
    ids = targets.document_ids
    if not ids:
        return
    chunks = session.execute(delete(Chunk).where(Chunk.document_id.in_(ids))).rowcount
    revisions = session.execute(
        delete(DocumentRevision).where(DocumentRevision.document_id.in_(ids))
    ).rowcount
    session.execute(delete(Document).where(Document.id.in_(ids)))
    receipt.add("documents", ids=ids)
    receipt.add("revisions", ids=targets.revision_ids, count=revisions or 0)
    receipt.add("chunks", count=chunks or 0)
    receipt.add(
        "embedding_cache",
        count=delete_embedding_cache(session=session, text_hashes=targets.text_hashes),
    )
    receipt.add("jobs", ids=_erase_jobs(session, targets))
    receipt.add("version_stats", ids=_scrub_version_stats(session, targets))


def _erase_jobs(session: Session, targets: DocumentTargets) -> list[str]:
    """Jobs that name the documents or their revisions (payload, message, error): the
    finished ones go; a running one keeps its row, its message and error cleared (it
    finds its revision gone and stops)."""
    refs = targets.document_ids + targets.revision_ids
    filenames = Needles.of(targets.filenames)
    touched = []
    for job in session.execute(select(Job).where(Job.kb_id.in_(targets.kb_ids))).scalars():
        if not (
            mentions_any(job.payload, refs)
            or filenames.in_text(job.message)
            or filenames.in_text(job.error)
        ):
            continue
        touched.append(job.id)
        if job.status == JobStatus.RUNNING:
            job.message, job.error = "", None
        else:
            session.delete(job)
    return touched


def _scrub_version_stats(session: Session, targets: DocumentTargets) -> list[str]:
    """Version builds list the filenames of documents that failed: drop those lines."""
    filenames = Needles.of(targets.filenames)
    changed = []
    versions = session.execute(
        select(IndexVersion).where(IndexVersion.kb_id.in_(targets.kb_ids))
    ).scalars()
    for version in versions:
        stats: dict[str, Any] = dict(version.stats or {})
        failed = stats.get("failed_documents") or []
        kept = [line for line in failed if not filenames.in_text(str(line))]
        if len(kept) == len(failed) and not filenames.in_text(version.error):
            continue
        stats["failed_documents"] = kept
        version.stats = stats
        if version.error:
            version.error = filenames.scrub_text(version.error)
        changed.append(version.id)
    return changed


def erase_vectors(
    rt: IngestServices,
    *,
    kb_ids: list[str],
    chunk_ids: list[str],
    document_ids: list[str],
    receipt: Receipt,
) -> None:
    """Remove the chunks' vectors (and any older row of the documents) from every index
    version of the KBs that still has data: live, ready, building and retired."""
    with rt.db.session() as s:
        versions = list(
            s.execute(
                select(IndexVersion)
                .where(IndexVersion.kb_id.in_(kb_ids), IndexVersion.purged_at.is_(None))
                .order_by(IndexVersion.kb_id, IndexVersion.number)
            ).scalars()
        )
    lines = []
    removed = 0
    for version in versions:
        count = rt.indexes.erase(version, chunk_ids, document_ids=document_ids)
        removed += count
        lines.append(
            {
                "kb_id": version.kb_id,
                "version": version.number,
                "status": version.status,
                "backend": version.backend,
                "removed": count,
            }
        )
    receipt.add("vectors", count=removed, versions=lines)


def erase_snapshot_files(
    rt: IngestServices, *, kb_ids: list[str], since: list[str], receipt: Receipt
) -> None:
    """Delete the snapshot archives (`index.snapshots`) of the KBs taken since the
    documents' first upload: any of them may hold their points."""
    erased = []
    if since:
        erased = erase_snapshots(rt, kb_ids=kb_ids, since=datetime.fromisoformat(since[0]))
    receipt.add("snapshots", ids=erased)


def erase_blobs(rt: IngestServices, *, shas: list[str], receipt: Receipt) -> None:
    """Delete the raw bytes no remaining revision shares (the same file uploaded to
    another document stays that document's)."""
    with rt.db.session() as s:
        shared = set(
            s.execute(
                select(DocumentRevision.content_sha256).where(
                    DocumentRevision.content_sha256.in_(shas)
                )
            ).scalars()
        )
    deleted = []
    for sha in shas:
        if sha in shared:
            continue
        rt.blobs.delete(sha)
        deleted.append(sha)
    receipt.add("blobs", ids=deleted, kept_shared=len(shared))
