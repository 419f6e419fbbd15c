from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.deps import RuntimeDep
from api.schemas import (
    DocumentList,
    DocumentPublic,
    DocumentSummary,
    RevisionPublic,
    UploadItem,
    UploadResponse,
)
from core.catalog.models import Document, DocumentRevision
from core.errors import InvalidInput, NotFound, TooLarge
from core.kbs import get_kb
from ingest.documents import (
    check_uploaded_file,
    clean_filename,
    delete_document,
    reprocess_document,
    submit_upload,
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


@router.post("", status_code=202, response_model=UploadResponse)
async def upload(
    kb: str,
    rt: RuntimeDep,
    files: Annotated[list[UploadFile], File(description="One or more documents")],
    metadata: Annotated[str | None, Form(description="JSON object stored on each document")] = None,
) -> UploadResponse:
    """Queue documents for ingestion. Every file is validated before any is stored, so a
    rejected request stores nothing; re-sending identical bytes queues nothing."""
    settings = rt.settings
    meta = _parse_metadata(metadata)
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
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
    items = []
    for name, data, media_type in checked:
        outcome = await run_in_threadpool(
            submit_upload,
            rt,
            kb=kb_row,
            filename=name,
            data=data,
            media_type=media_type,
            metadata=meta,
        )
        items.append(UploadItem(**outcome.__dict__))
    return UploadResponse(documents=items, skipped=skipped)


def _summary(doc: Document, rev: DocumentRevision | None) -> dict[str, Any]:
    return {
        "id": doc.id,
        "filename": doc.filename,
        "status": rev.status if rev else "unknown",
        "error": rev.error if rev else None,
        "language": (rev.report or {}).get("language") if rev else None,
        "revision": rev.number if rev else None,
        "chunk_count": rev.chunk_count if rev else 0,
        "metadata": doc.metadata_ or {},
        "updated_at": doc.updated_at,
    }


@router.get("", response_model=DocumentList)
def list_documents(
    kb: str,
    rt: RuntimeDep,
    status: Annotated[str | None, Query(description="Only documents in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        base = (
            select(Document, DocumentRevision)
            .outerjoin(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
            .where(Document.kb_id == kb_row.id)
        )
        counts = status_counts(session=s, kb_id=kb_row.id)
        if status:
            base = base.where(DocumentRevision.status == status)
        rows = s.execute(base.order_by(Document.filename).limit(limit).offset(offset)).all()
        docs = [DocumentSummary(**_summary(d, r)) for d, r in rows]
    total = sum(counts.values()) if not status else counts.get(status, 0)
    return DocumentList(counts=counts, total=total, documents=docs)


@router.get("/{doc_id}", response_model=DocumentPublic)
def get_document(kb: str, doc_id: str, rt: RuntimeDep) -> DocumentPublic:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        doc = s.get(Document, doc_id)
        if doc is None or doc.kb_id != kb_row.id:
            raise NotFound(f"document {doc_id!r} not found in knowledge base {kb_row.name!r}")
        revisions = list(doc.revisions)
        current = next((r for r in revisions if r.id == doc.current_revision_id), None)
        return DocumentPublic(
            **_summary(doc, current),
            revisions=[
                RevisionPublic(
                    id=r.id,
                    number=r.number,
                    status=r.status,
                    error=r.error,
                    content_sha256=r.content_sha256,
                    size_bytes=r.size_bytes,
                    media_type=r.media_type,
                    chunk_count=r.chunk_count,
                    report=r.report or {},
                    created_at=r.created_at,
                    indexed_at=r.indexed_at,
                )
                for r in revisions
            ],
        )


@router.delete("/{doc_id}", status_code=204)
def remove_document(kb: str, doc_id: str, rt: RuntimeDep) -> Response:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    delete_document(rt, kb=kb_row, document_id=doc_id)
    return Response(status_code=204)


@router.post("/{doc_id}/reprocess", status_code=202, response_model=UploadItem)
def reprocess(kb: str, doc_id: str, rt: RuntimeDep) -> UploadItem:
    """Run the document's current revision through the pipeline again; what is indexed
    keeps serving until the new run replaces it. 409 while it is being processed."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    return UploadItem(**reprocess_document(rt, kb=kb_row, document_id=doc_id).__dict__)


status_router = APIRouter(prefix="/kbs/{kb}", tags=["documents"])


@status_router.get("/ingestion")
def ingestion(kb: str, rt: RuntimeDep) -> dict[str, Any]:
    """Counts by state, job queue (incl. dead letters), throughput, oldest pending
    document and the latest failures with their reasons."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    return ingestion_status(rt, kb=kb_row)
