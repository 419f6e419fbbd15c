"""One place that turns errors into `{"error": {"code", "message", "request_id"}}`
responses (`Error`, the schema every ragops error response has in the OpenAPI document).

`request_id` is the id of the request (`X-Request-ID`, see `api.middleware`), also on
every log line about it: quote it when reporting a problem. An error nothing maps (a bug,
a dependency failing in an unforeseen way) is logged once, with its traceback, and
answered 500 `internal_error`; `api.middleware` catches it before Starlette's
ServerErrorMiddleware, which would re-raise it to the server to be logged a second time
and drop the connection.

A 405 lists in `Allow` every method some route serves on the path (Starlette's own names
only the first route whose path matches).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from api.route_labels import route_contexts
from core import errors
from core.logs import current_request_id

log = logging.getLogger(__name__)

STATUS = [  # most specific first
    (errors.EmptyFile, 400),
    (errors.TooLarge, 413),
    (errors.UnsupportedType, 415),
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.Duplicate, 409),
    (errors.Conflict, 409),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.Overloaded, 429),
    (errors.Unavailable, 503),
    (errors.StageFailed, 422),
]

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "overloaded",
    503: "unavailable",
}


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable, e.g. `not_found`, `invalid_input`")
    message: str = Field(description="What happened and what to do next")
    request_id: str | None = Field(
        None, description="The request's X-Request-ID: quote it when reporting a problem"
    )
    details: dict[str, Any] | None = Field(
        None, description="Structured evidence, for some codes (e.g. a refused promotion)"
    )


class Error(BaseModel):
    """Every error response of the ragops API."""

    error: ErrorBody


def envelope(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict | None = None,
) -> JSONResponse:
    error: dict = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    request_id = current_request_id()
    if request_id is not None:
        error["request_id"] = request_id
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def status_for(exc: errors.RagopsError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.RagopsError)
    async def _domain(_: Request, exc: errors.RagopsError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if isinstance(exc, errors.Unauthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        return envelope(
            status_for(exc),
            exc.code,
            exc.message,
            headers=headers or None,
            details=getattr(exc, "details", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(e) for e in exc.errors()) or "invalid request"
        return envelope(422, "invalid_input", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        headers = dict(getattr(exc, "headers", None) or {})
        message = str(exc.detail)
        if exc.status_code == 405 and (allowed := allowed_methods(request.scope)):
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        return envelope(exc.status_code, code, message, headers=headers or None)

    # Only reached in an app without `api.middleware.RequestContext` (which answers
    # unhandled errors itself): Starlette then re-raises to the server after this.
    @app.exception_handler(Exception)
    async def _unknown(_: Request, exc: Exception) -> JSONResponse:
        return unhandled(exc)


def allowed_methods(scope: Scope) -> list[str]:
    """Every method a route of the app serves on the request's path, sorted."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    methods: set[str] = set()
    for context in route_contexts(scope["app"]):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(context, "methods", None) or ())
    return sorted(methods)


def unhandled(exc: BaseException) -> JSONResponse:
    """Log an unmapped error once, with its traceback, and answer a bare 500."""
    log.error("unhandled error: %s: %s", exc.__class__.__name__, exc, exc_info=exc)
    return envelope(500, "internal_error", "internal server error")
