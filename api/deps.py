"""Shared request dependencies as `Annotated` aliases.

`SessionDep` is the request's catalog transaction: it commits when the route returns,
before the response is sent, so a failed commit is an error response, never a 2xx for
unsaved work; an error raised in the route rolls it back and still reaches the handlers
in `api.errors`. The session connects on first use, so a route that also calls domain
functions opening their own sessions (`rt`-first) should use it only after those calls:
until then it would hold a second pooled connection, and rows it loaded earlier would not
show what those calls wrote.

`KbDep` and `VersionDep` resolve the `{kb}` (and `{number}`) path parameters in a short
transaction of their own, so resolving never holds a connection for the rest of the
request. The rows come detached with every column loaded (`expire_on_commit=False`;
relationships are not), fine to pass to any domain function. `load_kb` does the same for
a KB named in a body or a query parameter.

Example::

    @router.get("/kbs/{kb}/quality-gate")
    def get_gate(kb: KbDep, session: SessionDep) -> GatePublic:
        return GatePublic.from_row(gates.get_gate(session=session, kb=kb), kb=kb.name)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from api.limits import MAX_DB_INT
from api.runtime import Runtime
from core.catalog.models import IndexVersion, KnowledgeBase
from core.kbs import get_kb
from index.versions import get_version


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.session() as session:  # commits on success, rolls back on error
        yield session


# scope="function": the code after `yield` (the commit) runs when the route returns,
# before the response is sent; the default ("request") would commit after it is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def load_kb(rt: Runtime, name_or_id: str) -> KnowledgeBase:
    """A knowledge base by name or id (NotFound → 404), read in a transaction of its own:
    for a KB named in a request body or a query parameter."""
    return load_kbs(rt, [name_or_id])[0]


def load_kbs(rt: Runtime, names_or_ids: Iterable[str]) -> list[KnowledgeBase]:
    with rt.db.session() as session:
        return [get_kb(session=session, name_or_id=name) for name in names_or_ids]


def kb_from_path(kb: Annotated[str, Path()], rt: RuntimeDep) -> KnowledgeBase:
    return load_kb(rt, kb)


KbDep = Annotated[KnowledgeBase, Depends(kb_from_path)]


def version_from_path(
    kb: Annotated[str, Path()], number: Annotated[int, Path(ge=1, le=MAX_DB_INT)], rt: RuntimeDep
) -> IndexVersion:
    with rt.db.session() as session:
        row = get_kb(session=session, name_or_id=kb)
        return get_version(session=session, kb=row, number=number)


VersionDep = Annotated[IndexVersion, Depends(version_from_path)]


def require_key(request: Request, rt: RuntimeDep) -> None:
    """When RAGOPS_ADMIN_KEY is set, every /v1 route needs `Authorization: Bearer <key>`."""
    expected = rt.settings.admin_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
