"""`ragops eval`: score a test set against a knowledge base's index version."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from api.cli.helpers import console, fail, kb_row, runtime
from core.catalog.models import EvalRun
from eval.runs import get_run, submit_eval


def _eval_table(run: EvalRun) -> Table:
    key = run.key
    table = Table(
        "metric",
        "mean",
        "questions",
        title=(
            f"{key['kb']} v{key['index_version']} · {key['testset']}@{key['testset_version']} · "
            f"{key['generator']} · {key['prompt']} · top_k {key['params']['top_k']} "
            f"{key['params']['mode']}"
        ),
    )
    for name, value in run.aggregate.items():
        table.add_row(name, f"{value['mean']:.4f}", str(value["count"]))
    return table


def eval_cmd(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    testset: Annotated[str, typer.Option("--testset", help="Test set name")],
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Test set version (default newest)")
    ] = None,
    index_version: Annotated[
        int | None, typer.Option("--index-version", min=1, help="Index version (default live)")
    ] = None,
    generator: Annotated[str | None, typer.Option(help="extractive, local or openai")] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt name or name@version")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Passages per query")] = None,
    mode: Annotated[str | None, typer.Option(help="dense or hybrid")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Metric to compute (repeatable)")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run it here and print the aggregate scores")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON")] = False,
) -> None:
    """Evaluate a test set against a knowledge base's live (or pinned) index version.

    Without --wait the run is queued for the server's workers and its id printed.

    Example: ragops eval --kb sample --testset smoke --wait
    """
    # Without --wait the run is only queued: no model is needed here.
    with runtime(models=wait) as rt:
        run = submit_eval(
            rt,
            testset=testset,
            testset_version=version,
            kb=kb_row(rt, kb),
            index_version=index_version,
            generator=generator,
            prompt=prompt,
            top_k=top_k,
            mode=mode,
            metrics=metric or None,
        )
        if wait:
            # Run the job here unless a server's worker already claimed it; then poll.
            rt.workers.run_job(run.job_id or "", owner=f"cli:{run.id}")
            while (run := get_run(rt, run.id)).status not in ("succeeded", "failed"):
                time.sleep(0.5)
    if as_json:
        print(
            json.dumps(
                {"id": run.id, "status": run.status, "key": run.key, "aggregate": run.aggregate},
                indent=2,
            )
        )
    elif not wait:
        console.print(f"queued eval run {run.id}; see GET /v1/evals/{run.id}")
    elif run.status == "failed":
        fail(RuntimeError(f"eval run {run.id} failed: {run.error}"))
    else:
        console.print(_eval_table(run))
        console.print(
            f"run {run.id}: {run.completed_count} questions in {run.wall_seconds:.1f}s", style="dim"
        )
