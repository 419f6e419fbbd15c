"""Document operations shared by the API and the CLI: upload (validated, deduplicated by
content hash, stored, queued) and delete (catalog rows, vectors, blobs)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, func, select
from sqlalchemy.exc import InternalError, OperationalError

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
    new_id,
    utcnow,
)
from core.errors import (
    Conflict,
    EmptyFile,
    InvalidInput,
    NotFound,
    Overloaded,
    TooLarge,
    Unavailable,
    UnsupportedType,
)
from core.types import sha256_hex
from ingest.archive import ArchiveLimits, expand_archive
from ingest.sniff import ZIP, sniff_media_type

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings
    from ingest.services import IngestServices

log = logging.getLogger(__name__)

INGEST_JOB = "ingest_revision"


# An upload item whose file could not be stored (its blob write failed): nothing of it
# was kept; `error` says why. Not a revision status.
NOT_STORED = "not_stored"
# Retry-After (seconds) of a 503 for storage that failed a whole upload.
STORAGE_RETRY_AFTER = 30


@dataclass
class UploadOutcome:
    """What became of one uploaded file. A file not stored has no document, revision or
    job (None), status NOT_STORED and an `error` {code, message}."""

    document_id: str | None
    revision_id: str | None
    revision: int | None
    filename: str
    status: str
    duplicate: bool
    job_id: str | None
    error: dict[str, str] | None = None


class StorageUnavailable(Unavailable):
    """The blob store or the catalog failed a whole upload: nothing of it was stored.
    Answered 503 with `Retry-After` (api/errors.py reads `retry_after`)."""

    def __init__(self, message: str, *, retry_after: int = STORAGE_RETRY_AFTER) -> None:
        super().__init__(f"{message}; nothing of this upload was stored, retry in {retry_after} s")
        self.retry_after = retry_after


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


# Finished ingestion jobs (succeeded or failed for good) over this window make the
# throughput behind a Retry-After and the status's ETA.
THROUGHPUT_WINDOW = timedelta(minutes=5)
THROUGHPUT_MIN_SPAN = timedelta(seconds=30)
# Retry-After when nothing finished within the window (no estimate), and its ceiling.
RETRY_AFTER_UNKNOWN = 30
RETRY_AFTER_MAX = 3600
_IN_QUEUE = (JobStatus.QUEUED, JobStatus.RUNNING)


def queue_depth(*, session: Session, kb_id: str | None = None) -> dict[str, int]:
    """Ingestion jobs queued and running, of one KB or (kb_id None) of all of them."""
    query = select(Job.status, func.count()).where(
        Job.kind == INGEST_JOB, Job.status.in_(_IN_QUEUE)
    )
    if kb_id is not None:
        query = query.where(Job.kb_id == kb_id)
    counts = dict(session.execute(query.group_by(Job.status)).all())
    return {"queued": counts.get(JobStatus.QUEUED, 0), "running": counts.get(JobStatus.RUNNING, 0)}


def finished_per_minute(*, session: Session, kb_id: str | None = None) -> float:
    """Ingestion jobs of one KB (or all) that ended, indexed or failed for good, per minute
    over the last THROUGHPUT_WINDOW, or since the first of them ended if that is later
    (so a queue that started draining a minute ago is not judged over five): how fast
    the queue drains. Never over less than THROUGHPUT_MIN_SPAN."""
    now = utcnow()
    query = select(func.count(), func.min(Job.finished_at)).where(
        Job.kind == INGEST_JOB,
        Job.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED]),
        Job.finished_at >= now - THROUGHPUT_WINDOW,
    )
    if kb_id is not None:
        query = query.where(Job.kb_id == kb_id)
    finished, earliest = session.execute(query).one()
    if not finished:
        return 0.0
    span = max(THROUGHPUT_MIN_SPAN, now - earliest)
    return finished / (span.total_seconds() / 60)


def retry_after_seconds(waiting: int, per_minute: float) -> int:
    """Seconds until `waiting` more jobs have finished at `per_minute`, in [1, 3600];
    RETRY_AFTER_UNKNOWN when nothing finished lately."""
    if per_minute <= 0:
        return RETRY_AFTER_UNKNOWN
    return min(RETRY_AFTER_MAX, max(1, math.ceil(waiting * 60 / per_minute)))


def admit(*, session: Session, settings: Settings, kb: KnowledgeBase, new: int) -> None:
    """Refuse `new` more ingestion jobs for `kb` if the queue cannot take them all: 413
    (TooLarge) when no empty queue could, 429 (Overloaded, with a Retry-After from
    recent throughput) when it is too full now. Jobs queued or running count; the
    bounds are RAGOPS_INGEST_QUEUE_MAX_PER_KB and RAGOPS_INGEST_QUEUE_MAX."""
    if new <= 0:
        return
    bounds = (
        (kb.id, f"knowledge base {kb.name!r}", settings.ingest_queue_max_per_kb, "_PER_KB"),
        (None, "all knowledge bases", settings.ingest_queue_max, ""),
    )
    for kb_id, scope, limit, suffix in bounds:
        setting = f"RAGOPS_INGEST_QUEUE_MAX{suffix}"
        if new > limit:
            raise TooLarge(
                f"{new} new documents in one request, but the ingestion queue of {scope} "
                f"holds at most {limit} ({setting}); send fewer files per request"
            )
        depth = queue_depth(session=session, kb_id=kb_id)
        waiting = depth["queued"] + depth["running"]
        if waiting + new > limit:
            retry = retry_after_seconds(
                waiting + new - limit, finished_per_minute(session=session, kb_id=kb_id)
            )
            raise Overloaded(
                f"the ingestion queue of {scope} is full: {waiting} documents waiting, and "
                f"{new} more would pass its limit of {limit} ({setting}); nothing was "
                f"stored, retry in {retry} s",
                retry_after=retry,
                details={
                    "setting": setting,
                    "limit": limit,
                    "waiting": waiting,
                    "requested": new,
                    "retry_after_seconds": retry,
                },
            )


@dataclass
class _Current:
    """A document's current revision as the request sees it (its own earlier files
    included)."""

    document_id: str
    filename: str
    revision_id: str
    number: int
    status: str
    sha: str


@dataclass
class _NewRevision:
    position: int  # of the file in the list given to `_plan`
    filename: str
    data: bytes
    media_type: str
    sha: str
    outcome: UploadOutcome
    document: Document | None  # the existing row; None: the request creates it


def _plan(
    session: Session, *, kb: KnowledgeBase, files: list[tuple[str, bytes, str]], shas: list[str]
) -> tuple[list[UploadOutcome], list[_NewRevision]]:
    """Decide every file of a request in order, as one file after another would be: a
    file whose bytes are some document's current content (an earlier file of the same
    request included) is a duplicate and changes nothing; any other becomes the next
    revision of the document with its name, or of a new document. Reads only."""
    names = {name for name, _, _ in files}
    rows = session.execute(
        select(Document, DocumentRevision)
        .outerjoin(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
        .where(Document.kb_id == kb.id, Document.filename.in_(names))
    ).all()
    rows += session.execute(
        select(Document, DocumentRevision)
        .join(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
        .where(Document.kb_id == kb.id, DocumentRevision.content_sha256.in_(set(shas)))
    ).all()
    by_name = {doc.filename: doc for doc, _ in rows if doc.filename in names}
    # sha -> {document id: its current revision}, kept up to date file by file.
    current: dict[str, dict[str, _Current]] = {}
    sha_of: dict[str, str] = {}  # document id -> sha of its current revision
    for doc, rev in rows:
        if rev is not None:
            sha_of[doc.id] = rev.content_sha256
            current.setdefault(rev.content_sha256, {})[doc.id] = _Current(
                doc.id, doc.filename, rev.id, rev.number, rev.status, rev.content_sha256
            )
    numbers: dict[str, int] = {}
    if by_name:
        numbers = dict(
            session.execute(
                select(DocumentRevision.document_id, func.max(DocumentRevision.number))
                .where(DocumentRevision.document_id.in_([d.id for d in by_name.values()]))
                .group_by(DocumentRevision.document_id)
            ).all()
        )
    created: dict[str, str] = {}  # filename -> id of a document this request creates
    outcomes: list[UploadOutcome] = []
    new: list[_NewRevision] = []
    for position, ((name, data, media_type), sha) in enumerate(zip(files, shas, strict=True)):
        same = current.get(sha)
        if same:
            c = min(same.values(), key=lambda c: (c.filename != name, c.filename))
            outcomes.append(
                UploadOutcome(
                    c.document_id, c.revision_id, c.number, c.filename, c.status, True, None
                )
            )
            continue
        doc = by_name.get(name)
        document_id = doc.id if doc is not None else created.setdefault(name, new_id())
        number = numbers[document_id] = (numbers.get(document_id) or 0) + 1
        outcome = UploadOutcome(
            document_id, new_id(), number, name, RevisionStatus.PENDING, False, None
        )
        if document_id in sha_of:  # its previous content is current no more
            current[sha_of[document_id]].pop(document_id, None)
        sha_of[document_id] = sha
        current.setdefault(sha, {})[document_id] = _Current(
            document_id, name, outcome.revision_id, number, outcome.status, sha
        )
        outcomes.append(outcome)
        new.append(_NewRevision(position, name, data, media_type, sha, outcome, doc))
    return outcomes, new


def submit_uploads(
    rt: IngestServices,
    *,
    kb: KnowledgeBase,
    files: list[tuple[str, bytes, str]],
    metadata: dict[str, Any] | None = None,
) -> list[UploadOutcome]:
    """Store checked files (filename, bytes, media type) and queue their ingestion with
    one catalog transaction for the whole request, however many files it carries; one
    outcome per file, in order. A file whose bytes already are the current content of a
    document in this KB changes nothing (`duplicate`) and never counts against the queue.

    1. A read-only look decides which files are new and whether the ingestion queue has
       room for all of them (`admit`): if not, the whole request is refused (429 with
       Retry-After, or 413 if it could never fit) before anything is stored.
    2. The raw bytes of the new files go to the blob store, outside any transaction
       (content-addressed, each blob written whole or not at all). A file whose blob
       cannot be written is left out: its outcome is NOT_STORED with the reason, and the
       others go on. If no file is left, StorageUnavailable (503): nothing was stored.
    3. One short transaction decides again, holding the catalog's write lock on SQLite
       (BEGIN IMMEDIATE) and the KB's row on PostgreSQL, so concurrent uploads to a KB
       cannot both take the last places, and adds every document, revision and job row.
       If the queue filled up in between, or the catalog fails (StorageUnavailable when
       it cannot be written: locked, read-only, disk full), the blobs step 2 wrote that
       no revision uses are removed again. (The overall bound is checked without a lock
       on PostgreSQL: concurrent uploads to different KBs may pass it by their own sizes.)

    So each file ends stored and queued (document, revision, job and blob) or not
    stored at all, and its outcome says which.

        outcomes = submit_uploads(rt, kb=kb, files=[("a.txt", b"alpha", "text/plain")])
    """
    if not files:
        return []
    shas = [sha256_hex(data) for _, data, _ in files]
    failed: dict[int, OSError] = {}  # position in `files` -> why its blob was not written
    written: set[str] = set()  # blobs this request wrote
    stored: set[str] = set()  # ... and those its committed revisions use
    try:
        with rt.db.session() as s:
            _, new = _plan(s, kb=kb, files=files, shas=shas)
            admit(session=s, settings=rt.settings, kb=kb, new=len(new))
        failed.update(_put_blobs(rt, new, written))
        _refuse_if_none_left(files, failed)
        with rt.db.session(immediate=True) as s:
            locked = s.execute(
                select(KnowledgeBase.id).where(KnowledgeBase.id == kb.id).with_for_update()
            ).scalar_one_or_none()
            if locked is None:
                raise NotFound(f"knowledge base {kb.name!r} not found")
            while True:
                live = [i for i in range(len(files)) if i not in failed]
                outcomes, new = _plan(
                    s, kb=kb, files=[files[i] for i in live], shas=[shas[i] for i in live]
                )
                # A file the first look saw as a duplicate may be new now; one whose
                # blob fails now is left out, and the rest decided again without it.
                more = _put_blobs(rt, new, written)
                if not more:
                    break
                failed.update({live[p]: exc for p, exc in more.items()})
                _refuse_if_none_left(files, failed)
            admit(session=s, settings=rt.settings, kb=kb, new=len(new))
            _add_rows(rt, s, kb=kb, new=new, metadata=metadata)
            s.flush()
        stored = {step.sha for step in new}
    except (OperationalError, InternalError) as exc:
        _drop_unused_blobs_quietly(rt, written)
        raise StorageUnavailable(f"the catalog could not be written ({_db_reason(exc)})") from exc
    except BaseException:
        _drop_unused_blobs_quietly(rt, written)
        raise
    if written - stored:  # written for a file that ended up a duplicate after all
        _drop_unused_blobs_quietly(rt, written - stored)
    results: list[UploadOutcome | None] = [None] * len(files)
    for position, outcome in zip(live, outcomes, strict=True):
        results[position] = outcome
    for position, exc in failed.items():
        results[position] = _not_stored(files[position][0], exc)
    return [r for r in results if r is not None]


def _put_blobs(
    rt: IngestServices, steps: list[_NewRevision], written: set[str]
) -> dict[int, OSError]:
    """Write the blobs these new revisions need that the store lacks (adding each to
    `written`); the positions of those that could not be written, with the error."""
    failures: dict[int, OSError] = {}
    for step in steps:
        if step.sha in written:
            continue
        try:
            if not rt.blobs.exists(step.sha):
                rt.blobs.put(step.sha, step.data)
                written.add(step.sha)
        except OSError as exc:
            log.warning("could not store the blob of %r: %s", step.filename, exc)
            failures[step.position] = exc
    return failures


def _refuse_if_none_left(files: list[tuple[str, bytes, str]], failed: dict[int, OSError]) -> None:
    """Every file's blob failed: the store is down for this request (503)."""
    if len(failed) == len(files):
        reason = _os_reason(next(iter(failed.values())))
        raise StorageUnavailable(f"the blob store could not be written ({reason})")


