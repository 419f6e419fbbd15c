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

from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.access import current_principal, visible_kb
from api.limits import MAX_DB_INT
from api.runtime import Runtime, get_runtime
from core.access import Principal
from core.catalog.models import IndexVersion, KnowledgeBase
from index.versions import get_version

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.session() as session:  # commits on success, rolls back on error
        yield session


# scope="function": the code after `yield` (the commit) runs when the route returns,
# before the response is sent; the default ("request") would commit after it is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def load_kb(rt: Runtime, name_or_id: str, *, viewer: Principal) -> KnowledgeBase:
    """A knowledge base by name or id as the caller sees it (NotFound → 404, also for a
    KB the key may not see), read in a transaction of its own: for a KB named in a
    request body or a query parameter."""
    return visible_kb(rt, viewer, name_or_id)


def load_kbs(rt: Runtime, names_or_ids: Iterable[str], *, viewer: Principal) -> list[KnowledgeBase]:
    return [visible_kb(rt, viewer, name) for name in names_or_ids]


async def kb_from_path(
    request: Request, kb: Annotated[str, Path()], rt: RuntimeDep
) -> KnowledgeBase:
    # `authorize` (the /v1 router's dependency) resolved it already, with the key's view;
    # elsewhere (a test app) it is looked up here, in a thread.
    resolved = getattr(request.state, "kb", None)
    if resolved is not None:
        return resolved
    viewer = await current_principal(request, rt)
    return await run_in_threadpool(visible_kb, rt, viewer, kb)


KbDep = Annotated[KnowledgeBase, Depends(kb_from_path)]


def version_from_path(
    kb: KbDep, number: Annotated[int, Path(ge=1, le=MAX_DB_INT)], rt: RuntimeDep
) -> IndexVersion:
    with rt.db.session() as session:
        return get_version(session=session, kb=kb, number=number)


VersionDep = Annotated[IndexVersion, Depends(version_from_path)]
