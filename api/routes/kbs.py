from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from api.deps import RuntimeDep
from api.schemas import (
    KnowledgeBaseCreate,
    KnowledgeBaseList,
    KnowledgeBasePublic,
    KnowledgeBaseUpdate,
)
from core.catalog.models import Document, KnowledgeBase
from core.kbs import get_kb, list_kbs, live_version
from core.runtime import Runtime
from ingest.knowledge_bases import create_kb, delete_kb, update_kb

router = APIRouter(prefix="/kbs", tags=["knowledge bases"])


def to_public(rt: Runtime, kb: KnowledgeBase) -> KnowledgeBasePublic:
    with rt.db.session() as s:
        live = live_version(session=s, kb_id=kb.id)
        count = s.execute(select(func.count(Document.id)).where(Document.kb_id == kb.id)).scalar()
    return KnowledgeBasePublic(
        id=kb.id,
        name=kb.name,
        description=kb.description,
        chunking=kb.config["chunking"],
        redaction=kb.config["redaction"],
        cleaning=kb.config.get("cleaning") or {},
        embedding_model=kb.config["embedding_model"],
        reranker=kb.config.get("reranker"),
        live_version=live.number if live else None,
        document_count=count or 0,
        created_at=kb.created_at,
        updated_at=kb.updated_at,
    )


@router.post("", status_code=201, response_model=KnowledgeBasePublic)
def create(body: KnowledgeBaseCreate, rt: RuntimeDep) -> KnowledgeBasePublic:
    changes = body.model_dump(exclude={"name", "description"}, exclude_unset=True)
    kb = create_kb(rt, name=body.name, description=body.description, changes=changes)
    return to_public(rt, kb)


@router.get("", response_model=KnowledgeBaseList)
def list_all(rt: RuntimeDep) -> KnowledgeBaseList:
    with rt.db.session() as s:
        kbs = list_kbs(session=s)
    return KnowledgeBaseList(data=[to_public(rt, kb) for kb in kbs])


@router.get("/{kb}", response_model=KnowledgeBasePublic)
def get(kb: str, rt: RuntimeDep) -> KnowledgeBasePublic:
    with rt.db.session() as s:
        row = get_kb(session=s, name_or_id=kb)
    return to_public(rt, row)


@router.patch("/{kb}", response_model=KnowledgeBasePublic)
def patch(kb: str, body: KnowledgeBaseUpdate, rt: RuntimeDep) -> KnowledgeBasePublic:
    changes = body.model_dump(exclude={"description"}, exclude_unset=True)
    row = update_kb(rt, name_or_id=kb, description=body.description, changes=changes)
    return to_public(rt, row)


@router.delete("/{kb}", status_code=204)
def remove(kb: str, rt: RuntimeDep) -> Response:
    delete_kb(rt, name_or_id=kb)
    return Response(status_code=204)
