"""OpenAI-compatible façade, so chat front-ends and SDKs plug in unchanged:
`GET /v1/models` lists knowledge bases (`kb`, and `kb@<version>` for each ready or live
index version), `GET /v1/models/{id}` returns one, and `POST /v1/chat/completions`
answers the last user message from the model's KB through the answer chain (its
generator and prompt settings apply; earlier turns go to LLM generators as history).
Citations and the answer id ride along in the non-standard `citations` and `answer_id`
fields. The standard `user` field is the subject of a running A/B test (sticky arm);
`kb@version`, `generator` or `prompt` bypass the test.

`usage` counts the prompt sent to the generator (system + passages + history + question)
and the completion: with the local model's tokenizer, as the `openai` generator's endpoint
reports them, else (extractive; an endpoint that reports none) with the KB's embedding
model's tokenizer over the rendered prompt's messages. With no relevant passage the
generator is not called: prompt_tokens is 0. A stream ends with a `usage` chunk
(`choices: []`) when asked with `stream_options: {"include_usage": true}`.

Limits, checked before any work (api.limits; README, "OpenAI-compatible API"): the body
(≤ MAX_JSON_BODY_BYTES, 413 beyond), its nesting (≤ MAX_JSON_DEPTH), the question (the
last user message, ≤ MAX_QUERY_CHARS like every query route), all messages together
(≤ MAX_CHAT_CHARS), their number (≤ MAX_MESSAGES); content is a string or a list of
`{"type": "text", "text": <string>}` parts. Parsing, validation, retrieval and generation
run in worker threads, never on the event loop.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the
official clients raise their usual exceptions. Auth is the same Bearer key as /v1.

`/v1/models/registry` and everything under it is the model registry, never a model id
here (so `registry` is a reserved KB name, see `ingest.knowledge_bases.RESERVED_NAMES`).

Example::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY)
    client.models.retrieve("handbook")
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
from pydantic import ConfigDict, Field, StrictBool, ValidationError, field_validator
from sqlalchemy.orm import Session
from starlette.convertors import PathConvertor, register_url_convertor

from api.access import bearer_token, principal_of, visible_kb
from api.deps import RuntimeDep, SessionDep, load_kb
from api.errors import status_for
from api.facade_schemas import ChatCompletion, ModelObject, ModelObjectList
from api.limits import MAX_DB_INT, MAX_JSON_BODY_BYTES, MAX_QUERY_CHARS, load_json, read_body
from api.runtime import Runtime
from api.schemas import RequestModel, choices
from core.access import Principal
from core.errors import InvalidInput, NotFound, RagopsError, Unauthenticated
from core.kbs import list_kbs
from index.versions import queryable_numbers
from retrieval import ab
from retrieval.chain import AnswerPlan, plan_answer, run_answer, stream_answer
from retrieval.generators import GENERATORS
from retrieval.generators.base import Message

log = logging.getLogger(__name__)


class ModelIdConvertor(PathConvertor):
    """A model id in a path ('/' included: an unknown `org/model` is still a 404
    `model_not_found`), but nothing under /v1/models/registry/ (the model registry's) or
    /v1/models/finetune (fine-tuning jobs'; `finetune` is a reserved KB name)."""

    regex = r"(?!registry/|finetune(?:/|$)).*"


register_url_convertor("model_id", ModelIdConvertor())
router = APIRouter(prefix="/v1", tags=["openai-compatible"])

# All messages of one request together, in characters: the question plus room for a
# system message and a few turns of history.
MAX_CHAT_CHARS = 4 * MAX_QUERY_CHARS
MAX_MESSAGES = 256
# Largest version number a `kb@N` model id may name (the catalog's integer range).
_MAX_VERSION = 2**63 - 1

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def oai_error(
    status: int, message: str, code: str | None, param: str | None = None
) -> JSONResponse:
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


class Refused(Exception):
    """A request refused at the edge, with OpenAI's error fields."""

    def __init__(self, message: str, *, code: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.code, self.param, self.status = message, code, param, status

    def response(self) -> JSONResponse:
        return oai_error(self.status, self.message, self.code, self.param)


def _from_domain(exc: RagopsError) -> JSONResponse:
    status = status_for(exc)
    # OpenAI reports unprocessable requests as 400; keep 404/409/413/429/503 as they are.
    if status == 422:
        status = 400
    code = "model_not_found" if isinstance(exc, NotFound) else exc.code
    return oai_error(status, exc.message, code)


def check_key(rt: Runtime, request: Request) -> Principal | JSONResponse:
    """The caller, or the 401 in OpenAI's shape (`api.access` decides)."""
    try:
        return principal_of(request, rt)
    except Unauthenticated as exc:
        code = "missing_api_key" if bearer_token(request) is None else "invalid_api_key"
        return oai_error(401, exc.message, code)


_CONTENT_SCHEMAS = (
    {"type": "string"},
    {"type": "null"},
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            "required": ["type", "text"],
        },
    },
)


class ChatMessageIn(RequestModel):
    # name, tool_calls, ... are accepted and ignored.
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A string, null, or text parts: checked by `_check_content` (precise errors).
    content: Any = Field(None, json_schema_extra={"anyOf": [*_CONTENT_SCHEMAS]})

    def text(self) -> str:
        if isinstance(self.content, list):  # validated: text parts only
            return "".join(part["text"] for part in self.content)
        return self.content or ""


class StreamOptions(RequestModel):
    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None  # accepted; nothing is obfuscated


class ChatCompletionRequest(RequestModel):
    # Other OpenAI parameters (tools, response_format, ...) are accepted and ignored;
    # the sampling ones below are range-checked, then ignored unless noted.
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(..., min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)  # used
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)  # used
    temperature: float | None = Field(None, ge=0.0, le=2.0)  # used
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=1, description="One choice per request")
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=-MAX_DB_INT, le=MAX_DB_INT)
    stop: Any = Field(  # a string or up to 4 strings: `_check_stop`
        None,
        json_schema_extra={
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                {"type": "null"},
            ]
        },
    )
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # Non-standard (send with the SDK's extra_body): pick generator, prompt, depth.
    generator: str | None = Field(
        None, max_length=64, json_schema_extra=choices((*GENERATORS, None))
    )
    prompt: str | None = Field(None, max_length=160, pattern=r"^[^@]+(@[0-9]{1,9})?$")
    top_k: int | None = Field(None, ge=1, le=50)
    # OpenAI's end-user id: keeps a running A/B test's arm sticky (see retrieval.ab).
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: Any) -> Any:
        # Not a union type: its errors would name each branch ("stop.list[str]").
        many = isinstance(value, list) and len(value) <= 4
        if (
            value is None
            or isinstance(value, str)
            or (many and all(isinstance(v, str) for v in value))
        ):
            return value
        raise ValueError("expected a string or a list of up to 4 strings")


