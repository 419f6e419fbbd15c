"""What every `ragops` command shares: the consoles, error output, settings, a started
runtime, KB lookup, JSON options and tables. Command modules import this one, never the
package (`api.cli` imports them to mount them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from api.runtime import Runtime
from core import audit
from core.catalog.models import KnowledgeBase
from core.config import Settings, apply_offline_defaults, get_settings
from core.errors import RagopsError
from core.kbs import get_kb

CLI_ACTOR = "cli"  # the audit log's key id for changes made from the command line

console = Console()
err = Console(stderr=True)


def fail(exc: Exception) -> NoReturn:
    """Print the error's message and exit 2 (the code every command uses for errors)."""
    err.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
    raise typer.Exit(2) from exc


def settings() -> Settings:
    """The same Settings the server reads, with the offline defaults applied first."""
    apply_offline_defaults()
    return get_settings()


@contextmanager
def runtime(
    *, workers: bool = False, warm_ingest: bool = False, models: bool = True
) -> Iterator[Runtime]:
    """A started runtime, closed on the way out; a `RagopsError` inside becomes `fail`.

    `models=False` only migrates the catalog: for commands that read or write rows.

    Example:
        with runtime(models=False) as rt:
            rows = list_versions(session=..., kb=kb_row(rt, "sample"))
    """
    rt = Runtime(settings())
    try:
        rt.start(workers=workers, warm_ingest=warm_ingest, models=models)
        yield rt
    except RagopsError as exc:
        fail(exc)
    finally:
        rt.close()


def kb_row(rt: Runtime, name_or_id: str) -> KnowledgeBase:
    """The knowledge base by name or id (NotFound otherwise)."""
    with rt.db.session() as s:
        return get_kb(session=s, name_or_id=name_or_id)


def audit_cli(
    rt: Runtime,
    action: str,
    *,
    kb_id: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    **detail: Any,
) -> None:
    """An audit event for a change made from the command line (key id `cli`: the
    operator, who works on the catalog directly)."""
    with rt.db.session() as s:
        audit.record(
            session=s,
            action=action,
            outcome=outcome,
            key_id=CLI_ACTOR,
            kb_id=kb_id,
            target=target,
            detail=detail,
        )


def json_object_option(value: str | None, hint: str) -> dict[str, Any] | None:
    """An option holding a JSON object (None when not given); a bad one is a usage error."""
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc.msg}", param_hint=hint) from exc
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=hint)
    return parsed


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None
) -> None:
    """One row of strings per item, under `columns`."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_decision(d: dict[str, Any]) -> None:
    """A promotion decision with its checks, as the reviewer needs it (gates, promote)."""
    ev = d.get("evidence") or {}
    title = f"{d.get('subject')} of {d.get('kb')}: {d['outcome']}" + (
        f" (forced by {d['actor']}: {d['reason']})" if d.get("forced") else ""
    )
    table = Table("metric", "rule", "candidate", "live", "passed", title=title)
    for c in ev.get("checks") or []:
        value = "—" if c.get("value") is None else f"{c['value']:.4f}"
        base = "—" if c.get("baseline") is None else f"{c['baseline']:.4f}"
        ok = "[green]yes[/green]" if c["passed"] else "[red]no[/red]"
        table.add_row(c["metric"], c["rule"], value, base, ok)
    if ev.get("checks"):
        console.print(table)
    else:
        console.print(title)
    for key in ("summary", "note", "waiting_for"):
        if ev.get(key):
            console.print(f"{key}: {ev[key]}")
