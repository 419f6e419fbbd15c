"""The console's page of one document (`/console/kbs/{kb}/documents/{doc_id}`): its
metadata, its revisions with their stage reports (seconds and counts per stage, the
error of a failed one), the redaction report (counts by entity type and language, never
the values) and its chunks as indexed (text after redaction).

The page is a shell that `static/document.js` fills from `GET /v1/kbs/{kb}/documents/
{doc_id}` and `.../chunks` through the console bridge; the document is looked up here
only so that one that does not exist gets the 404 page, and its filename the title. A
key that may not read documents (a reader) is sent to the playground, as the documents
tab does.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Row

from api.console.pages import KbVisit, may, not_found, open_kb, page, runtime
from core.catalog.models import KnowledgeBase
from core.errors import NotFound
from ingest import documents as catalog

router = APIRouter(include_in_schema=False)

DOCUMENT_ROUTE = "/v1/kbs/{kb}/documents/{doc_id}"


@router.get("/console/kbs/{kb}/documents/{doc_id}")
async def document_page(request: Request, kb: str, doc_id: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p, row = opened.visitor.principal, opened.kb
    if not may(p, "GET", DOCUMENT_ROUTE):
        return RedirectResponse(f"/console/kbs/{quote(row.name)}/playground", status_code=303)
    try:
        doc = await run_in_threadpool(_document, request, row, doc_id)
    except NotFound:
        return not_found(
            request,
            opened.visitor,
            f"Document {doc_id!r} was not found in knowledge base {row.name!r}.",
        )
    return page(
        request,
        "document.html",
        opened.visitor,
        kb=row,
        tab="documents",
        can_documents=True,
        doc_id=doc.id,
        filename=doc.filename,
        can_chunks=may(p, "GET", DOCUMENT_ROUTE + "/chunks"),
    )


def _document(request: Request, kb: KnowledgeBase, doc_id: str) -> Row:
    with runtime(request).db.session() as session:
        return catalog.get_document(session=session, kb=kb, document_id=doc_id)