def _add_rows(
    rt: IngestServices,
    s: Session,
    *,
    kb: KnowledgeBase,
    new: list[_NewRevision],
    metadata: dict[str, Any] | None,
) -> None:
    """The document (when new), revision and ingestion job of each new file."""
    created: dict[str, Document] = {}
    for step in new:
        outcome = step.outcome
        assert outcome.document_id is not None and outcome.revision_id is not None
        doc = step.document or created.get(outcome.document_id)
        if doc is None:
            doc = created[outcome.document_id] = Document(
                id=outcome.document_id,
                kb_id=kb.id,
                filename=step.filename,
                metadata_=metadata or {},
            )
            s.add(doc)
        elif metadata is not None:
            doc.metadata_ = metadata
        s.add(
            DocumentRevision(
                id=outcome.revision_id,
                document_id=doc.id,
                number=outcome.revision,
                content_sha256=step.sha,
                size_bytes=len(step.data),
                media_type=step.media_type,
                status=RevisionStatus.PENDING,
            )
        )
        doc.current_revision_id = outcome.revision_id
        job = rt.jobs.submit(
            s, kind=INGEST_JOB, payload={"revision_id": outcome.revision_id}, kb_id=kb.id
        )
        outcome.job_id = job.id


def _not_stored(filename: str, exc: OSError) -> UploadOutcome:
    return UploadOutcome(
        None,
        None,
        None,
        filename,
        NOT_STORED,
        duplicate=False,
        job_id=None,
        error={
            "code": Unavailable.code,
            "message": f"{filename}: could not be stored ({_os_reason(exc)}); nothing of it "
            "was kept, send it again",
        },
    )


