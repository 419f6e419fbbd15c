"""What every console page shares: the signed-in visitor, the role check that decides
which controls a page shows, and rendering with the console's security headers.

Tab modules (`routes`, `versions_page`, `quality_page`, ...) build their pages from
these, so each page checks the session and the KB the same way::

    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened  # the sign-in redirect or the 404 page
    return page(request, "versions.html", opened.visitor, kb=opened.kb, tab="versions")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.access import visible_kb
from api.access_policy import KbFrom, policy_for
from api.console.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    ConsoleSession,
    clear_session_cookie,
    current_session,
    session_store,
)
from api.runtime import Runtime
from core.access import Principal
from core.catalog.models import KnowledgeBase
from core.errors import NotFound, Unauthenticated

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

API_PREFIX = "/console/api/"
HOME = "/console/kbs"
SIGN_IN = "/console/sign-in"

# Pages load nothing from elsewhere and run no inline script: the policy says so to the
# browser, which then refuses injected markup's scripts and any outside request.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Visitor:
    session: ConsoleSession
    principal: Principal


@dataclass(frozen=True)
class KbVisit:
    """A signed-in visitor on the page of a KB its key may see."""

    visitor: Visitor
    kb: KnowledgeBase


def may(principal: Principal, method: str, route: str) -> bool:
    """Whether the key's role passes the access policy of a `/v1` route (a `{kb}` route:
    on a KB the key sees). Pages use it to leave out controls the key cannot use."""
    policy = policy_for(method, route)
    if policy is None or not principal.role.covers(policy.role):
        return False
    return policy.kb is not KbFrom.GLOBAL or principal.all_kbs


# Templates decide per key which controls and tabs to show (kb_tabs.html, base.html).
templates.env.globals["may"] = may


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def principal_of(request: Request, session: ConsoleSession) -> Principal | None:
    """The session's key checked again, as `/v1` checks a bearer key; None once it no
    longer works (rotated, deleted, open mode ended)."""
    try:
        return await run_in_threadpool(runtime(request).keys.authenticate, session.token)
    except Unauthenticated:
        return None


async def visitor_of(request: Request) -> Visitor | None:
    """The signed-in visitor; a session whose key no longer works is ended."""
    session = current_session(request)
    if session is None:
        return None
    principal = await principal_of(request, session)
    if principal is None:
        session_store(request.app).drop(session.id)
        return None
    return Visitor(session=session, principal=principal)


def to_sign_in(request: Request) -> RedirectResponse:
    """Back to the sign-in page, then to this page; says why when a session had ended."""
    expired = request.cookies.get(SESSION_COOKIE) is not None
    target = request.url.path
    query = f"?next={quote(target, safe='/')}" if target.startswith("/console/") else ""
    if expired:
        query += ("&" if query else "?") + "notice=expired"
    response = RedirectResponse(SIGN_IN + query, status_code=303)
    if expired:
        clear_session_cookie(response, request)
    return response


def safe_next(value: Any) -> str:
    """Only a console page of this site (no `//host`, no scheme) is a place to return to."""
    if (
        isinstance(value, str)
        and value.startswith("/console/")
        and not value.startswith(API_PREFIX)
        and "//" not in value
        and "\\" not in value
    ):
        return value
    return HOME


def page(
    request: Request,
    name: str,
    visitor: Visitor | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Renders a template with the visitor, its CSRF token and the security headers."""
    principal = visitor.principal if visitor else None
    base = {
        "principal": principal,
        "who": _who(principal) if principal else None,
        "csrf": visitor.session.csrf if visitor else None,
        "csrf_field": CSRF_FIELD,
    }
    return templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status, headers=PAGE_HEADERS
    )


def _who(principal: Principal) -> str:
    name = principal.name or principal.key_id
    scope = "every knowledge base" if principal.all_kbs else "some knowledge bases"
    return f"{name} · {principal.role.value} of {scope}"


def not_found(request: Request, visitor: Visitor, message: str) -> HTMLResponse:
    return page(request, "not_found.html", visitor, status=404, message=message)


async def open_kb(request: Request, kb: str) -> KbVisit | Response:
    """The visitor and the KB of a `/console/kbs/{kb}/...` page, or the response to send
    instead: the sign-in redirect without a working session, a 404 page for a KB that
    does not exist or that the key may not see (the same page: no existence leak)."""
    visitor = await visitor_of(request)
    if visitor is None:
        return to_sign_in(request)
    try:
        row = await run_in_threadpool(visible_kb, runtime(request), visitor.principal, kb)
    except NotFound:
        return not_found(request, visitor, f"Knowledge base {kb!r} was not found.")
    return KbVisit(visitor=visitor, kb=row)


def tab_context(visit: KbVisit, tab: str) -> dict[str, Any]:
    """What kb_tabs.html needs on every tab of a KB's pages."""
    return {
        "kb": visit.kb,
        "tab": tab,
        "can_documents": may(visit.visitor.principal, "GET", "/v1/kbs/{kb}/documents"),
    }
