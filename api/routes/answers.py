from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy import select

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
from api.deps import RuntimeDep
from core.catalog.models import Answer, AnswerFeedback, AnswerSettings, KnowledgeBase
from core.errors import NotFound, RagopsError
from core.kbs import get_kb
from core.runtime import Runtime
from retrieval import ab
from retrieval.chain import AnswerPlan, plan_answer, run_answer, stream_answer
from retrieval.generators import check_generator_name
from retrieval.prompts import DEFAULT_PROMPT, parse_ref, resolve_prompt

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
def answer(kb: str, body: AnswerRequest, rt: RuntimeDep) -> Any:
    """Answer from the KB's documents with citations. `"stream": true` sends server-sent
    events: `token` ({"text"}) pieces, then `done` with this same JSON, or `error`. While
    an A/B test runs on the KB, `user_id` (else `session_id`) picks its arm, sticky; a
    request pinning index_version, generator or prompt bypasses the test."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    prompt, prompt_version = _prompt_arg(body.prompt)
    routed = ab.route(
        rt,
        kb=kb_row,
        user_id=body.user_id,
        session_id=body.session_id,
        index_version=body.index_version,
        generator=body.generator,
        prompt=prompt,
        prompt_version=prompt_version,
    )
    plan = plan_answer(
        rt,
        kb=kb_row,
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


def _settings_public(rt: Runtime, kb: KnowledgeBase) -> AnswerSettingsPublic:
    with rt.db.session() as s:
        row = s.get(AnswerSettings, kb.id)
    generator = row.generator if row and row.generator else None
    return AnswerSettingsPublic(
        generator=generator or rt.settings.answer_generator,
        generator_source="kb" if generator else "server",
        prompt=PromptRef(
            name=(row.prompt_name if row and row.prompt_name else DEFAULT_PROMPT),
            version=row.prompt_version if row and row.prompt_name else None,
        ),
    )


@router.get("/kbs/{kb}/answer-settings", response_model=AnswerSettingsPublic)
def get_answer_settings(kb: str, rt: RuntimeDep) -> AnswerSettingsPublic:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    return _settings_public(rt, kb_row)


@router.put("/kbs/{kb}/answer-settings", response_model=AnswerSettingsPublic)
def put_answer_settings(
    kb: str, body: AnswerSettingsUpdate, rt: RuntimeDep
) -> AnswerSettingsPublic:
    """The KB's default generator and prompt (a request may still name others). Fields
    left out stay; "" resets one to the server default."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        row = s.get(AnswerSettings, kb_row.id) or AnswerSettings(kb_id=kb_row.id)
        if body.generator is not None:
            row.generator = check_generator_name(body.generator) if body.generator else None
        if body.prompt is not None:
            if body.prompt:
                name, version = parse_ref(body.prompt)
                resolve_prompt(session=s, name=name, version=version)  # must exist
                row.prompt_name, row.prompt_version = name, version
            else:
                row.prompt_name, row.prompt_version = None, None
        s.add(row)
    return _settings_public(rt, kb_row)


def _feedback_public(f: AnswerFeedback) -> FeedbackPublic:
    return FeedbackPublic(
        id=f.id,
        answer_id=f.answer_id,
        rating=f.rating,
        comment=f.comment,
        correction=f.correction,
        created_at=f.created_at,
    )


def _get_answer(s: Any, answer_id: str) -> Answer:
    row = s.get(Answer, answer_id)
    if row is None:
        raise NotFound(f"answer {answer_id!r} not found; answer ids come from /answer")
    return row


@router.get("/answers/{answer_id}", response_model=AnswerPublic)
def get_answer(answer_id: str, rt: RuntimeDep) -> AnswerPublic:
    """A recorded answer with its passages, generator, prompt, index version and feedback."""
    with rt.db.session() as s:
        row = _get_answer(s, answer_id)
        kb = s.get(KnowledgeBase, row.kb_id)
        feedback = s.execute(
            select(AnswerFeedback)
            .where(AnswerFeedback.answer_id == row.id)
            .order_by(AnswerFeedback.created_at)
        ).scalars()
        return AnswerPublic(
            id=row.id,
            kb=kb.name if kb else row.kb_id,
            query=row.query,
            answer=row.answer,
            citations=row.citations,
            contexts=row.contexts,
            generator=row.generator,
            generator_model=row.generator_model,
            prompt={"name": row.prompt_name, "version": row.prompt_version},
            index_version=row.index_version,
            channel=row.channel,
            latency_ms=row.latency_ms,
            arm=row.arm,
            created_at=row.created_at,
            feedback=[_feedback_public(f) for f in feedback],
        )


@router.post("/answers/{answer_id}/feedback", status_code=201, response_model=FeedbackPublic)
def add_feedback(answer_id: str, body: FeedbackCreate, rt: RuntimeDep) -> FeedbackPublic:
    """Rate an answer (1 or -1), optionally with a comment and the correct answer. Stored
    against the answer's query, passages, generator, prompt and index version."""
    with rt.db.session() as s:
        _get_answer(s, answer_id)
        row = AnswerFeedback(
            answer_id=answer_id,
            rating=body.rating,
            comment=body.comment,
            correction=body.correction,
        )
        s.add(row)
        s.flush()
        return _feedback_public(row)