def _os_reason(exc: OSError) -> str:
    """The error without the path (which would show the server's layout)."""
    return exc.strerror or exc.__class__.__name__


def _db_reason(exc: OperationalError | InternalError) -> str:
    """The database's own first line, e.g. `database is locked`."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "database error"


def _drop_unused_blobs_quietly(rt: IngestServices, shas: set[str]) -> None:
    """`_drop_unused_blobs`, logging (not raising) a failure: the request's own error is
    the one to report. If the catalog cannot even be read, the blobs stay (an unused
    blob is garbage; a revision whose blob is gone is a lost document)."""
    try:
        _drop_unused_blobs(rt, shas)
    except Exception:  # noqa: BLE001
        log.exception("could not remove the blobs of an upload that did not store them")


def _drop_unused_blobs(rt: IngestServices, shas: set[str]) -> None:
    """Remove these blobs unless a revision uses them (a refused request's bytes). On
    SQLite the write lock is held meanwhile, so an upload of the same bytes either
    committed before (the blob stays) or checks for the blob after (and writes it).
    When that lock cannot be had (the catalog is locked or read-only: what failed the
    request) the check is made without it: no upload can commit meanwhile either."""
    if not shas:
        return
    try:
        with rt.db.session(immediate=True) as s:
            _delete_unused(rt, s, shas)
    except (OperationalError, InternalError):
        with rt.db.session() as s:
            _delete_unused(rt, s, shas)


def _delete_unused(rt: IngestServices, s: Session, shas: set[str]) -> None:
    used = set(
        s.execute(
            select(DocumentRevision.content_sha256).where(DocumentRevision.content_sha256.in_(shas))
        ).scalars()
    )
    for sha in shas - used:
        rt.blobs.delete(sha)


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
    current content of a document in this KB (then nothing changes): `submit_uploads`
    for one file."""
    return submit_uploads(rt, kb=kb, files=[(filename, data, media_type)], metadata=metadata)[0]


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


def listed_documents() -> Any:
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
        DocumentRevision.media_type,
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
    query = listed_documents().where(Document.kb_id == kb.id)
    if status:
        query = query.where(DocumentRevision.status == status)
    query = query.order_by(Document.filename).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def get_document(*, session: Session, kb: KnowledgeBase, document_id: str) -> Row:
    """One document of the KB as `list_documents` lists it."""
    row = session.execute(
        listed_documents().where(Document.id == document_id, Document.kb_id == kb.id)
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
