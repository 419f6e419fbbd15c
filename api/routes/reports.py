"""GET /v1/evals/{run_id}/report: a reviewer's report of an eval run as HTML, JSON or CSV.

The HTML is one self-contained page (inline plots and CSS, no scripts); CSV comes as an
attachment. See `eval.report` for how the baseline is chosen and which runs can be
reported (409 for a run that has not succeeded, 422 for runs of different test sets).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.access import PrincipalDep
from api.deps import RuntimeDep
from api.routes.evals import hide_unless_visible
from api.schemas import choices
from eval.report import FORMATS, MEDIA_TYPES, check_format, load_report
from eval.report_html import render_html

router = APIRouter(tags=["evaluation"])


def render(report_format: str, run_id: str, rt: RuntimeDep, compare: str | None) -> Response:
    report = load_report(rt, run_id, compare=compare)
    headers: dict[str, str] = {}
    if report_format == "html":
        body = render_html(report)
    elif report_format == "json":
        body = json.dumps(report.to_dict(), ensure_ascii=False)
    else:
        body = report.to_csv()
        headers["Content-Disposition"] = f'attachment; filename="eval-report-{report.run.id}.csv"'
    return Response(body, media_type=MEDIA_TYPES[report_format], headers=headers)


@router.get(
    "/evals/{run_id}/report",
    response_class=Response,
    responses={
        200: {
            "content": {"text/html": {}, "application/json": {}, "text/csv": {}},
            "description": "The report in the requested format",
        }
    },
)
def eval_report(
    run_id: str,
    rt: RuntimeDep,
    viewer: PrincipalDep,
    report_format: Annotated[
        str,
        Query(
            alias="format",
            description="html (default), json or csv",
            json_schema_extra=choices(FORMATS),
        ),
    ] = "html",
    compare: Annotated[
        str | None,
        Query(
            description="Baseline run id; default: the latest earlier succeeded run of the "
            "same KB and test set version with a different key"
        ),
    ] = None,
) -> Response:
    """The report of run A (`run_id`) against a baseline run B: aggregates with deltas,
    questions worst regression first, history and distribution plots, and both runs'
    answers and contexts side by side.

    Example: GET /v1/evals/3f2a…/report?format=csv&compare=9b1c…
    """
    for role, run in (("eval run", run_id), ("compare run", compare)):
        if run:
            hide_unless_visible(rt, run, viewer, role=role)
    return render(check_format(report_format), run_id, rt, compare or None)
