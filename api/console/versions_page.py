"""The console's Versions tab (`/console/kbs/{kb}/versions`): a KB's index versions with
their status, build progress and differences from live; building a new one; promotion
through the KB's quality gate with the gate's checks; rollback; the decision trail.

The page is a shell that `static/versions.js` fills from the public API (versions,
decisions, promote, rollback) through the console bridge. The gate is read here, with
the function `GET /v1/kbs/{kb}/quality-gate` uses, so a KB without one shows "no gate"
instead of the browser logging that route's 404. Controls appear only for keys whose
role may use the `/v1` route behind them (`may`); a key that may not list versions (a
reader) is sent to the playground, as the documents page does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.console.pages import KbVisit, may, open_kb, page, runtime
from api.gate_schemas import GatePublic
from core.catalog.models import KnowledgeBase
from eval import gates
from index.faiss_index import INDEX_TYPES
from index.versions import BACKENDS, qdrant_engine
from ingest.embed import PACKAGED_MODELS

router = APIRouter(include_in_schema=False)

LIST_ROUTE = "/v1/kbs/{kb}/versions"


@router.get("/console/kbs/{kb}/versions")
async def versions_page(request: Request, kb: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p, row = opened.visitor.principal, opened.kb
    if not may(p, "GET", LIST_ROUTE):
        return RedirectResponse(f"/console/kbs/{quote(row.name)}/playground", status_code=303)
    can_gate = may(p, "GET", "/v1/kbs/{kb}/quality-gate")
    gate = await run_in_threadpool(_gate, request, row) if can_gate else None
    settings = runtime(request).settings
    config: dict[str, Any] = row.config or {}
    return page(
        request,
        "versions.html",
        opened.visitor,
        kb=row,
        tab="versions",
        can_documents=may(p, "GET", "/v1/kbs/{kb}/documents"),
        can_build=may(p, "POST", LIST_ROUTE),
        can_promote=may(p, "POST", "/v1/kbs/{kb}/versions/{number}/promote"),
        can_rollback=may(p, "POST", "/v1/kbs/{kb}/rollback"),
        can_decisions=may(p, "GET", "/v1/kbs/{kb}/decisions"),
        can_decision=may(p, "GET", "/v1/decisions/{decision_id}"),
        can_gate=can_gate,
        gate=gate,
        actor=p.name or p.key_id,
        models=sorted({m for m in PACKAGED_MODELS if "/" not in m}),
        current_model=config.get("embedding_model") or settings.embedding_model,
        chunking=config.get("chunking") or {},
        backends=BACKENDS,
        default_backend=settings.index_backend,
        index_types=INDEX_TYPES,
        default_index_type=settings.faiss_index_type,
        qdrant_engine=qdrant_engine(settings),
    )


def _gate(request: Request, kb: KnowledgeBase) -> dict[str, Any] | None:
    """The KB's gate as `GET /v1/kbs/{kb}/quality-gate` answers it, or None."""
    with runtime(request).db.session() as session:
        row = gates.get_gate(session=session, kb=kb)
        if row is None:
            return None
        return GatePublic.from_row(row, kb=kb.name).model_dump(mode="json")
