from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import KbDep, RuntimeDep, SessionDep
from api.limits import MAX_DB_INT
from api.schemas import (
    ChunkList,
    ChunkPublic,
    DocumentFacets,
    DocumentList,
    DocumentPublic,
    DocumentSummary,
    IngestionStatus,
    UploadItem,
    UploadResponse,
    choices,
)
from core.catalog.models import (
    Chunk,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    RevisionStatus,
    VersionStatus,
)
from core.errors import InvalidInput, TooLarge
from core.kbs import live_version
from index.versions import get_version
from ingest import documents as catalog
from ingest.document_search import (
    DOCUMENT_LANGUAGES,
    DocumentFilter,
    document_facets,
    find_documents,
    parse_metadata_filters,
)
from ingest.documents import (
    NOT_STORED,
    check_uploaded_file,
    clean_filename,
    delete_document,
    reprocess_document,
    submit_uploads,
)
from ingest.status import ingestion_status, status_counts

router = APIRouter(prefix="/kbs/{kb}/documents", tags=["documents"])


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"metadata is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(value, dict):
        raise InvalidInput('metadata must be a JSON object, e.g. {"team": "legal"}')
    return value


def _json_object_part(description: str) -> Callable[[dict[str, Any]], None]:
    def schema(s: dict[str, Any]) -> None:
        s.clear()
        s.update(type="object", description=description)

    return schema


@router.post("", status_code=202, response_model=UploadResponse)
async def upload(
    kb: KbDep,
    rt: RuntimeDep,
    files: Annotated[
        list[UploadFile],
        File(description="One or more documents", json_schema_extra={"minItems": 1}),
    ],
    metadata: Annotated[
        str | None,
        # A form field holding JSON: documented as the object it is (a multipart part
        # of type object is sent as application/json).
        Form(json_schema_extra=_json_object_part("JSON object stored on each document")),
    ] = None,
) -> UploadResponse:
    """Queue documents for ingestion. Every file is validated before any is stored, so a
    rejected request stores nothing; re-sending identical bytes queues nothing. The whole
    request is one catalog transaction. When the ingestion queue cannot take all of its
    new documents (RAGOPS_INGEST_QUEUE_MAX_PER_KB, RAGOPS_INGEST_QUEUE_MAX), the whole
    request is refused with 429 and `Retry-After`, and nothing of it is stored.

    Each file ends stored and queued, or not stored at all, and its item says which:
    202 when at least one file was accepted (stored, or a duplicate); a file whose bytes
    could not be written is listed with status `not_stored` and an `error`, and counted
    in `not_stored` (send it again). 503 `unavailable` with `Retry-After`, nothing
    stored, when the blob store failed for every file or the catalog could not be
    written (locked, read-only, disk full)."""
    settings = rt.settings
    meta = _parse_metadata(metadata)
    total = sum(f.size or 0 for f in files)
    if total > settings.max_request_bytes:
        raise TooLarge(
            f"{total} bytes in one request is over the limit of "
            f"{settings.max_request_bytes} (RAGOPS_MAX_REQUEST_BYTES); send fewer "
            "files per request"
        )
    if len(files) > settings.max_request_files:
        raise TooLarge(f"{len(files)} files in one request; at most {settings.max_request_files}")
    checked: list[tuple[str, bytes, str]] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    limits = rt.archive_limits()
    for f in files:
        name = clean_filename(f.filename)
        data = await f.read(settings.max_file_bytes + 1)
        result = check_uploaded_file(
            name, data, max_bytes=settings.max_file_bytes, archive_limits=limits
        )
        for doc_name, doc_data, media_type in result.documents:
            if doc_name in seen:
                raise InvalidInput(f"{doc_name}: sent twice in one request")
            seen.add(doc_name)
            checked.append((doc_name, doc_data, media_type))
        skipped += [{"filename": path, "reason": reason} for path, reason in result.skipped]
    outcomes = await run_in_threadpool(submit_uploads, rt, kb=kb, files=checked, metadata=meta)
    items = [UploadItem.model_validate(o, from_attributes=True) for o in outcomes]
    return UploadResponse(
        documents=items,
        skipped=skipped,
        not_stored=sum(1 for i in items if i.status == NOT_STORED),
    )


