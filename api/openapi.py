"""The OpenAPI document as the service's contract: FastAPI's document, completed with what
its route decorators cannot say on their own.

- **Errors**: every operation lists the statuses it can answer besides its success,
  each with the body it really has: ragops' `Error` (`api.errors`), OpenAI's shape on
  the OpenAI-compatible routes, Dify's on `/retrieval`. FastAPI's `{"detail": [...]}`
  422 is replaced, since `api.errors` answers validation errors in the same envelope.
  Which statuses: `COMMON` for every route of a family, 404 for a path naming something
  (`{kb}`, `{run_id}`, ...) or a body naming a KB or test set (`NAMES_IN_BODY`), 400
  and 422 for a request with a body or parameters, and `ROUTE_ERRORS` for what one
  route's domain code raises (409 conflicts, 413/415 uploads, ...).
- **Auth**: a bearer `securitySchemes` entry, required on /v1 and the façades (once
  an API key or RAGOPS_ADMIN_KEY exists), optional on /metrics (a key adds per-KB
  gauges); 403 on every /v1 route (a role that does not cover it).
- **Bodies the routes read themselves** (the façades parse theirs off the event loop
  with the limits of `api.limits`; test sets come as JSON or multipart): declared from
  the models that validate them (`REQUEST_BODIES`).

Example::

    app = FastAPI()
    errors.install(app)
    openapi.install(app)  # app.openapi() now returns the completed document
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.errors import Error
from api.eval_schemas import TestSetCreate, TestSetUpload
from api.facade_schemas import DifyError, OpenAIError
from api.routes.dify import DifyRetrievalRequest
from api.routes.openai_compat import ChatCompletionRequest
from api.schemas import Health, Readiness

SCHEME = "bearerAuth"
REF = "#/components/schemas/{model}"

DESCRIPTIONS = {
    400: "Malformed request: a body that cannot be parsed, or an empty file",
    401: "Missing or unknown API key (`Authorization: Bearer <key>`)",
    403: "The key's role does not cover this operation (the message names the role "
    "needed); on Dify's route: a malformed Authorization header or a wrong key (1001, 1002)",
    404: "Not found: a knowledge base, version, document, run or other name or id in the "
    "request does not exist",
    409: "Conflicts with the current state (see the message)",
    413: "Too large: the request, a file or an archive is over a limit",
    415: "Unsupported media type: a file of a type the service cannot parse",
    422: "Invalid input: the message names each offending field",
    429: "Too many requests (rate limit per key, or a full ingestion queue); retry after "
    "`Retry-After` seconds",
    503: "Unavailable: warming up, over capacity, timed out, or a dependency is down; "
    "retry after `Retry-After` seconds",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"schema": {"type": "string", "example": "Bearer"}}}
HEADERS = {401: WWW_AUTHENTICATE, 429: RETRY_AFTER, 503: RETRY_AFTER}

# Families of operations, by tag: each has its error body and the statuses any of its
# operations can answer (auth, overload: `api.overload` refuses with 429/503 in the
# family's shape; a model still loading is a 503 too).
OPENAI, DIFY = "openai-compatible", "dify"
UNLIMITED = frozenset({"health", "metrics"})
COMMON: dict[str, tuple[int, ...]] = {
    "ragops": (401, 403, 429, 503),
    OPENAI: (401, 429, 503),
    DIFY: (403, 429, 503),
}

# Operations whose body or query names a knowledge base, test set or run: 404 when it
# does not exist. (A name in the path is always a possible 404.)
NAMES_IN_BODY = frozenset(
    {
        ("post", "/v1/retrieve"),
        ("post", "/v1/evals"),
        ("get", "/v1/evals"),
        ("post", "/v1/testsets/generate"),
        ("post", "/v1/schedules"),
        ("post", "/v1/chat/completions"),
        ("post", "/retrieval"),
        ("post", "/v1/keys"),
        ("get", "/v1/audit"),
        ("post", "/v1/models/finetune"),  # the KB and the base model
    }
)

# What one operation's own code can answer beyond the common statuses, from the domain
# errors it raises (core.errors → api.errors.STATUS).
ROUTE_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/v1/kbs"): (409,),  # the name is taken
    ("patch", "/v1/kbs/{kb}"): (409,),  # settings that need a new index version
    ("post", "/v1/kbs/{kb}/documents"): (400, 413, 415),  # empty, too large, unparseable
    ("post", "/v1/kbs/{kb}/documents/{doc_id}/reprocess"): (409,),
    ("post", "/v1/kbs/{kb}/retrieve"): (409,),  # a pinned version that is not ready
    ("post", "/v1/retrieve"): (409,),
    ("post", "/v1/kbs/{kb}/answer"): (409,),
    ("post", "/v1/kbs/{kb}/versions"): (409,),
    ("post", "/v1/kbs/{kb}/versions/{number}/promote"): (409,),  # gate refused, not ready
    ("post", "/v1/kbs/{kb}/rollback"): (409,),  # nothing to roll back to
    ("delete", "/v1/kbs/{kb}/versions/{number}"): (409,),  # the live version
    ("post", "/v1/kbs/{kb}/ab-tests"): (409,),  # another test runs, name taken
    ("post", "/v1/kbs/{kb}/ab-tests/{name}/stop"): (409,),
    ("post", "/v1/kbs/{kb}/ab-tests/{name}/evaluate"): (409,),
    ("post", "/v1/testsets/generate"): (409,),  # no LLM judge configured
    ("post", "/v1/testsets/{name}/from-feedback"): (409,),  # no corrected answers
    ("post", "/v1/evals"): (409,),  # LLM metrics without a judge
    ("get", "/v1/evals/{run_id}/report"): (409,),  # the run has not succeeded
    ("post", "/v1/models/registry"): (409,),  # already registered
    ("post", "/v1/models/registry/{kind}/{name}/stage"): (409,),  # a move not allowed
    ("delete", "/v1/models/registry/{kind}/{name}"): (409,),  # in use
    ("post", "/v1/schedules"): (409,),  # the name is taken
    ("post", "/v1/keys"): (409,),  # the name is taken
    ("post", "/v1/chat/completions"): (400, 409, 413),
    ("post", "/retrieval"): (400, 409, 413),
    ("post", "/v1/models/finetune"): (409,),  # name taken, a run of the KB in progress
    ("post", "/v1/models/finetune/{job_id}/cancel"): (409,),  # already ended
    ("post", "/v1/kbs/{kb}/versions/{number}/snapshots"): (409,),  # FAISS, building, purged
    ("post", "/v1/kbs/{kb}/versions/restore"): (409,),
}

# Bodies read by the route itself, by content type.
REQUEST_BODIES: dict[tuple[str, str], dict[str, type[BaseModel]]] = {
    ("post", "/v1/chat/completions"): {"application/json": ChatCompletionRequest},
    ("post", "/retrieval"): {"application/json": DifyRetrievalRequest},
    ("post", "/v1/testsets"): {
        "application/json": TestSetCreate,
        "multipart/form-data": TestSetUpload,
    },
}


# The probes build their JSON themselves.
PROBES: dict[tuple[str, str], dict[int, tuple[type[BaseModel], str]]] = {
    ("get", "/healthz"): {200: (Health, "The process is up")},
    ("get", "/readyz"): {
        200: (Readiness, "Ready: every check passed"),
        503: (Readiness, "Not ready: warming up, warm-up failed, or a check failed"),
    },
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    done: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "schema" not in done:
            done["schema"] = complete(build())
        return done["schema"]

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with error responses, auth and the self-read request
    bodies added, in place."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    body_models = {m for bodies in REQUEST_BODIES.values() for m in bodies.values()}
    probe_models = {m for responses in PROBES.values() for m, _ in responses.values()}
    schemas.update(_model_schemas([Error, OpenAIError, DifyError, *body_models, *probe_models]))
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (POST /v1/keys) or the bootstrap RAGOPS_ADMIN_KEY; "
            "required on /v1 and the façades once either exists",
        }
    }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            _complete_operation(method, path, op)
    # FastAPI's 422 body, now replaced everywhere.
    for name in ("HTTPValidationError", "ValidationError"):
        others = [schema["paths"], *(v for k, v in schemas.items() if k != name)]
        if REF.format(model=name) not in set(_refs(others)):
            schemas.pop(name, None)
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _family(path: str, op: dict[str, Any]) -> str | None:
    tags = set(op.get("tags", ()))
    if tags & UNLIMITED:
        return None
    if OPENAI in tags:
        return OPENAI
    if DIFY in tags:
        return DIFY
    return "ragops" if path.startswith("/v1/") else None


def _complete_operation(method: str, path: str, op: dict[str, Any]) -> None:
    key = (method, path)
    if key in REQUEST_BODIES:
        op["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"$ref": REF.format(model=model.__name__)}}
                for media, model in REQUEST_BODIES[key].items()
            },
        }
    for status, (model, description) in PROBES.get(key, {}).items():
        op["responses"][str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
        }
        if status == 503:
            op["responses"][str(status)]["headers"] = RETRY_AFTER
    family = _family(path, op)
    if path == "/metrics":  # a key is optional (it adds per-KB gauges); a wrong one is 401
        op["security"] = [{}, {SCHEME: []}]
        op["responses"]["401"] = _error_response("ragops", 401)
        return
    if family is None:
        return
    op["security"] = [{SCHEME: []}]
    statuses = set(COMMON[family]) | set(ROUTE_ERRORS.get(key, ()))
    has_input = "requestBody" in op or bool(op.get("parameters"))
    if "{" in path or key in NAMES_IN_BODY:
        statuses.add(404)
    if family == "ragops" and has_input:
        statuses.add(422)
    if "requestBody" in op and family == "ragops":
        statuses.add(400)  # a body FastAPI cannot parse (not UTF-8, ...)
    if family != "ragops":
        op["responses"].pop("422", None)  # the façades answer 400 in their own shape
    for status in sorted(statuses):
        op["responses"][str(status)] = _error_response(family, status)


def _error_response(family: str, status: int) -> dict[str, Any]:
    own = {OPENAI: "OpenAIError", DIFY: "DifyError"}.get(family, "Error")
    schema: dict[str, Any] = {"$ref": REF.format(model=own)}
    # Dify's route lets domain errors (a conflict, a model still loading) reach the
    # ragops handler; its own refusals and the overload guard's use Dify's shape.
    if family == DIFY and status in (409, 503):
        schema = {"$ref": REF.format(model="Error")} if status == 409 else _any_of(own, "Error")
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _any_of(*names: str) -> dict[str, Any]:
    return {"anyOf": [{"$ref": REF.format(model=name)} for name in names]}


def _model_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    return top.get("$defs", {})
