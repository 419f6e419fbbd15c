"""OpenAI-compatible façade, so chat front-ends and SDKs plug in unchanged:
`GET /v1/models` lists knowledge bases (`kb`, and `kb@<version>` for each ready or live
index version) and `POST /v1/chat/completions` answers the last user message from the
model's KB through the answer chain (its generator and prompt settings apply; earlier
turns go to LLM generators as history). Citations and the answer id ride along in the
non-standard `citations` and `answer_id` fields. The standard `user` field is the subject
of a running A/B test (sticky arm); `kb@version`, `generator` or `prompt` bypass the test.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the
official clients raise their usual exceptions. Auth is the same Bearer key as /v1.

Example::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY)
    client.chat.completions.create(model="handbook", messages=[{"role": "user", ...}])
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from api.deps import RuntimeDep, SessionDep, load_kb
from api.errors import status_for
from api.runtime import Runtime
from core.errors import InvalidInput, NotFound, RagopsError
from core.kbs import list_kbs
from index.versions import queryable_numbers
from retrieval import ab
from retrieval.chain import AnswerPlan, plan_answer, run_answer, stream_answer
from retrieval.generators.base import Message

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai-compatible"])

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def oai_error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _from_domain(exc: RagopsError) -> JSONResponse:
    status = status_for(exc)
    # OpenAI reports unprocessable requests as 400; keep 404/409/429/503 as they are.
    if status == 422:
        status = 400
    code = "model_not_found" if isinstance(exc, NotFound) else exc.code
    return oai_error(status, exc.message, code)


def check_key(rt: Runtime, request: Request) -> JSONResponse | None:
    expected = rt.settings.admin_key
    if not expected:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return oai_error(
            401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key"
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        return oai_error(401, "invalid API key", "invalid_api_key")
    return None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI parameters (n, stop, tools, ...) are accepted and ignored.
    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1)
    messages: list[ChatMessageIn] = Field(..., min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    # Non-standard (send with the SDK's extra_body): pick generator, prompt, depth.
    generator: str | None = None
    prompt: str | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    # OpenAI's end-user id: keeps a running A/B test's arm sticky (see retrieval.ab).
    user: str | None = Field(None, max_length=256)


def _model_ids(session: Session) -> list[tuple[str, int]]:
    kbs = list_kbs(session=session)
    versions = queryable_numbers(session=session)
    created = {kb.id: int(kb.created_at.timestamp()) for kb in kbs}
    out: list[tuple[str, int]] = []
    for kb in kbs:
        out.append((kb.name, created[kb.id]))
        out.extend((f"{kb.name}@{n}", created[kb.id]) for kb_id, n in versions if kb_id == kb.id)
    return out


@router.get("/models")
def list_models(request: Request, rt: RuntimeDep, session: SessionDep) -> JSONResponse:
    """Every knowledge base as a model, plus `kb@<version>` for its ready/live versions."""
    if denied := check_key(rt, request):
        return denied
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "ragops"}
        for name, created in _model_ids(session)
    ]
    return JSONResponse({"object": "list", "data": data})


def _split_model(model: str) -> tuple[str, int | None]:
    name, sep, version = model.rpartition("@")
    if sep and version.isdigit() and name:
        return name, int(version)
    return model, None


def _plan(rt: Runtime, body: ChatCompletionRequest) -> AnswerPlan:
    kb_name, version = _split_model(body.model)
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
        raise InvalidInput("messages must end with a non-empty user message: the question")
    history = [Message(m.role, m.text()) for m in turns[:-1] if m.text().strip()]
    try:
        kb = load_kb(rt, kb_name)
    except NotFound as exc:
        raise NotFound(
            f"model {body.model!r} not found: models are knowledge bases (GET /v1/models)"
        ) from exc
    routed = ab.route(
        rt,
        kb=kb,
        user_id=body.user,
        index_version=version,
        generator=body.generator,
        prompt=body.prompt,
    )
    plan = plan_answer(
        rt,
        kb=kb,
        query=turns[-1].text(),
        top_k=body.top_k,
        **routed.plan_kwargs(),
        history=history,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        channel="openai",
    )
    return routed.tag(plan)


def _completion_id(answer_id: str) -> str:
    return f"chatcmpl-{answer_id}"


@router.post("/chat/completions")
async def chat_completions(request: Request, rt: RuntimeDep) -> Any:
    """A chat completion answered from the model's knowledge base (model = `kb` or
    `kb@version`), streamed as `chat.completion.chunk` events ending in `data: [DONE]`
    when `stream` is true."""
    if denied := check_key(rt, request):
        return denied
    try:
        body = ChatCompletionRequest.model_validate(json.loads(await request.body()))
    except (ValueError, ValidationError) as exc:
        return oai_error(400, _describe(exc), "invalid_request_error")
    try:
        plan = await run_in_threadpool(_plan, rt, body)
        if body.stream:
            return StreamingResponse(
                _chunks(rt, plan, body.model),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        result = await run_in_threadpool(run_answer, rt, plan)
    except RagopsError as exc:
        return _from_domain(exc)
    return JSONResponse(
        {
            "id": _completion_id(result["id"]),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result["answer"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": None,
            "system_fingerprint": None,
            "answer_id": result["id"],
            "citations": result["citations"],
            "index_version": result["index_version"],
            "generator": result["generator"],
            "prompt": result["prompt"],
            **ab.public_fields(result),
        }
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg', 'invalid value')}" if loc else err["msg"])
        return "; ".join(parts) or "invalid request"
    return f"request body is not valid JSON: {exc}"


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> str:
    return (
        "data: "
        + json.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            },
            ensure_ascii=False,
        )
        + "\n\n"
    )


def _chunks(rt: Runtime, plan: AnswerPlan, model: str) -> Iterator[str]:
    # The answer id exists only once recorded, so streamed chunks share a request id and
    # the final chunk carries `answer_id` and `citations`.
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
    try:
        for kind, data in stream_answer(rt, plan):
            if kind == "token":
                yield _chunk(cid, created, model, {"content": data}, None)
                continue
            final = json.loads(_chunk(cid, created, model, {}, "stop")[len("data: ") :])
            final.update(
                answer_id=data["id"],
                citations=data["citations"],
                index_version=data["index_version"],
                generator=data["generator"],
                prompt=data["prompt"],
                **ab.public_fields(data),
            )
            yield "data: " + json.dumps(final, ensure_ascii=False) + "\n\n"
    except RagopsError as exc:
        error = json.loads(_from_domain(exc).body)
        yield "data: " + json.dumps(error, ensure_ascii=False) + "\n\n"
    except Exception:  # noqa: BLE001
        log.exception("chat completion stream failed")
        yield (
            "data: "
            + json.dumps(
                {"error": {"message": "internal error", "type": "server_error", "code": None}}
            )
            + "\n\n"
        )
    yield "data: [DONE]\n\n"
