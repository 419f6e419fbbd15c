"""The retrieval layer's part of an erase: stored answers that quoted an erased document
(or mention a data subject's values in the question, the answer, the passages or a
feedback comment or correction), their feedback, and the in-process BM25 copies of the
erased text."""

from __future__ import annotations

from sqlalchemy import String, cast, delete, or_, select
from sqlalchemy.orm import Session

from core.catalog.models import Answer, AnswerFeedback, IndexVersion
from core.erasure import Needles, Receipt, mentions_any
from retrieval.services import RetrievalServices


def answers_to_erase(
    *, session: Session, kb_ids: list[str], document_ids: list[str], needles: Needles
) -> list[str]:
    """Ids of the answers in `kb_ids` whose passages or citations come from the
    documents, or whose text or feedback mentions a needle."""
    found: set[str] = set()
    if document_ids:
        # A cheap textual filter first (ids are hex: no LIKE metacharacters), then exact.
        hits = session.execute(
            select(Answer.id, Answer.contexts, Answer.citations).where(
                Answer.kb_id.in_(kb_ids),
                or_(*(cast(Answer.contexts, String).contains(d) for d in document_ids)),
            )
        )
        for answer_id, contexts, citations in hits:
            if _cites(contexts, document_ids) or _cites(citations, document_ids):
                found.add(answer_id)
    if needles:
        rows = session.execute(
            select(Answer.id, Answer.query, Answer.answer, Answer.contexts).where(
                Answer.kb_id.in_(kb_ids)
            )
        )
        for answer_id, query, text, contexts in rows:
            if needles.in_text(query) or needles.in_text(text) or needles.in_json(contexts):
                found.add(answer_id)
        feedback = session.execute(
            select(AnswerFeedback.answer_id, AnswerFeedback.comment, AnswerFeedback.correction)
            .join(Answer, Answer.id == AnswerFeedback.answer_id)
            .where(Answer.kb_id.in_(kb_ids))
        )
        for answer_id, comment, correction in feedback:
            if needles.in_text(comment) or needles.in_text(correction):
                found.add(answer_id)
    return sorted(found)


def _cites(passages: list | None, document_ids: list[str]) -> bool:
    return any(
        isinstance(p, dict) and p.get("document_id") in document_ids for p in passages or []
    ) or mentions_any(passages or [], document_ids)


def erase_answers(*, session: Session, answer_ids: list[str], receipt: Receipt) -> None:
    """Delete the answers and every feedback on them."""
    feedback_ids: list[str] = []
    for start in range(0, len(answer_ids), 500):
        batch = answer_ids[start : start + 500]
        feedback_ids += session.execute(
            select(AnswerFeedback.id).where(AnswerFeedback.answer_id.in_(batch))
        ).scalars()
        session.execute(delete(AnswerFeedback).where(AnswerFeedback.answer_id.in_(batch)))
        session.execute(delete(Answer).where(Answer.id.in_(batch)))
    receipt.add("answers", ids=answer_ids)
    receipt.add("feedback", ids=feedback_ids)


def forget_lexical(
    rt: RetrievalServices, *, kb_ids: list[str], text_hashes: list[str], receipt: Receipt
) -> None:
    """BM25 lives in each process's memory, rebuilt from the catalog when a version's
    generation moves (the vector erase bumped it): drop this process's copies now."""
    with rt.db.session() as s:
        version_ids = list(
            s.execute(select(IndexVersion.id).where(IndexVersion.kb_id.in_(kb_ids))).scalars()
        )
    dropped = rt.bm25.forget(version_ids, text_hashes)
    receipt.add("bm25", count=dropped, note="rebuilt from the catalog on next use")
