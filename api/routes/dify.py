"""Dify External Knowledge API: register this service in Dify as an external knowledge
base (endpoint = this server's base URL, API key = RAGOPS_ADMIN_KEY, knowledge ID = a KB
name) and Dify calls `POST /retrieval`.

Scores are the dense similarity on one scale across models (`retrieval.calibration`:
the cosine for MiniLM, a calibrated cosine for e5), which is what Dify's
`score_threshold` means. Errors use Dify's shape `{"error_code", "error_msg"}`:
1001 malformed Authorization header, 1002 wrong key (both HTTP 403), 2001 unknown
knowledge base (404); a malformed body, including a metadata condition with an operator
outside Dify's set or nesting deeper than MAX_JSON_DEPTH, is HTTP 400 with error_code 400;
a body over MAX_JSON_BODY_BYTES is 413 (error_code 413), refused before it is parsed.

`metadata_condition` takes Dify's whole set (and/or, every operator, null meaning no
filter; semantics in `retrieval.metadata_conditions`) over each chunk's index payload:
the upload's metadata, filename, document_id, page_number, section, language. What the
index means identically (an "and" of is/in on plain strings) is pre-filtered there; the
rest is a predicate over a growing candidate pool (`retrieval.search.retrieve`'s `where`).

Example::

    POST /retrieval  {"knowledge_id": "handbook", "query": "...",
                      "retrieval_setting": {"top_k": 3, "score_threshold": 0.5}}
    → {"records": [{"content", "score", "title", "metadata"}]}
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.access import principal_of
from api.deps import RuntimeDep, load_kb
from api.facade_schemas import DifyRetrievalResponse
from api.limits import MAX_JSON_BODY_BYTES, MAX_QUERY_CHARS, load_json, read_body
from api.runtime import Runtime
from api.schemas import RequestModel
from core.access import Principal
from core.errors import InvalidInput, NotFound, TooLarge, Unauthenticated
from retrieval.metadata_conditions import (
    ALIASES,
    OPERATORS,
    parse_metadata_condition,
    split_for_index,
)
from retrieval.search import retrieve

router = APIRouter(tags=["dify"])

INVALID_AUTH_FORMAT = 1001
AUTH_FAILED = 1002
KNOWLEDGE_NOT_FOUND = 2001


def dify_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "error_msg": message}, status_code=status)


# Strict, like every request body (api.schemas.RequestModel), but fields Dify may add are
# ignored.
class RetrievalSetting(RequestModel):
    model_config = ConfigDict(extra="ignore")

    top_k: int = Field(..., ge=1, le=100)
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


# What `parse_metadata_condition` accepts (it refuses the rest with a 400 saying why).
_NAME_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ]
}
_SCALAR = [{"type": t} for t in ("string", "number", "boolean", "null")]
_VALUE_SCHEMA = {"anyOf": [*_SCALAR, {"type": "array", "items": {"anyOf": _SCALAR}}]}


class Condition(BaseModel):
    name: str | list[str] = Field(json_schema_extra=_NAME_SCHEMA)
    comparison_operator: str = Field(json_schema_extra={"enum": [*OPERATORS, *ALIASES]})
    value: Any = Field(None, json_schema_extra=_VALUE_SCHEMA)


class MetadataCondition(RequestModel):
    model_config = ConfigDict(extra="ignore")
    # Dify's model: both optional; a null logical_operator is "and", null conditions
    # filter nothing.
    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[Condition] | None = None


class DifyRetrievalRequest(RequestModel):
    model_config = ConfigDict(extra="ignore")

    knowledge_id: str = Field(..., min_length=1)
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    retrieval_setting: RetrievalSetting
    metadata_condition: MetadataCondition | None = None


def _search(rt: Runtime, body: DifyRetrievalRequest, viewer: Principal) -> list[dict[str, Any]]:
    condition = body.metadata_condition
    filters, where = split_for_index(
        parse_metadata_condition(condition.model_dump() if condition else None)
    )
    kb = load_kb(rt, body.knowledge_id, viewer=viewer)
    setting = body.retrieval_setting
    result = retrieve(
        rt,
        kb=kb,
        query=body.query,
        top_k=setting.top_k,
        filters=filters,
        score_threshold=setting.score_threshold or None,
        mode="dense",
        where=where,
    )
    records = []
    for hit in result.results:
        meta = {k: v for k, v in (hit.metadata or {}).items() if v is not None}
        meta.update(document_id=hit.document_id, chunk_id=hit.chunk_id, filename=hit.filename)
        meta["index_version"] = result.index_version
        records.append(
            {
                "content": hit.text,
                "score": min(1.0, max(0.0, float(hit.score))),
                "title": hit.filename,
                "metadata": meta,
            }
        )
    return records


def _parse(raw: bytes) -> DifyRetrievalRequest:
    """The request from its body (api.limits' size and depth limits); InvalidInput → 400."""
    try:
        return DifyRetrievalRequest.model_validate(load_json(raw))
    except ValidationError as exc:
        raise InvalidInput(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from exc


@router.post("/retrieval", responses={200: {"model": DifyRetrievalResponse}})
async def dify_retrieval(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Dify External Knowledge API retrieval."""
    try:
        viewer = await run_in_threadpool(principal_of, request, rt)
    except Unauthenticated:
        # Dify's spec answers auth problems with 403 and codes 1001/1002.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            return dify_error(
                403,
                INVALID_AUTH_FORMAT,
                "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
            )
        return dify_error(403, AUTH_FAILED, "Authorization failed")
    try:
        # The capped read on the event loop, parsing (depth-checked) in a thread.
        raw = await read_body(request, limit=MAX_JSON_BODY_BYTES)
        body = await run_in_threadpool(_parse, raw)
    except TooLarge as exc:
        return dify_error(413, 413, exc.message)
    except InvalidInput as exc:
        return dify_error(400, 400, exc.message)
    try:
        records = await run_in_threadpool(_search, rt, body, viewer)
    except NotFound:
        return dify_error(
            404, KNOWLEDGE_NOT_FOUND, f"The knowledge {body.knowledge_id!r} does not exist"
        )
    except InvalidInput as exc:
        return dify_error(400, 400, exc.message)
    return JSONResponse({"records": records})
