from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.access import PrincipalDep
from api.answer_schemas import (
    AnswerPublic,
    AnswerRequest,
    AnswerResponse,
    AnswerSettingsPublic,
    AnswerSettingsUpdate,
    FeedbackCreate,
    FeedbackPublic,
    PromptRef,
)
from api.deps import KbDep, RuntimeDep, SessionDep
from api.runtime import Runtime
from core.access import Principal
from core.catalog.models import Answer, KnowledgeBase
from core.errors import NotFound, RagopsError
from core.kbs import kb_name
from retrieval import ab, answers
from retrieval.chain import AnswerPlan, plan_answer, run_answer, stream_answer

log = logging.getLogger(__name__)
router = APIRouter(tags=["answers"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _events(rt: Runtime, plan: AnswerPlan) -> Iterator[str]:
    try:
        for kind, data in stream_answer(rt, plan):
            yield sse("token", {"text": data}) if kind == "token" else sse("done", data)
    except RagopsError as exc:  # headers are sent: report in-band
        yield sse("error", {"error": {"code": exc.code, "message": exc.message}})
    except Exception:  # noqa: BLE001 - a bare 500 equivalent, details in the log
        log.exception("answer stream failed")
        yield sse("error", {"error": {"code": "internal_error", "message": "internal error"}})


def _prompt_arg(prompt: str | PromptRef | None) -> tuple[str | None, int | None]:
    if isinstance(prompt, PromptRef):
        return prompt.name, prompt.version
    return prompt, None


@router.post(
    "/kbs/{kb}/answer",
    response_model=AnswerResponse,
    response_model_exclude_unset=True,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def answer(kb: KbDep, body: AnswerRequest, rt: RuntimeDep) -> Any:
    """Answer from the KB's documents with citations. `"stream": true` sends server-sent
    events: `token` ({"text"}) pieces, then `done` with this same JSON, or `error`. While
    an A/B test runs on the KB, `user_id` (else `session_id`) picks its arm, sticky; a
    request pinning index_version, generator or prompt bypasses the test."""
    prompt, prompt_version = _prompt_arg(body.prompt)
    routed = ab.route(
        rt,
        kb=kb,
        user_id=body.user_id,
        session_id=body.session_id,
        index_version=body.index_version,
        generator=body.generator,
        prompt=prompt,
        prompt_version=prompt_version,
    )
    plan = plan_answer(
        rt,
        kb=kb,
        query=body.query,
        top_k=body.top_k,
        **routed.plan_kwargs(),
        score_threshold=body.score_threshold,
        filters=body.filters,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        channel="stream" if body.stream else "api",
    )
    routed.tag(plan)
    if body.stream:
        return StreamingResponse(
            _events(rt, plan), media_type="text/event-stream", headers=SSE_HEADERS
        )
    return run_answer(rt, plan)


def _settings_public(rt: Runtime, session: Session, kb: KnowledgeBase) -> AnswerSettingsPublic:
    defaults = answers.answer_defaults(
        session=session, kb_id=kb.id, server_generator=rt.settings.answer_generator
    )
    return AnswerSettingsPublic.model_validate(defaults, from_attributes=True)


@router.get("/kbs/{kb}/answer-settings", response_model=AnswerSettingsPublic)
def get_answer_settings(kb: KbDep, rt: RuntimeDep, session: SessionDep) -> AnswerSettingsPublic:
    return _settings_public(rt, session, kb)


@router.put("/kbs/{kb}/answer-settings", response_model=AnswerSettingsPublic)
def put_answer_settings(
    kb: KbDep, body: AnswerSettingsUpdate, rt: RuntimeDep, session: SessionDep
) -> AnswerSettingsPublic:
    """The KB's default generator and prompt (a request may still name others). Fields
    left out stay; "" resets one to the server default."""
    answers.set_answer_defaults(
        session=session, kb_id=kb.id, generator=body.generator, prompt=body.prompt
    )
    return _settings_public(rt, session, kb)


@router.get("/answers/{answer_id}", response_model=AnswerPublic)
def get_answer(answer_id: str, session: SessionDep, viewer: PrincipalDep) -> AnswerPublic:
    """A recorded answer with its passages, generator, prompt, index version and feedback."""
    row = _visible_answer(session, answer_id, viewer)
    return AnswerPublic.from_row(
        row,
        kb=kb_name(session=session, kb_id=row.kb_id) or row.kb_id,
        feedback=answers.list_feedback(session=session, answer_id=row.id),
    )


@router.post("/answers/{answer_id}/feedback", status_code=201, response_model=FeedbackPublic)
def add_feedback(
    answer_id: str, body: FeedbackCreate, session: SessionDep, viewer: PrincipalDep
) -> FeedbackPublic:
    """Rate an answer (1 or -1), optionally with a comment and the correct answer, and for
    a -1 the chunk that supports it (422 unless a chunk of the answer's KB). Stored
    against the answer's query, passages, generator, prompt and index version."""
    _visible_answer(session, answer_id, viewer)
    row = answers.add_feedback(
        session=session,
        answer_id=answer_id,
        rating=body.rating,
        comment=body.comment,
        correction=body.correction,
        supporting_chunk_id=body.supporting_chunk_id,
    )
    return FeedbackPublic.model_validate(row, from_attributes=True)


def _visible_answer(session: Session, answer_id: str, viewer: Principal) -> Answer:
    row = answers.get_answer(session=session, answer_id=answer_id)
    if not viewer.sees(row.kb_id):
        # The same message as an id that does not exist: no existence leak.
        raise NotFound(f"answer {answer_id!r} not found; answer ids come from /answer")
    return row
