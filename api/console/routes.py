"""The web console's pages and its bridge to the API (`/` and `/console/...`, outside the
OpenAPI document).

Pages are server-rendered (Jinja2) and small scripts (`static/*.js`) fill them from the
public API. The scripts never hold the key: they call `/console/api/<path>`, which
`ForwardToV1` hands to the app's own `/v1/<path>` route with the session's key as the
bearer token, so every call passes the same `authorize` dependency, access policy, error
envelope and audit log as any API client; a request that changes something must carry
the session's CSRF token in `X-CSRF-Token`. Pages check the session themselves (no
session: a redirect to the sign-in page) and show only the controls the key's role may
use (`may`, from the same policy table); the API refuses the rest anyway.

Example::

    app.include_router(console.router)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import get_route_path
from starlette.types import Receive, Scope, Send

from api import errors
from api.access import AuditNote, note
from api.console import documents_page, quality_page, settings_page, versions_page
from api.console.pages import (
    API_PREFIX,
    HERE,
    HOME,
    PAGE_HEADERS,
    SIGN_IN,
    KbVisit,
    may,
    open_kb,
    page,
    principal_of,
    runtime,
    safe_next,
    to_sign_in,
    visitor_of,
)
from api.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    clear_session_cookie,
    clear_sign_in_cookie,
    csrf_ok,
    current_session,
    session_store,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_token,
)
from core.errors import NotFound, Unauthenticated
from retrieval.generators import GENERATORS

router = APIRouter(include_in_schema=False)
router.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
router.include_router(documents_page.router)
router.include_router(versions_page.router)
router.include_router(quality_page.router)
router.include_router(settings_page.router)

SIGN_IN_NOTICES = {
    "expired": "Your session ended or your key changed; sign in again.",
    "signed_out": "You are signed out.",
}


# -- pages ---------------------------------------------------------------------------


@router.get("/")
@router.get("/console")
async def home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get("/console/sign-in")
async def sign_in_form(request: Request) -> Response:
    if await visitor_of(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    notice = SIGN_IN_NOTICES.get(request.query_params.get("notice", ""))
    return await _sign_in_page(request, notice=notice)


async def _sign_in_page(
    request: Request,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    next_page: Any = None,
) -> HTMLResponse:
    token = sign_in_token(request)
    open_mode = await run_in_threadpool(runtime(request).keys.open_mode)
    response = page(
        request,
        "sign_in.html",
        None,
        status=status,
        sign_in_csrf=token,
        open_mode=open_mode,
        notice=notice,
        error=error,
        next=safe_next(next_page or request.query_params.get("next")),
    )
    set_sign_in_cookie(response, request, token)
    return response


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request.cookies.get(SIGN_IN_COOKIE), _text(form.get(CSRF_FIELD))):
        note(request, AuditNote(action="auth.denied", denied=True, target=SIGN_IN))
        return await _sign_in_page(
            request,
            status=403,
            error="This sign-in form expired or came from another site. Sign in again here.",
            next_page=form.get("next"),
        )
    key = _text(form.get("key")).strip()
    rt = runtime(request)
    if key and not key.isascii():
        principal = None
    else:
        try:
            principal = await run_in_threadpool(rt.keys.authenticate, key or None)
        except Unauthenticated:
            principal = None
    if principal is None:
        note(request, AuditNote(action="auth.failed", denied=True, target=SIGN_IN))
        return await _sign_in_page(
            request,
            status=401,
            error="Enter an API key." if not key else "This API key is not valid.",
            next_page=form.get("next"),
        )
    store = session_store(request.app)
    store.drop(request.cookies.get(SESSION_COOKIE))
    session = store.create(key or None)
    note(request, AuditNote(action="console.sign_in", key_id=principal.key_id, target=SIGN_IN))
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    set_session_cookie(response, request, session.id)
    clear_sign_in_cookie(response, request)
    return response


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    session = current_session(request)
    if session is None:
        response = RedirectResponse(f"{SIGN_IN}?notice=signed_out", status_code=303)
        clear_session_cookie(response, request)
        return response
    form = await request.form()
    if not csrf_ok(session.csrf, _text(form.get(CSRF_FIELD))):
        note(request, AuditNote(action="auth.denied", denied=True, target="/console/sign-out"))
        return HTMLResponse(
            "Sign-out refused: the form did not carry this session's CSRF token. "
            "Reload the page and sign out again.",
            status_code=403,
            headers=PAGE_HEADERS,
        )
    principal = await principal_of(request, session)
    session_store(request.app).drop(session.id)
    note(
        request,
        AuditNote(
            action="console.sign_out",
            key_id=principal.key_id if principal else None,
            target="/console/sign-out",
        ),
    )
    response = RedirectResponse(f"{SIGN_IN}?notice=signed_out", status_code=303)
    clear_session_cookie(response, request)
    return response


@router.get("/console/kbs")
async def kbs_page(request: Request) -> Response:
    visitor = await visitor_of(request)
    if visitor is None:
        return to_sign_in(request)
    p = visitor.principal
    settings = runtime(request).settings
    return page(
        request,
        "kbs.html",
        visitor,
        can_create=may(p, "POST", "/v1/kbs"),
        can_documents=may(p, "GET", "/v1/kbs/{kb}/documents"),
        can_evals=may(p, "GET", "/v1/evals"),
        can_settings=may(p, "PATCH", "/v1/kbs/{kb}"),
        choices=settings_page.field_choices(settings),
        create_values=settings_page.create_values(settings),
    )


@router.get("/console/kbs/{kb}")
async def kb_page(request: Request, kb: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p, row = opened.visitor.principal, opened.kb
    if not may(p, "GET", "/v1/kbs/{kb}/documents"):
        # A reader may ask questions but not list documents: its page is the playground.
        return RedirectResponse(f"/console/kbs/{quote(row.name)}/playground", status_code=303)
    return page(
        request,
        "kb.html",
        opened.visitor,
        kb=row,
        tab="documents",
        can_upload=may(p, "POST", "/v1/kbs/{kb}/documents"),
        can_reprocess=may(p, "POST", "/v1/kbs/{kb}/documents/{doc_id}/reprocess"),
        can_delete=may(p, "DELETE", "/v1/kbs/{kb}/documents/{doc_id}"),
        can_erase=may(p, "POST", "/v1/kbs/{kb}/documents/{doc_id}/erase"),
        can_documents=True,
    )


@router.get("/console/kbs/{kb}/playground")
async def playground_page(request: Request, kb: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    return page(
        request,
        "playground.html",
        opened.visitor,
        kb=opened.kb,
        tab="playground",
        generators=GENERATORS,
        can_documents=may(opened.visitor.principal, "GET", "/v1/kbs/{kb}/documents"),
        can_versions=may(opened.visitor.principal, "GET", "/v1/kbs/{kb}/versions"),
    )


# -- the bridge to /v1 ---------------------------------------------------------------


@router.api_route(API_PREFIX + "{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def api_bridge(request: Request, path: str) -> Response:
    """`/console/api/<path>` → `/v1/<path>` with the session's key (see the module doc)."""
    session = current_session(request)
    if session is None:
        return errors.envelope(
            401, "unauthorized", "not signed in to the console; sign in again at " + SIGN_IN
        )
    if request.method != "GET" and not csrf_ok(session.csrf, request.headers.get(CSRF_HEADER)):
        note(request, AuditNote(action="auth.denied", denied=True, target=request.url.path))
        return errors.envelope(
            403,
            "forbidden",
            f"missing or wrong {CSRF_HEADER} header: reload the console page and try again",
        )
    return ForwardToV1(session.token)


