"""`ragops report`: the reviewer's report of an eval run, as the API serves it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.helpers import console, fail, runtime
from core.errors import InvalidInput
from eval.report import FORMATS, load_report
from eval.report_html import render_html


def report(
    run_id: Annotated[str, typer.Argument(help="Eval run to report (A)")],
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Baseline run (B); default: the latest earlier succeeded run of the same "
            "KB and test set version with a different key",
        ),
    ] = None,
    report_format: Annotated[str, typer.Option("--format", help="html, json or csv")] = "html",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            help="File to write ('-': stdout). Default: eval-report-RUN_ID.html for html, "
            "stdout for json and csv",
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML (or JSON, or CSV) report comparing two eval runs:
    aggregates with deltas, questions worst regression first, plots, and both runs'
    answers and contexts side by side. Only succeeded runs can be reported.

    Example: ragops report 3f2a… --compare 9b1c… --out review.html
    """
    if report_format not in FORMATS:
        raise typer.BadParameter(
            f"use one of {', '.join(FORMATS)}, got {report_format!r}", param_hint="--format"
        )
    if compare is not None and compare == run_id:
        fail(InvalidInput("--compare must name another run than RUN_ID"))
    with runtime(models=False) as rt:
        result = load_report(rt, run_id, compare=compare)
        if report_format == "html":
            body = render_html(result)
        elif report_format == "json":
            body = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
        else:
            body = result.to_csv()
    if out is None and report_format == "html":
        out = Path(f"eval-report-{run_id}.html")
    if out is None or str(out) == "-":
        sys.stdout.write(body)
        return
    try:
        out.write_text(body, encoding="utf-8")
    except OSError as exc:
        fail(RuntimeError(f"cannot write {out}: {exc.strerror or exc}"))
    baseline = f" vs {result.baseline.id}" if result.baseline else " (no baseline)"
    console.print(f"wrote {out}: report of run {run_id}{baseline}")
    console.print(result.summary["text"], style="dim", highlight=False)
