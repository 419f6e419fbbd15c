from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from api.access import PrincipalDep, note_detail
from api.deps import KbDep, RuntimeDep, SessionDep
from api.schemas import (
    KnowledgeBaseCreate,
    KnowledgeBaseList,
    KnowledgeBasePublic,
    KnowledgeBaseUpdate,
)
from core.kbs import kb_summaries
from ingest.knowledge_bases import create_kb, delete_kb, update_kb

router = APIRouter(prefix="/kbs", tags=["knowledge bases"])


def to_public(session: Session, kb_id: str) -> KnowledgeBasePublic:
    (row,) = kb_summaries(session=session, kb_id=kb_id)
    return KnowledgeBasePublic.model_validate(row, from_attributes=True)


@router.post("", status_code=201, response_model=KnowledgeBasePublic)
def create(
    body: KnowledgeBaseCreate, rt: RuntimeDep, session: SessionDep, request: Request
) -> KnowledgeBasePublic:
    changes = body.model_dump(exclude={"name", "description"}, exclude_unset=True)
    kb = create_kb(rt, name=body.name, description=body.description, changes=changes)
    note_detail(request, target=kb.id, kb_id=kb.id, name=kb.name)
    return to_public(session, kb.id)


@router.get("", response_model=KnowledgeBaseList)
def list_all(session: SessionDep, viewer: PrincipalDep) -> KnowledgeBaseList:
    """The knowledge bases this key may use."""
    rows = [r for r in kb_summaries(session=session) if viewer.sees(r.id)]
    return KnowledgeBaseList(
        data=[KnowledgeBasePublic.model_validate(r, from_attributes=True) for r in rows]
    )


@router.get("/{kb}", response_model=KnowledgeBasePublic)
def get(kb: KbDep, session: SessionDep, request: Request) -> KnowledgeBasePublic:
    """A knowledge base by name or id; `matched_by` says which the path matched."""
    public = to_public(session, kb.id)
    public.matched_by = "name" if kb.name == request.path_params["kb"] else "id"
    return public


@router.patch("/{kb}", response_model=KnowledgeBasePublic)
def patch(
    kb: str, body: KnowledgeBaseUpdate, rt: RuntimeDep, session: SessionDep
) -> KnowledgeBasePublic:
    changes = body.model_dump(exclude={"description"}, exclude_unset=True)
    row = update_kb(rt, name_or_id=kb, description=body.description, changes=changes)
    return to_public(session, row.id)


@router.delete("/{kb}", status_code=204)
def remove(kb: str, rt: RuntimeDep) -> Response:
    delete_kb(rt, name_or_id=kb)
    return Response(status_code=204)