# Scope entries an inner request keeps: the connection's, the app's, and what the app's
# middleware set up for it (error handlers, FastAPI's exit stack). The route's own
# entries (route, endpoint, path_params, FastAPI's route context) are left behind.
_KEPT = (
    "type",
    "asgi",
    "http_version",
    "server",
    "client",
    "scheme",
    "method",
    "root_path",
    "query_string",
    "extensions",
    "app",
    "app_root_path",
    "starlette.exception_handlers",
    "fastapi_middleware_astack",
)
_DROPPED_HEADERS = frozenset({b"cookie", b"authorization", CSRF_HEADER.lower().encode()})


class ForwardToV1(Response):
    """Answers with the app's own `/v1` route for this request: same method, query and
    body, the session's key as `Authorization: Bearer`, cookies dropped. The inner
    request shares the outer one's request state, so its audit note is written once, by
    the outer request's middleware, with the status the client got; its response (a
    stream too) goes straight to the client."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route_path = get_route_path(scope)
        if not route_path.startswith(API_PREFIX):
            raise NotFound("not a console API path")
        inner: dict[str, Any] = {k: scope[k] for k in _KEPT if k in scope}
        v1_path = "/v1/" + route_path[len(API_PREFIX) :]
        inner["path"] = scope["path"][: len(scope["path"]) - len(route_path)] + v1_path
        raw = scope.get("raw_path")
        if isinstance(raw, bytes) and (at := raw.find(API_PREFIX.encode())) >= 0:
            inner["raw_path"] = raw[:at] + b"/v1/" + raw[at + len(API_PREFIX) :]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _DROPPED_HEADERS]
        if self._token:
            headers.append((b"authorization", b"Bearer " + self._token.encode("ascii")))
        inner["headers"] = headers
        inner["state"] = scope.setdefault("state", {})
        await scope["app"].router(inner, receive, send)
