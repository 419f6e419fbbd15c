"""Authentication and authorisation for every route, from one table (`api.access_policy`).

`authorize` is the dependency of the whole `/v1` router; the façades call `principal_of`
and `visible_kb` themselves, to answer in their own error shapes. Per request it

1. turns the bearer token into a `Principal` (`core.access.KeyRing`; 401 if unknown);
2. finds the route's policy (none: 403 for every key, fail closed);
3. for a `{kb}` route, resolves the KB with the key's view: a KB it may not see is 404,
   before the role is checked, so a key cannot learn what exists;
4. checks the role (403 with the role needed) and, for deployment-wide routes, that the
   key covers every KB;
5. notes what the audit log should record (`AuditNote`); `api.middleware` writes it once
   the response status is known, for every write and every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.access_policy import KbFrom, policy_for
from api.route_labels import route_label
from api.runtime import Runtime, get_runtime
from core.access import Principal
from core.catalog.models import KnowledgeBase
from core.errors import Forbidden, NotFound, RagopsError, Unauthenticated
from core.kbs import get_kb


@dataclass
class AuditNote:
    """What the audit log records about this request once it is answered."""

    action: str
    key_id: str | None = None
    kb_id: str | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    denied: bool = False


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def principal_of(request: Request, rt: Runtime) -> Principal:
    """The caller (cached on the request); Unauthenticated for a missing or wrong key.
    A malformed Authorization header counts as missing."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    token = bearer_token(request)
    try:
        if header and token is None:
            raise Unauthenticated("malformed Authorization header: send 'Bearer <key>'")
        principal = rt.keys.authenticate(token)
    except Unauthenticated:
        note(request, AuditNote(action="auth.failed", denied=True))
        raise
    request.state.principal = principal
    return principal


def note(request: Request, audit: AuditNote) -> None:
    request.state.audit = audit


def note_detail(
    request: Request, *, target: str | None = None, kb_id: str | None = None, **detail: Any
) -> None:
    """Add what a write did (ids, names, counts; never document text) to its audit note."""
    audit = getattr(request.state, "audit", None)
    if audit is None:
        return
    if target is not None:
        audit.target = target
    if kb_id is not None:
        audit.kb_id = kb_id
    audit.detail.update(detail)


def visible_kb(rt: Runtime, principal: Principal, name_or_id: str) -> KnowledgeBase:
    """A KB by name or id as this key sees it: one it may not see is NotFound, with the
    same message as one that does not exist."""
    with rt.db.session() as session:
        kb = get_kb(session=session, name_or_id=name_or_id)
    if not principal.sees(kb.id):
        raise NotFound(f"knowledge base {name_or_id!r} not found; create it with POST /v1/kbs")
    return kb


def check_visible(principal: Principal, kb_id: str | None, message: str) -> None:
    """For a resource found by id: NotFound unless its KB is visible to the key. Pass
    the message the route gives for an id that does not exist, so the two read alike."""
    if not principal.sees(kb_id):
        raise NotFound(message)


async def authorize(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    # async: the common case (a cached key, the KB's row) costs no thread hop; what needs
    # the catalog runs in the thread pool, never on the event loop.
    principal = getattr(request.state, "principal", None)
    if principal is None:
        token = bearer_token(request)
        malformed = token is None and bool(request.headers.get("authorization"))
        known = None if malformed else rt.keys.cached(token)
        if known is not None:
            request.state.principal = principal = known
        else:
            principal = await run_in_threadpool(principal_of, request, rt)
    route = route_label(request.scope)
    policy = policy_for(request.method, route)
    audit = AuditNote(
        action=policy.action if policy and policy.action else "auth.denied",
        key_id=principal.key_id,
        target=request.url.path,
    )
    try:
        if policy is None:
            raise Forbidden(f"{request.method} {route} has no access policy; no key may use it")
        if policy.kb is KbFrom.PATH:
            kb = await run_in_threadpool(visible_kb, rt, principal, request.path_params["kb"])
            request.state.kb = kb
            audit.kb_id = kb.id
        principal.require(policy.role, action=f"{request.method} {route}")
        if policy.kb is KbFrom.GLOBAL:
            principal.require_all_kbs(action=f"{request.method} {route}")
    except RagopsError:
        audit.action, audit.denied = "auth.denied", True
        note(request, audit)
        raise
    if policy.action:
        note(request, audit)
    return principal


async def current_principal(
    request: Request, rt: Annotated[Runtime, Depends(get_runtime)]
) -> Principal:
    """The caller, for a route to filter or check what it shows (`authorize`, the
    router's dependency, has applied the route's policy and cached the caller before
    this runs)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    return await run_in_threadpool(principal_of, request, rt)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