def _model_ids(session: Session, viewer: Principal) -> list[tuple[str, int]]:
    kbs = [kb for kb in list_kbs(session=session) if viewer.sees(kb.id)]
    versions = queryable_numbers(session=session)
    created = {kb.id: int(kb.created_at.timestamp()) for kb in kbs}
    out: list[tuple[str, int]] = []
    for kb in kbs:
        out.append((kb.name, created[kb.id]))
        out.extend((f"{kb.name}@{n}", created[kb.id]) for kb_id, n in versions if kb_id == kb.id)
    return out


def _model_object(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "ragops"}


def _not_found(model: str) -> Refused:
    return Refused(
        f"model {model!r} not found: models are knowledge bases (GET /v1/models)",
        code="model_not_found",
        param="model",
        status=404,
    )


@router.get("/models", responses={200: {"model": ModelObjectList}})
def list_models(request: Request, rt: RuntimeDep, session: SessionDep) -> JSONResponse:
    """Every knowledge base as a model, plus `kb@<version>` for its ready/live versions."""
    viewer = check_key(rt, request)
    if isinstance(viewer, JSONResponse):
        return viewer
    data = [_model_object(name, created) for name, created in _model_ids(session, viewer)]
    return JSONResponse({"object": "list", "data": data})


@router.get("/models/{model:model_id}", responses={200: {"model": ModelObject}})
def retrieve_model(
    model: str, request: Request, rt: RuntimeDep, session: SessionDep
) -> JSONResponse:
    """One model of `GET /v1/models` (`kb` or `kb@<version>`); 404 `model_not_found`."""
    viewer = check_key(rt, request)
    if isinstance(viewer, JSONResponse):
        return viewer
    name, version = _split_model(model)
    try:
        kb = visible_kb(rt, viewer, name)
    except NotFound:
        return _not_found(model).response()
    # Models are named by KB name, never by id; a version must be ready or live.
    if kb.name != name or (
        version is not None and (kb.id, version) not in queryable_numbers(session=session)
    ):
        return _not_found(model).response()
    return JSONResponse(_model_object(model, int(kb.created_at.timestamp())))


