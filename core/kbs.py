"""Knowledge-base catalog functions (keyword-only, session first)."""

from __future__ import annotations

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from core.catalog.models import Document, IndexVersion, KnowledgeBase, VersionStatus
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


def kb_summaries(*, session: Session, kb_id: str | None = None) -> list[Row]:
    """Knowledge bases by name (or the one `kb_id`), each a row of the table's columns
    plus `live_version` (its number, None without one) and `document_count`."""
    live = (
        select(IndexVersion.number)
        .where(IndexVersion.kb_id == KnowledgeBase.id, IndexVersion.status == VersionStatus.LIVE)
        .scalar_subquery()
    )
    documents = (
        select(func.count(Document.id)).where(Document.kb_id == KnowledgeBase.id).scalar_subquery()
    )
    query = select(
        *KnowledgeBase.__table__.columns,
        live.label("live_version"),
        documents.label("document_count"),
    ).order_by(KnowledgeBase.name)
    if kb_id is not None:
        query = query.where(KnowledgeBase.id == kb_id)
    return list(session.execute(query).all())


def kb_name(*, session: Session, kb_id: str | None) -> str | None:
    """The name of the KB with this id; None for None or an id that is gone."""
    kb = session.get(KnowledgeBase, kb_id) if kb_id else None
    return kb.name if kb else None


def kb_names(*, session: Session) -> dict[str, str]:
    """Every KB's name by its id."""
    return dict(session.execute(select(KnowledgeBase.id, KnowledgeBase.name)).tuples().all())
