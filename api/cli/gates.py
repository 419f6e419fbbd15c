"""`ragops gate`, `ragops decisions` and `ragops schedule`: quality gates, the promotion
audit trail and evaluation schedules from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from api.cli.helpers import console, fail, kb_row, print_table, runtime
from core.catalog.models import PromotionDecision
from core.errors import InvalidInput
from eval import gates
from eval.scheduler import stored_jobs
from eval.schedules import create_schedule, list_schedules, run_schedule

gate_app = typer.Typer(help="A KB's quality gate (promotion policy).", no_args_is_help=True)
schedule_app = typer.Typer(help="Evaluation schedules.", no_args_is_help=True)


@gate_app.command("show")
def gate_show(kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")]) -> None:
    """Print the KB's gate.

    Example: ragops gate show --kb sample
    """
    with runtime(models=False) as rt:
        target = kb_row(rt, kb)
        with rt.db.session() as s:
            row = gates.get_gate(session=s, kb=target)
    if row is None:
        console.print(f"{kb} has no quality gate (set one: ragops gate set --kb {kb} ...)")
        raise typer.Exit(1)
    console.print_json(json.dumps(gates.policy_dict(gates.policy_of(row))))


@gate_app.command("set")
def gate_set(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    testset: Annotated[str, typer.Option("--testset", help="Test set the gate runs")],
    min_score: Annotated[
        list[str] | None, typer.Option("--min", help="metric=floor, e.g. recall@k=0.8")
    ] = None,
    max_regression: Annotated[
        float | None, typer.Option("--max-regression", help="largest drop below live")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="metric compared with live")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense or hybrid")] = None,
    actor: Annotated[str | None, typer.Option("--actor")] = None,
) -> None:
    """Set the KB's promotion policy.

    Example: ragops gate set --kb sample --testset smoke --min recall@k=0.8 --max-regression 0.02
    """
    floors: dict[str, float] = {}
    for item in min_score or []:
        name, _, value = item.partition("=")
        try:
            floors[name.strip()] = float(value)
        except ValueError:
            fail(InvalidInput(f"--min {item!r}: use metric=number, e.g. recall@k=0.8"))
    params = {k: v for k, v in {"top_k": top_k, "mode": mode}.items() if v is not None}
    policy = gates.GatePolicy(
        testset=testset,
        min_scores=floors,
        max_regression=max_regression,
        metrics=list(metric or []),
        params=params,
    )
    with runtime(models=False) as rt:
        gates.set_gate(rt, kb=kb_row(rt, kb), policy=policy, actor=actor)
    console.print(f"quality gate of {kb} set")


def _decision_row(d: PromotionDecision) -> tuple[str, ...]:
    ev = d.evidence or {}
    return (
        d.created_at.isoformat(timespec="seconds"),
        d.subject,
        d.outcome + (" (forced)" if d.forced else ""),
        "" if d.baseline_version is None else f"v{d.baseline_version}",
        d.actor or "",
        str(ev.get("summary") or ev.get("note") or ""),
    )


def decisions(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    limit: Annotated[int, typer.Option("--limit")] = 20,
) -> None:
    """The KB's promotion decisions, newest first (the audit trail).

    Example: ragops decisions --kb sample
    """
    with runtime(models=False) as rt:
        rows = gates.list_decisions(rt, kb=kb_row(rt, kb), limit=limit)
    print_table(
        ("when", "subject", "outcome", "vs live", "actor", "summary"),
        (_decision_row(d) for d in rows),
        title=f"{kb}",
    )


@schedule_app.command("list")
def schedule_list() -> None:
    """Eval schedules and the scheduler's own jobs.

    Example: ragops schedule list
    """
    with runtime(models=False) as rt:
        rows, jobs = list_schedules(rt), stored_jobs(rt)
    print_table(
        ("name", "kind", "testset", "cron", "enabled", "last run"),
        (
            (
                r.name,
                r.kind,
                r.testset,
                r.cron or "",
                str(r.enabled),
                r.last_run_at.isoformat(timespec="seconds") if r.last_run_at else "",
            )
            for r in rows
        ),
        title="eval schedules",
    )
    for j in jobs:
        console.print(f"{j['id']}: {j['trigger']} next {j['next_run_time']}")


@schedule_app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option("--kind", help="live_nightly or on_ready")],
    testset: Annotated[str, typer.Option("--testset")],
    kb: Annotated[str | None, typer.Option("--kb", help="one KB (default: all)")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help='UTC, e.g. "0 2 * * *"')] = None,
) -> None:
    """Add an eval schedule.

    Example: ragops schedule add nightly --kind live_nightly --testset smoke --cron "0 2 * * *"
    """
    with runtime(models=False) as rt:
        row = create_schedule(
            rt,
            name=name,
            kind=kind,
            testset=testset,
            kb=kb_row(rt, kb) if kb else None,
            cron=cron,
        )
    console.print(f"schedule {row.name} added ({row.kind}{', ' + row.cron if row.cron else ''})")


@schedule_app.command("run")
def schedule_run(name: Annotated[str, typer.Argument()]) -> None:
    """Run a schedule now (queues its eval runs for the workers).

    Example: ragops schedule run nightly
    """
    with runtime(models=False) as rt:
        ids = run_schedule(rt, name)
    console.print(f"queued {len(ids)} eval runs: {' '.join(ids)}")
