"""Knowledge-base catalog functions (keyword-only, session first)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog.models import IndexVersion, KnowledgeBase, VersionStatus
from core.errors import NotFound


def get_kb(*, session: Session, name_or_id: str) -> KnowledgeBase:
    kb = session.execute(
        select(KnowledgeBase).where(KnowledgeBase.name == name_or_id)
    ).scalar_one_or_none() or session.get(KnowledgeBase, name_or_id)
    if kb is None:
        raise NotFound(f"knowledge base {name_or_id!r} not found; create it with POST /v1/kbs")
    return kb


def list_kbs(*, session: Session) -> list[KnowledgeBase]:
    return list(session.execute(select(KnowledgeBase).order_by(KnowledgeBase.name)).scalars())


def live_version(*, session: Session, kb_id: str) -> IndexVersion | None:
    return session.execute(
        select(IndexVersion).where(
            IndexVersion.kb_id == kb_id, IndexVersion.status == VersionStatus.LIVE
        )
    ).scalar_one_or_none()
