"""Document operations shared by the API and the CLI: upload (validated, deduplicated by
content hash, stored, queued) and delete (catalog rows, vectors, blobs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, func, select

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    Job,
    JobStatus,
    KnowledgeBase,
    RevisionStatus,
    VersionStatus,
)
from core.errors import (
    Conflict,
    EmptyFile,
    InvalidInput,
    NotFound,
    TooLarge,
    UnsupportedType,
)
from core.types import sha256_hex
from ingest.archive import ArchiveLimits, expand_archive
from ingest.sniff import ZIP, sniff_media_type

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ingest.services import IngestServices

INGEST_JOB = "ingest_revision"


@dataclass
class UploadOutcome:
    document_id: str
    revision_id: str
    revision: int
    filename: str
    status: str
    duplicate: bool
    job_id: str | None


def clean_filename(name: str | None) -> str:
    name = (name or "").replace("\\", "/").strip().lstrip("/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidInput(f"invalid filename {name!r}: give a plain relative file name")
    cleaned = "/".join(parts)
    if len(cleaned) > 512:
        raise InvalidInput(f"filename too long ({len(cleaned)} characters; at most 512)")
    return cleaned


def check_size(filename: str, data: bytes, *, max_bytes: int) -> None:
    """Empty → EmptyFile (400); over RAGOPS_MAX_FILE_BYTES → TooLarge (413)."""
    if len(data) == 0:
        raise EmptyFile(f"{filename}: file is empty (0 bytes); nothing to index")
    if len(data) > max_bytes:
        raise TooLarge(
            f"{filename}: {len(data)} bytes is over the limit of {max_bytes} bytes "
            "(RAGOPS_MAX_FILE_BYTES)"
        )


def check_upload(filename: str, data: bytes, *, max_bytes: int) -> str:
    """Validate one file before anything is stored; returns its sniffed media type."""
    check_size(filename, data, max_bytes=max_bytes)
    return sniff_media_type(data, filename)


@dataclass
class CheckedUpload:
    """What an uploaded file becomes: documents to store, and archive members skipped."""

    documents: list[tuple[str, bytes, str]]  # (filename, bytes, media type)
    skipped: list[tuple[str, str]]  # (member path, reason)


def check_uploaded_file(
    filename: str, data: bytes, *, max_bytes: int, archive_limits: ArchiveLimits
) -> CheckedUpload:
    """Validate an uploaded file; a ZIP archive is expanded (bomb guards first) and each
    supported member becomes a document named `archive.zip/inner/path`. A member that is
    empty, too large or of an unsupported type is skipped with its reason; an archive
    that trips a guard is refused whole."""
    check_size(filename, data, max_bytes=max_bytes)
    media_type = sniff_media_type(data, filename, allow_archive=True)
    if media_type != ZIP:
        return CheckedUpload([(filename, data, media_type)], [])
    documents: list[tuple[str, bytes, str]] = []
    skipped: list[tuple[str, str]] = []
    for path, member in expand_archive(data, filename, limits=archive_limits):
        try:
            documents.append(
                (clean_filename(path), member, check_upload(path, member, max_bytes=max_bytes))
            )
        except InvalidInput as exc:
            skipped.append((path, exc.message))
    if not documents:
        raise UnsupportedType(
            f"{filename}: the archive holds no supported documents"
            + (f" ({skipped[0][1]})" if skipped else "")
        )
    return CheckedUpload(documents, skipped)


def submit_upload(
    rt: IngestServices,
    *,
    kb: KnowledgeBase,
    filename: str,
    data: bytes,
    media_type: str,
    metadata: dict[str, Any] | None = None,
) -> UploadOutcome:
    """Store the bytes and queue ingestion, unless these exact bytes are already the
    current content of a document in this KB (then nothing changes)."""
    sha = sha256_hex(data)
    with rt.db.session() as s:
        existing = s.execute(
            select(Document, DocumentRevision)
            .join(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
            .where(Document.kb_id == kb.id, DocumentRevision.content_sha256 == sha)
            .order_by(Document.filename != filename)
        ).first()
        if existing is not None:
            doc, rev = existing
            return UploadOutcome(
                doc.id, rev.id, rev.number, doc.filename, rev.status, duplicate=True, job_id=None
            )
        doc = s.execute(
            select(Document).where(Document.kb_id == kb.id, Document.filename == filename)
        ).scalar_one_or_none()
        if doc is None:
            doc = Document(kb_id=kb.id, filename=filename, metadata_=metadata or {})
            s.add(doc)
            s.flush()
        elif metadata is not None:
            doc.metadata_ = metadata
        number = (
            s.execute(
                select(func.max(DocumentRevision.number)).where(
                    DocumentRevision.document_id == doc.id
                )
            ).scalar()
            or 0
        ) + 1
        rt.blobs.put(sha, data)
        rev = DocumentRevision(
            document_id=doc.id,
            number=number,
            content_sha256=sha,
            size_bytes=len(data),
            media_type=media_type,
            status=RevisionStatus.PENDING,
        )
        s.add(rev)
        s.flush()
        doc.current_revision_id = rev.id
        job = rt.jobs.submit(s, kind=INGEST_JOB, payload={"revision_id": rev.id}, kb_id=kb.id)
        s.flush()
        return UploadOutcome(
            doc.id, rev.id, number, filename, rev.status, duplicate=False, job_id=job.id
        )


def delete_document(rt: IngestServices, *, kb: KnowledgeBase, document_id: str) -> None:
    """Remove a document's vectors from every index version, then its rows and blobs."""
    with rt.db.session() as s:
        doc = s.get(Document, document_id)
        if doc is None or doc.kb_id != kb.id:
            raise NotFound(f"document {document_id!r} not found in knowledge base {kb.name!r}")
        chunk_ids = list(s.execute(select(Chunk.id).where(Chunk.document_id == doc.id)).scalars())
        versions = list(
            s.execute(
                select(IndexVersion).where(
                    IndexVersion.kb_id == kb.id, IndexVersion.status != VersionStatus.RETIRED
                )
            ).scalars()
        )
        shas = {r.content_sha256 for r in doc.revisions}
    for version in versions:
        with rt.indexes.writer(version) as index:
            index.delete(chunk_ids)
    with rt.db.session() as s:
        doc = s.get(Document, document_id)
        if doc is not None:
            s.delete(doc)
        s.flush()
        still_used = set(
            s.execute(
                select(DocumentRevision.content_sha256).where(
                    DocumentRevision.content_sha256.in_(shas)
                )
            ).scalars()
        )
    for sha in shas - still_used:
        rt.blobs.delete(sha)