def _split_model(model: str) -> tuple[str, int | None]:
    name, sep, version = model.rpartition("@")
    if sep and name and version.isascii() and version.isdigit() and len(version) <= 19:
        number = int(version)
        if number <= _MAX_VERSION:
            return name, number
    return model, None


# JSON type names as OpenAI's errors use them.
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_content(i: int, content: Any) -> None:
    """Message `i`'s content: a string, null, or a list of text parts."""
    param = f"messages[{i}].content"
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise Refused(
            f"Invalid type for '{param}': expected a string or an array of content parts, "
            f"but got {_json_type(content)} instead.",
            code="invalid_type",
            param=param,
        )
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise Refused(
                f"Invalid type for '{where}': expected an object, but got "
                f"{_json_type(part)} instead.",
                code="invalid_type",
                param=where,
            )
        if part.get("type") != "text":
            raise Refused(
                f"Invalid value for '{where}.type': only text parts "
                f'({{"type": "text", "text": "..."}}) are supported, got {part.get("type")!r}.',
                code="invalid_value",
                param=f"{where}.type",
            )
        if not isinstance(part.get("text"), str):
            raise Refused(
                f"Invalid type for '{where}.text': expected a string, but got "
                f"{_json_type(part.get('text'))} instead.",
                code="invalid_type",
                param=f"{where}.text",
            )


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _refusal(exc: ValidationError) -> Refused:
    errors = exc.errors()
    first = errors[0]
    param = _param(first["loc"]) or None
    if first["type"] == "missing":
        return Refused(
            f"Missing required parameter: '{param}'.",
            code="missing_required_parameter",
            param=param,
        )
    messages = []
    for err in errors:
        where = _param(err["loc"])
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        messages.append(f"Invalid '{where}': {msg}." if where else f"{msg}.")
    return Refused(" ".join(messages), code="invalid_value", param=param)


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """The request from its body, or Refused (4xx) naming the offending parameter.
    CPU-bound on large bodies: runs in a worker thread."""
    try:
        data = load_json(raw)
    except InvalidInput as exc:
        raise Refused(exc.message, code="invalid_json") from exc
    if not isinstance(data, dict):
        raise Refused(
            f"request body must be a JSON object, not {_json_type(data)}", code="invalid_json"
        )
    messages = data.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages[: MAX_MESSAGES + 1]):
            if isinstance(message, dict):
                _check_content(i, message.get("content"))
    try:
        body = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from exc
    if body.stream_options is not None and not body.stream:
        raise Refused(
            "stream_options is only allowed when stream is true",
            code="invalid_value",
            param="stream_options",
        )
    _check_sizes(body)
    return body


def _check_sizes(body: ChatCompletionRequest) -> None:
    lengths = [len(m.text()) for m in body.messages]
    turns = [i for i, m in enumerate(body.messages) if m.role in ("user", "assistant")]
    if turns and body.messages[turns[-1]].role == "user" and lengths[turns[-1]] > MAX_QUERY_CHARS:
        param = f"messages[{turns[-1]}].content"
        raise Refused(
            f"Invalid '{param}': the question is {lengths[turns[-1]]} characters long; "
            f"at most {MAX_QUERY_CHARS} are allowed.",
            code="string_above_max_length",
            param=param,
        )
    if sum(lengths) > MAX_CHAT_CHARS:
        raise Refused(
            f"messages total {sum(lengths)} characters; at most {MAX_CHAT_CHARS} are allowed: "
            "send fewer or shorter earlier turns.",
            code="context_length_exceeded",
            param="messages",
        )


