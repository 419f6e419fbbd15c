"""Recorded answers, their feedback and each KB's answer defaults (catalog functions,
keyword-only, session first).

Example::

    answer = get_answer(session=s, answer_id=answer_id)
    add_feedback(session=s, answer_id=answer.id, rating=-1, correction="Ten days.",
                 supporting_chunk_id=answer.contexts[1]["chunk_id"])
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog.models import Answer, AnswerFeedback, AnswerSettings, Chunk
from core.errors import InvalidInput, NotFound
from retrieval.generators import check_generator_name
from retrieval.prompts import DEFAULT_PROMPT, parse_ref, resolve_prompt


def get_answer(*, session: Session, answer_id: str) -> Answer:
    row = session.get(Answer, answer_id)
    if row is None:
        raise NotFound(f"answer {answer_id!r} not found; answer ids come from /answer")
    return row


def list_feedback(*, session: Session, answer_id: str) -> list[AnswerFeedback]:
    """An answer's feedback, oldest first."""
    return list(
        session.execute(
            select(AnswerFeedback)
            .where(AnswerFeedback.answer_id == answer_id)
            .order_by(AnswerFeedback.created_at)
        ).scalars()
    )


def add_feedback(
    *,
    session: Session,
    answer_id: str,
    rating: int,
    comment: str | None = None,
    correction: str | None = None,
    supporting_chunk_id: str | None = None,
) -> AnswerFeedback:
    """Store a rating (1 or -1) of a recorded answer (NotFound for an unknown one).
    `supporting_chunk_id` (thumbs-down only): the chunk that holds the right answer, a
    chunk of the answer's KB in any of its index versions (InvalidInput otherwise)."""
    answer = get_answer(session=session, answer_id=answer_id)
    if supporting_chunk_id is not None:
        if rating != -1:
            raise InvalidInput(
                "supporting_chunk_id names the chunk that supports a correction: send it "
                "with rating -1 (a thumbs-up already points at the answer's citations)"
            )
        _check_supporting_chunk(session=session, answer=answer, chunk_id=supporting_chunk_id)
    row = AnswerFeedback(
        answer_id=answer_id,
        rating=rating,
        comment=comment,
        correction=correction,
        supporting_chunk_id=supporting_chunk_id,
    )
    session.add(row)
    session.flush()
    return row


def _check_supporting_chunk(*, session: Session, answer: Answer, chunk_id: str) -> None:
    found = session.execute(
        select(Chunk.id).where(Chunk.id == chunk_id, Chunk.kb_id == answer.kb_id)
    ).first()
    if found is None:
        raise InvalidInput(
            f"supporting_chunk_id {chunk_id!r} is not a chunk of this answer's knowledge "
            f"base; use a chunk_id from the answer's contexts (GET /v1/answers/{answer.id}) "
            "or from a search of that knowledge base (POST /v1/kbs/{kb}/retrieve)"
        )


@dataclass(frozen=True)
class PromptChoice:
    name: str
    version: int | None  # None: the newest version at answer time


@dataclass(frozen=True)
class AnswerDefaults:
    """What /answer uses for a KB when a request names no generator or prompt."""

    generator: str
    generator_source: str  # "kb" (its settings) or "server" (RAGOPS_ANSWER_GENERATOR)
    prompt: PromptChoice


def answer_defaults(*, session: Session, kb_id: str, server_generator: str) -> AnswerDefaults:
    row = session.get(AnswerSettings, kb_id)
    generator = row.generator if row and row.generator else None
    if row is not None and row.prompt_name:
        prompt = PromptChoice(name=row.prompt_name, version=row.prompt_version)
    else:
        prompt = PromptChoice(name=DEFAULT_PROMPT, version=None)
    return AnswerDefaults(
        generator=generator or server_generator,
        generator_source="kb" if generator else "server",
        prompt=prompt,
    )


def set_answer_defaults(
    *, session: Session, kb_id: str, generator: str | None = None, prompt: str | None = None
) -> AnswerSettings:
    """Change a KB's default generator and/or prompt ("name" or "name@version", which must
    exist). None leaves one as it is; "" resets it to the server default."""
    row = session.get(AnswerSettings, kb_id) or AnswerSettings(kb_id=kb_id)
    if generator is not None:
        row.generator = check_generator_name(generator) if generator else None
    if prompt is not None:
        if prompt:
            name, version = parse_ref(prompt)
            resolve_prompt(session=session, name=name, version=version)  # must exist
            row.prompt_name, row.prompt_version = name, version
        else:
            row.prompt_name, row.prompt_version = None, None
    session.add(row)
    session.flush()
    return row
