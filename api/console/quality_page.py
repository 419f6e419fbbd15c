"""The console's quality pages: a KB's eval runs with their scores, the comparison of two
runs, starting a run, test sets, schedules and A/B tests (`/console/kbs/{kb}/quality`);
one run's HTML report, embedded (`.../quality/runs/{run_id}`); and the model registry
(`/console/models`).

The pages are shells that `static/quality.js` and `static/models.js` fill from the
public API through the console bridge. The run page checks on the server, with the same
domain functions as `GET /v1/evals/{id}/report`, that the report can be rendered (the
run succeeded; a `compare` run scored the same test set version), so the frame only
ever loads a report that exists; otherwise the page says why instead.

`may` is also a template global, so `base.html` and `kb_tabs.html` show the "Models" link
and the "Quality" tab only to keys whose role may use them, on every page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.console.pages import (
    PAGE_HEADERS,
    KbVisit,
    may,
    not_found,
    open_kb,
    page,
    runtime,
    tab_context,
    to_sign_in,
    visitor_of,
)
from api.runtime import Runtime
from core.catalog.models import EvalRun
from core.errors import Conflict, InvalidInput, NotFound
from eval import registry, runs
from eval.metrics import OFFLINE_METRICS
from eval.report import check_comparable, check_reportable
from retrieval.generators import GENERATORS
from retrieval.search import MODES

router = APIRouter(include_in_schema=False)

# The run page frames its own report (`/console/api/evals/{id}/report`, same origin);
# every other console page keeps framing off.
REPORT_PAGE_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"] + "; frame-src 'self'",
}


@router.get("/console/kbs/{kb}/quality")
async def quality_page(request: Request, kb: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p = opened.visitor.principal
    common = tab_context(opened, "quality")
    if not may(p, "GET", "/v1/evals"):
        return page(request, "quality_denied.html", opened.visitor, status=403, **common)
    return page(
        request,
        "quality.html",
        opened.visitor,
        **common,
        can_start=may(p, "POST", "/v1/evals"),
        can_versions=may(p, "GET", "/v1/kbs/{kb}/versions"),
        can_run_schedule=may(p, "POST", "/v1/schedules/{name}/run"),
        can_stop_ab=may(p, "POST", "/v1/kbs/{kb}/ab-tests/{name}/stop"),
        generators=GENERATORS,
        default_generator=runtime(request).settings.answer_generator,
        default_top_k=runtime(request).settings.answer_top_k,
        modes=MODES,
        metrics=OFFLINE_METRICS,
    )


@router.get("/console/kbs/{kb}/quality/runs/{run_id}")
async def run_page(request: Request, kb: str, run_id: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p = opened.visitor.principal
    common = tab_context(opened, "quality")
    if not may(p, "GET", "/v1/evals/{run_id}/report"):
        return page(request, "quality_denied.html", opened.visitor, status=403, **common)
    rt = runtime(request)
    run = await run_in_threadpool(_run_of_kb, rt, run_id, opened.kb.id)
    if run is None:
        return not_found(
            request, opened.visitor, f"Eval run {run_id!r} of {opened.kb.name!r} was not found."
        )
    compare_id = request.query_params.get("compare") or None
    baseline = None
    if compare_id:
        baseline = await run_in_threadpool(_run_of_kb, rt, compare_id, opened.kb.id)
        if baseline is None:
            return not_found(
                request,
                opened.visitor,
                f"Eval run {compare_id!r} of {opened.kb.name!r} (to compare with) was not found.",
            )
    problem = _report_problem(run, baseline)
    response = page(
        request,
        "quality_run.html",
        opened.visitor,
        **common,
        run=run,
        baseline=baseline,
        problem=problem,
    )
    response.headers.update(REPORT_PAGE_HEADERS)
    return response


def _run_of_kb(rt: Runtime, run_id: str, kb_id: str) -> EvalRun | None:
    """The run, if it is one of this KB's (another KB's run is "not found" here)."""
    try:
        run = runs.get_run(rt, run_id)
    except NotFound:
        return None
    return run if run.kb_id == kb_id else None


def _report_problem(run: EvalRun, baseline: EvalRun | None) -> str | None:
    """Why `GET /v1/evals/{id}/report` would refuse this pair, in its own words."""
    try:
        check_reportable(run)
        if baseline is not None:
            check_comparable(run, baseline)
            check_reportable(baseline, "compare run")
    except (Conflict, InvalidInput) as exc:
        return str(exc)
    return None


@router.get("/console/models")
async def models_page(request: Request) -> Response:
    visitor = await visitor_of(request)
    if visitor is None:
        return to_sign_in(request)
    p = visitor.principal
    if not may(p, "GET", "/v1/models/registry"):
        return page(request, "quality_denied.html", visitor, status=403, active="models")
    return page(
        request,
        "models.html",
        visitor,
        active="models",
        can_stage=may(p, "POST", "/v1/models/registry/{kind}/{name}/stage"),
        kinds=registry.KINDS,
        stages=registry.STAGES,
        transitions=registry.TRANSITIONS,
    )
