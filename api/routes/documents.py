from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from api.deps import KbDep, RuntimeDep, SessionDep
from api.limits import MAX_DB_INT
from api.schemas import (
    DocumentList,
    DocumentPublic,
    DocumentSummary,
    IngestionStatus,
    UploadItem,
    UploadResponse,
)
from core.catalog.models import RevisionStatus
from core.errors import InvalidInput, TooLarge
from ingest import documents as catalog
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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> DocumentList:
    counts = status_counts(session=session, kb_id=kb.id)
    rows = catalog.list_documents(session=session, kb=kb, status=status, limit=limit, offset=offset)
    total = sum(counts.values()) if not status else counts.get(status, 0)
    return DocumentList(
        counts=counts,
        total=total,
        documents=[DocumentSummary.model_validate(r, from_attributes=True) for r in rows],
    )


@router.get("/{doc_id}", response_model=DocumentPublic)
def get_document(kb: KbDep, doc_id: str, session: SessionDep) -> DocumentPublic:
    row = catalog.get_document(session=session, kb=kb, document_id=doc_id)
    revisions = catalog.list_revisions(session=session, document_id=row.id)
    return DocumentPublic.from_row(row, revisions=revisions)


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