@router.get("", response_model=DocumentList)
def list_documents(
    kb: KbDep,
    session: SessionDep,
    status: Annotated[
        RevisionStatus | None, Query(description="Only documents in this status")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=512,
            description="Only documents whose filename contains this text (case-insensitive)",
        ),
    ] = None,
    media_type: Annotated[
        str | None,
        Query(
            max_length=128,
            pattern=r"^[\w.+-]+/[\w.+-]+$",
            description="Only documents whose current revision has this media type, e.g. "
            "`text/plain` (see `facets`)",
        ),
    ] = None,
    language: Annotated[
        str | None,
        Query(
            description="Only documents detected in this language",
            json_schema_extra=choices(DOCUMENT_LANGUAGES),
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        Query(
            description="`key=value`: only documents whose upload metadata has it (a "
            "number or boolean as JSON writes it); repeat for several, all must hold",
            json_schema_extra={"items": {"type": "string", "pattern": r"^[\w .:-]{1,128}="}},
        ),
    ] = None,
    facets: Annotated[
        bool, Query(description="Also count the KB's documents per media type and language")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> DocumentList:
    """The KB's documents by filename with their current revision's status, one page of
    those matching every filter given; `counts` are the whole KB's, per status."""
    found = DocumentFilter(
        status=status,
        text=q,
        media_type=media_type,
        language=language,
        metadata=parse_metadata_filters(metadata),
    )
    rows, total = find_documents(session=session, kb=kb, where=found, limit=limit, offset=offset)
    return DocumentList(
        counts=status_counts(session=session, kb_id=kb.id),
        total=total,
        documents=[DocumentSummary.model_validate(r, from_attributes=True) for r in rows],
        facets=DocumentFacets(**document_facets(session=session, kb=kb)) if facets else None,
    )


@router.get("/{doc_id}", response_model=DocumentPublic)
def get_document(kb: KbDep, doc_id: str, session: SessionDep) -> DocumentPublic:
    row = catalog.get_document(session=session, kb=kb, document_id=doc_id)
    revisions = catalog.list_revisions(session=session, document_id=row.id)
    current = next((r for r in revisions if r.number == row.revision), None)
    return DocumentPublic.from_row(
        row, revisions=revisions, media_type=current.media_type if current else None
    )


@router.get("/{doc_id}/chunks", response_model=ChunkList)
def document_chunks(
    kb: KbDep,
    doc_id: str,
    session: SessionDep,
    index_version: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_DB_INT,
            description="The version whose chunking to show; default the live one (or, "
            "before any is live, the newest that is not retired)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> ChunkList:
    """The document's chunks as indexed, in order: their text after cleaning and
    redaction as stored, token counts and citation metadata, from the document's
    indexed revision (none while its first revision is still on its way or failed)."""
    doc = catalog.get_document(session=session, kb=kb, document_id=doc_id)
    version = _chunking_version(session, kb, index_version)
    revision = session.execute(
        select(DocumentRevision)
        .where(
            DocumentRevision.document_id == doc.id,
            DocumentRevision.status == RevisionStatus.INDEXED,
        )
        .order_by(DocumentRevision.number.desc())
        .limit(1)
    ).scalar_one_or_none()
    chunks: list[Chunk] = []
    total = 0
    if version is not None and revision is not None:
        where = (
            Chunk.document_id == doc.id,
            Chunk.revision_id == revision.id,
            Chunk.config_hash == version.config_hash,
        )
        total = session.execute(select(func.count()).where(*where)).scalar_one()
        chunks = list(
            session.execute(
                select(Chunk).where(*where).order_by(Chunk.position).offset(offset).limit(limit)
            ).scalars()
        )
    return ChunkList(
        document_id=doc.id,
        index_version=version.number if version else None,
        revision=revision.number if revision else None,
        revision_id=revision.id if revision else None,
        total=total,
        limit=limit,
        offset=offset,
        chunks=[ChunkPublic.model_validate(c) for c in chunks],
    )


def _chunking_version(
    session: Session, kb: KnowledgeBase, number: int | None
) -> IndexVersion | None:
    if number is not None:
        return get_version(session=session, kb=kb, number=number)
    return (
        live_version(session=session, kb_id=kb.id)
        or session.execute(
            select(IndexVersion)
            .where(IndexVersion.kb_id == kb.id, IndexVersion.status != VersionStatus.RETIRED)
            .order_by(IndexVersion.number.desc())
            .limit(1)
        ).scalar_one_or_none()
    )


@router.delete("/{doc_id}", status_code=204)
def remove_document(kb: KbDep, doc_id: str, rt: RuntimeDep) -> Response:
    delete_document(rt, kb=kb, document_id=doc_id)
    return Response(status_code=204)


@router.post("/{doc_id}/reprocess", status_code=202, response_model=UploadItem)
def reprocess(kb: KbDep, doc_id: str, rt: RuntimeDep) -> UploadItem:
    """Run the document's current revision through the pipeline again; what is indexed
    keeps serving until the new run replaces it. 409 while it is being processed."""
    return UploadItem.model_validate(
        reprocess_document(rt, kb=kb, document_id=doc_id), from_attributes=True
    )


status_router = APIRouter(prefix="/kbs/{kb}", tags=["documents"])


@status_router.get("/ingestion", response_model=IngestionStatus)
def ingestion(kb: KbDep, rt: RuntimeDep) -> IngestionStatus:
    """Counts by state, job queue (incl. dead letters), throughput, oldest pending
    document, the latest failures with their reasons, and the ingestion queue against
    its bounds with the pace it drains at and an ETA."""
    return IngestionStatus.model_validate(ingestion_status(rt, kb=kb))
