"""`ragops ab`: create, list, show and stop A/B tests on a KB's /answer traffic (see
eval/ab.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.helpers import console, kb_row, print_table, runtime
from eval.ab import create_test, list_tests, report, stop_test

ab_app = typer.Typer(
    help="A/B tests: split a knowledge base's answers between index versions, generators "
    "or prompts.",
    no_args_is_help=True,
)

ARM_KEYS = {"version": "index_version", "index_version": "index_version"} | {
    k: k for k in ("generator", "prompt")
}
ARM_HELP = (
    "name:weight[:key=value,...] with keys version, generator, prompt, e.g. "
    "control:50 or small:50:version=2,generator=local (repeat for each arm)"
)


def parse_arm(text: str) -> dict[str, Any]:
    """`name:weight[:key=value,...]` → the arm dict `eval.ab.create_test` takes."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise typer.BadParameter(f"{text!r}: write {ARM_HELP}", param_hint="--arm")
    name, weight = parts[0], parts[1]
    try:
        arm: dict[str, Any] = {"name": name, "weight": float(weight)}
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: weight {weight!r} is not a number", param_hint="--arm"
        ) from None
    for item in filter(None, (parts[2] if len(parts) == 3 else "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in ARM_KEYS or not value:
            raise typer.BadParameter(
                f"{text!r}: {item!r} is not key=value with key version, generator or prompt",
                param_hint="--arm",
            )
        if ARM_KEYS[key] == "index_version":
            if not value.isdigit():
                raise typer.BadParameter(
                    f"{text!r}: version {value!r} is not a number", param_hint="--arm"
                )
            arm["index_version"] = int(value)
        else:
            arm[ARM_KEYS[key]] = value
    return arm


def _spec_arms(spec: str) -> list[Any]:
    text = typer.get_text_stream("stdin").read() if spec == "-" else Path(spec).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc.msg}", param_hint="--spec") from None
    arms = data.get("arms") if isinstance(data, dict) else data
    if not isinstance(arms, list):
        raise typer.BadParameter('expected {"arms": [...]} or a list of arms', param_hint="--spec")
    return arms


def _arm_rows(arms: list[dict[str, Any]]) -> list[str]:
    return [
        f"{a['name']} ({a['weight']:g}): v{a['index_version']} · {a['generator']} · {a['prompt']}"
        for a in arms
    ]


@ab_app.command("create")
def create(
    kb: Annotated[str, typer.Argument(help="Knowledge base name")],
    name: Annotated[str, typer.Argument(help="Test name (unique in the KB)")],
    arm: Annotated[list[str] | None, typer.Option("--arm", help=ARM_HELP)] = None,
    spec: Annotated[
        str | None,
        typer.Option(help='JSON file (or - for stdin): {"arms": [{"name", "weight", ...}]}'),
    ] = None,
    created_by: Annotated[str | None, typer.Option("--created-by", help="Who starts it")] = None,
) -> None:
    """Start an A/B test.

    Arms leaving out a field use the live version and the KB's default generator and
    prompt, frozen now.

    Example: ragops ab create sample chunks --arm control:50 --arm small:50:version=2
    """
    if arm and spec:
        raise typer.BadParameter("give either --arm options or --spec, not both")
    if not arm and not spec:
        raise typer.BadParameter("give the arms: --arm name:weight[:...] (twice or more) or --spec")
    arms = _spec_arms(spec) if spec else [parse_arm(a) for a in arm or []]
    with runtime(models=False) as rt:
        row = create_test(rt, kb=kb_row(rt, kb), name=name, arms=arms, created_by=created_by)
    console.print(f"A/B test {row.name} running on {kb}:")
    for line in _arm_rows(row.arms):
        console.print(f"  {line}", highlight=False)


@ab_app.command("list")
def list_cmd(
    kb: Annotated[str, typer.Argument(help="Knowledge base name")],
    status: Annotated[str | None, typer.Option(help="running or stopped")] = None,
) -> None:
    """List a knowledge base's A/B tests, newest first.

    Example: ragops ab list sample --status running
    """
    with runtime(models=False) as rt:
        target = kb_row(rt, kb)
        with rt.db.session() as s:
            rows = list_tests(session=s, kb=target, status=status)
    print_table(
        ("name", "status", "arms", "created", "stopped"),
        (
            (
                t.name,
                t.status,
                "\n".join(_arm_rows(t.arms)),
                t.created_at.isoformat(timespec="seconds"),
                t.stopped_at.isoformat(timespec="seconds") if t.stopped_at else "",
            )
            for t in rows
        ),
        title=f"{kb}: A/B tests",
    )


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)


@ab_app.command("show")
def show(
    kb: Annotated[str, typer.Argument(help="Knowledge base name")],
    name: Annotated[str, typer.Argument(help="Test name")],
    testset: Annotated[
        str | None, typer.Option(help="Compare eval scores on this test set only")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Per-arm report: answers, subjects, feedback with a 95% interval, latency, eval.

    Example: ragops ab show sample chunks --testset smoke
    """
    with runtime(models=False) as rt:
        result = report(rt, kb=kb_row(rt, kb), name=name, testset=testset)
    test, arms = result["test"], result["arms"]
    if as_json:
        body = {"name": test.name, "status": test.status, "arms": arms}
        print(json.dumps(body, indent=2, default=str))
        return
    metrics = sorted({m for a in arms if a["eval"] for m in a["eval"]["scores"]})
    table = Table(
        "arm",
        "config",
        "answers",
        "subjects",
        "up/down",
        "positive (95% CI)",
        "latency ms",
        *metrics,
        title=f"{kb}: A/B test {test.name} ({test.status})",
    )
    for a in arms:
        ci = a["positive_rate_ci95"]
        scores = a["eval"]["scores"] if a["eval"] else {}
        table.add_row(
            f"{a['name']} ({a['share']:.0%})",
            f"v{a['index_version']} · {a['generator']} · {a['prompt']}",
            str(a["answers"]),
            _fmt(a["distinct_subjects"], "d"),
            f"{a['thumbs_up']}/{a['thumbs_down']}",
            f"{a['positive_rate']:.2f} ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "",
            _fmt(a["mean_latency_ms"], ".1f"),
            *(_fmt(scores.get(m), ".4f") for m in metrics),
        )
    console.print(table)


@ab_app.command("stop")
def stop(
    kb: Annotated[str, typer.Argument(help="Knowledge base name")],
    name: Annotated[str, typer.Argument(help="Test name")],
) -> None:
    """Stop assigning arms; the report stays.

    Example: ragops ab stop sample chunks
    """
    with runtime(models=False) as rt:
        stop_test(rt, kb=kb_row(rt, kb), name=name)
    console.print(f"A/B test {name} stopped")