def reprocess_document(rt: IngestServices, *, kb: KnowledgeBase, document_id: str) -> UploadOutcome:
    """Run the current revision through the pipeline again (after a failure, a parser
    upgrade or a dead-lettered job). Its indexed chunks keep serving until the new run
    replaces them; a run that fails again loses nothing."""

    with rt.db.session() as s:
        doc = s.get(Document, document_id)
        if doc is None or doc.kb_id != kb.id:
            raise NotFound(f"document {document_id!r} not found in knowledge base {kb.name!r}")
        rev = s.get(DocumentRevision, doc.current_revision_id) if doc.current_revision_id else None
        if rev is None:
            raise Conflict(f"document {doc.filename!r} has no revision to reprocess")
        busy = [
            j
            for j in s.execute(
                select(Job).where(
                    Job.kind == INGEST_JOB,
                    Job.kb_id == kb.id,
                    Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                )
            ).scalars()
            if j.payload.get("revision_id") == rev.id
        ]
        if busy:
            raise Conflict(
                f"{doc.filename!r} is already being processed (job {busy[0].id}); "
                "wait for it to finish"
            )
        if not rt.blobs.exists(rev.content_sha256):
            raise Conflict(f"the raw bytes of {doc.filename!r} are gone; upload it again")
        previous = rev.status
        rev.status = RevisionStatus.PENDING if previous != RevisionStatus.INDEXED else previous
        rev.error = None
        job = rt.jobs.submit(
            s, kind=INGEST_JOB, kb_id=kb.id, payload={"revision_id": rev.id, "force": True}
        )
        s.flush()
        return UploadOutcome(
            doc.id, rev.id, rev.number, doc.filename, rev.status, duplicate=False, job_id=job.id
        )


def _listed() -> Any:
    """Documents joined to their current revision, columns named as listed publicly; the
    revision's columns are None for a document without one."""
    return select(
        Document.id,
        Document.filename,
        Document.metadata_.label("metadata"),
        Document.updated_at,
        DocumentRevision.status,
        DocumentRevision.error,
        DocumentRevision.report,
        DocumentRevision.number.label("revision"),
        DocumentRevision.chunk_count,
    ).outerjoin(DocumentRevision, DocumentRevision.id == Document.current_revision_id)


def list_documents(
    *,
    session: Session,
    kb: KnowledgeBase,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """The KB's documents by filename (those whose current revision is in `status`; one
    page: `limit` after `offset`), each with its current revision's status, error, report,
    number (`revision`) and chunk_count."""
    query = _listed().where(Document.kb_id == kb.id)
    if status:
        query = query.where(DocumentRevision.status == status)
    query = query.order_by(Document.filename).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def get_document(*, session: Session, kb: KnowledgeBase, document_id: str) -> Row:
    """One document of the KB as `list_documents` lists it."""
    row = session.execute(
        _listed().where(Document.id == document_id, Document.kb_id == kb.id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"document {document_id!r} not found in knowledge base {kb.name!r}")
    return row


def list_revisions(*, session: Session, document_id: str) -> list[DocumentRevision]:
    """Every revision of a document, oldest first."""
    return list(
        session.execute(
            select(DocumentRevision)
            .where(DocumentRevision.document_id == document_id)
            .order_by(DocumentRevision.number)
        ).scalars()
    )


def revisions_by_id(*, session: Session, ids: list[str]) -> list[DocumentRevision]:
    """The revisions with these ids (gone ones are left out): progress of queued uploads."""
    if not ids:
        return []
    return list(
        session.execute(select(DocumentRevision).where(DocumentRevision.id.in_(ids))).scalars()
    )
