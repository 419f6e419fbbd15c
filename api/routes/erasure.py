"""Erase with a receipt: one document, or everything that mentions a data subject
(`eval.erasure` does the work; see it for what goes and in which order)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from api.access import PrincipalDep, check_visible, note_detail
from api.deps import KbDep, RuntimeDep
from api.erasure_schemas import ErasureList, ErasureReceipt, ErasureRequest
from core.catalog.models import Document, Erasure, KnowledgeBase
from core.errors import NotFound
from core.logs import current_request_id
from eval.erasure import Scope, erase_documents, erase_subject, receipt_of

router = APIRouter(tags=["erasure"])


@router.post("/kbs/{kb}/documents/{doc_id}/erase", response_model=ErasureReceipt)
def erase_document(
    kb: KbDep, doc_id: str, rt: RuntimeDep, principal: PrincipalDep, request: Request
) -> ErasureReceipt:
    """Erase a document from every store (raw bytes of every revision, rows, vectors in
    every index version, BM25, the embedding cache, answers and feedback that quoted it,
    test cases and eval results that copied it); the receipt says what went where."""
    with rt.db.session() as s:
        doc = s.get(Document, doc_id)
        if doc is None or doc.kb_id != kb.id:
            raise NotFound(f"document {doc_id!r} not found in knowledge base {kb.name!r}")
    receipt = erase_documents(
        rt,
        document_ids=[doc_id],
        scope=Scope(kb_ids=[kb.id], global_sets=principal.all_kbs),
        key_id=principal.key_id,
        request_id=current_request_id(),
    )
    _note(request, receipt)
    return ErasureReceipt.model_validate(receipt)


@router.post("/erasure", response_model=ErasureReceipt)
def erase_data_subject(
    body: ErasureRequest, rt: RuntimeDep, principal: PrincipalDep, request: Request
) -> ErasureReceipt:
    """Erase every document, answer, feedback, test case and eval result that mentions
    any of the values, in every knowledge base this key administers, and scrub them from
    the audit log. The values are never stored or echoed."""
    with rt.db.session() as s:
        kb_ids = [k for k in s.execute(select(KnowledgeBase.id)).scalars() if principal.sees(k)]
    receipt = erase_subject(
        rt,
        values=body.values,
        scope=Scope(kb_ids=sorted(kb_ids), global_sets=principal.all_kbs),
        key_id=principal.key_id,
        request_id=current_request_id(),
    )
    _note(request, receipt, values=len(body.values))
    return ErasureReceipt.model_validate(receipt)


@router.get("/erasures", response_model=ErasureList)
def list_erasures(rt: RuntimeDep, principal: PrincipalDep) -> ErasureList:
    """Receipts of past erases in the knowledge bases this key sees, newest first."""
    with rt.db.session() as s:
        rows = s.execute(select(Erasure).order_by(Erasure.created_at.desc())).scalars()
        visible = [
            receipt_of(r) for r in rows if all(principal.sees(k) for k in r.kb_ids or [None])
        ]
    return ErasureList(erasures=[ErasureReceipt.model_validate(r) for r in visible])


@router.get("/erasures/{erasure_id}", response_model=ErasureReceipt)
def get_erasure(erasure_id: str, rt: RuntimeDep, principal: PrincipalDep) -> ErasureReceipt:
    message = f"erasure {erasure_id!r} not found"
    with rt.db.session() as s:
        row = s.get(Erasure, erasure_id)
        if row is None:
            raise NotFound(message)
        for kb_id in row.kb_ids or [None]:
            check_visible(principal, kb_id, message)
        return ErasureReceipt.model_validate(receipt_of(row))


def _note(request: Request, receipt: dict, **extra: int) -> None:
    stores = receipt["stores"]
    note_detail(
        request,
        target=receipt["id"],
        kb_id=receipt["kb_ids"][0] if len(receipt["kb_ids"]) == 1 else None,
        erasure_id=receipt["id"],
        counts={name: line.get("count", 0) for name, line in stores.items()},
        **extra,
    )