def _plan(rt: Runtime, body: ChatCompletionRequest, viewer: Principal) -> AnswerPlan:
    kb_name, version = _split_model(body.model)
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
        raise Refused(
            "messages must end with a non-empty user message: the question",
            code="invalid_value",
            param="messages",
        )
    history = [Message(m.role, m.text()) for m in turns[:-1] if m.text().strip()]
    try:
        kb = load_kb(rt, kb_name, viewer=viewer)
    except NotFound as exc:
        raise _not_found(body.model) from exc
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


def count_usage(rt: Runtime, plan: AnswerPlan, completion: str) -> dict[str, int]:
    """OpenAI's `usage` for an answered plan (see the module docstring for how each
    generator is counted)."""
    prompt, done = plan.usage.prompt_tokens, plan.usage.completion_tokens
    if prompt is None or done is None:
        counter = rt.embedder(plan.embedding_model)
        if prompt is None:
            prompt = (
                sum(counter.count_tokens(m.content) for m in plan.messages) if plan.knows else 0
            )
        if done is None:
            done = counter.count_tokens(completion)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _answer(rt: Runtime, plan: AnswerPlan) -> tuple[dict[str, Any], dict[str, int]]:
    result = run_answer(rt, plan)
    return result, count_usage(rt, plan, result["answer"])


def _completion_id(answer_id: str) -> str:
    return f"chatcmpl-{answer_id}"


@router.post(
    "/chat/completions",
    responses={
        200: {
            "model": ChatCompletion,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "The answer; with `stream: true`, `chat.completion.chunk` "
            "server-sent events ending in `data: [DONE]`",
        }
    },
)
async def chat_completions(request: Request, rt: RuntimeDep) -> Any:
    """A chat completion answered from the model's knowledge base (model = `kb` or
    `kb@version`), streamed as `chat.completion.chunk` events ending in `data: [DONE]`
    when `stream` is true."""
    viewer = await run_in_threadpool(check_key, rt, request)
    if isinstance(viewer, JSONResponse):
        return viewer
    try:
        # Only the capped read happens on the event loop; the rest runs in threads.
        raw = await read_body(request, limit=MAX_JSON_BODY_BYTES)
        body = await run_in_threadpool(parse_chat_request, raw)
        plan = await run_in_threadpool(_plan, rt, body, viewer)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(  # a sync iterator: Starlette runs it in threads
                _chunks(rt, plan, body.model, include_usage=include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        result, counts = await run_in_threadpool(_answer, rt, plan)
    except Refused as exc:
        return exc.response()
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
            "usage": counts,
            "system_fingerprint": None,
            "answer_id": result["id"],
            "citations": result["citations"],
            "index_version": result["index_version"],
            "generator": result["generator"],
            "prompt": result["prompt"],
            **ab.public_fields(result),
        }
    )


def _event(data: dict[str, Any]) -> str:
    return "data: " + json.dumps(data, ensure_ascii=False) + "\n\n"


def _chunks(rt: Runtime, plan: AnswerPlan, model: str, *, include_usage: bool) -> Iterator[str]:
    # The answer id exists only once recorded, so streamed chunks share a request id and
    # the final chunk carries `answer_id` and `citations`. With include_usage, every
    # chunk has `usage: null` and one more, with no choices, carries the counts.
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> dict[str, Any]:
        data = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return {**data, **extra}

    yield _event(chunk({"role": "assistant", "content": ""}, None))
    try:
        pieces: list[str] = []
        for kind, data in stream_answer(rt, plan):
            if kind == "token":
                pieces.append(data)
                yield _event(chunk({"content": data}, None))
                continue
            yield _event(
                chunk(
                    {},
                    "stop",
                    answer_id=data["id"],
                    citations=data["citations"],
                    index_version=data["index_version"],
                    generator=data["generator"],
                    prompt=data["prompt"],
                    **ab.public_fields(data),
                )
            )
            if include_usage:
                counts = count_usage(rt, plan, "".join(pieces).strip())
                yield _event({**chunk({}, None), "choices": [], "usage": counts})
    except RagopsError as exc:
        yield _event(json.loads(_from_domain(exc).body))
    except Exception:  # noqa: BLE001
        log.exception("chat completion stream failed")
        yield _event({"error": {"message": "internal error", "type": "server_error", "code": None}})
    yield "data: [DONE]\n\n"
