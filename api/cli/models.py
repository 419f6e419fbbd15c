"""`ragops models`: the model registry from the command line (the same catalog functions
as /v1/models/registry)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.helpers import console, json_object_option, print_table, runtime
from api.runtime import Runtime
from core.catalog.models import KnowledgeBase, RegistryModel
from eval import registry, rollout

models_app = typer.Typer(
    help="The model registry: embedding models, generators, judges and rerankers.",
    no_args_is_help=True,
)


@contextmanager
def _registry_runtime() -> Iterator[Runtime]:
    """A runtime whose registry lists the built-in models. Registry commands only read
    and write rows: no model is loaded."""
    with runtime(models=False) as rt:
        registry.ensure_builtin(rt)
        yield rt


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "-"


@models_app.command("list")
def list_cmd(
    kind: Annotated[
        str | None, typer.Option(help="embedding, generator, judge or reranker")
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="candidate, staging, production or archived")
    ] = None,
) -> None:
    """List registered models.

    Example: ragops models list --kind embedding --stage production
    """
    with _registry_runtime() as rt, rt.db.session() as s:
        rows = [
            (m.kind, m.name, m.stage, f"{m.source_type}: {m.source}", _short(m.digest))
            for m in registry.list_models(session=s, kind=kind, stage=stage)
        ]
    print_table(("kind", "name", "stage", "source", "digest"), rows, title="model registry")


@models_app.command("show")
def show_cmd(
    kind: Annotated[str, typer.Argument(help="embedding, generator, judge or reranker")],
    name: Annotated[str, typer.Argument(help="Registered name (may contain '/')")],
) -> None:
    """One model: source, digest, stage, lineage, where it is used, and its stage history.

    Example: ragops models show embedding all-MiniLM-L6-v2
    """
    with _registry_runtime() as rt, rt.db.session() as s:
        m = registry.get_model(session=s, kind=kind, name=name)
        use = registry.usage(session=s, settings=rt.settings, model=m)
        parent, children = registry.lineage_links(session=s, model=m)
        history = registry.stage_history(session=s, model=m)
        kb_names = dict(s.query(KnowledgeBase.id, KnowledgeBase.name).all())
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    lineage = dict(m.lineage or {})
    rows = [
        ("kind", m.kind),
        ("name", m.name),
        ("stage", m.stage),
        ("source", f"{m.source_type}: {m.source}"),
        ("digest", m.digest or "-"),
        ("description", m.description or "-"),
        ("fine-tuned from", lineage.pop("fine_tuned_from", "-")),
        ("parent", f"{parent.kind}:{parent.name} ({parent.stage})" if parent else "-"),
        ("children", ", ".join(f"{c.kind}:{c.name}" for c in children) or "-"),
        ("training data", lineage.pop("training_data", "-")),
        ("notes", lineage.pop("notes", "-")),
        ("used by", use.describe() if use.in_use else "nothing"),
    ]
    for key, value in rows:
        info.add_row(key, str(value))
    console.print(info)
    if history:
        table = Table("when", "event", "outcome", "kb", "version", "actor", "reason")
        for d in history:
            ev = d.evidence or {}
            event = (
                f"rollout → {ev['model'].get('target_stage', 'production')}"
                if "model" in ev
                else f"{ev.get('from')} → {ev.get('to')}"
            )
            table.add_row(
                d.created_at.isoformat(timespec="seconds"),
                event,
                d.outcome + (" (forced)" if d.forced else ""),
                kb_names.get(d.kb_id, d.kb_id or "-") if d.kb_id else "-",
                str(d.index_version) if d.index_version is not None else "-",
                d.actor or "-",
                d.reason or "",
            )
        console.print(table)


@models_app.command("register")
def register_cmd(
    kind: Annotated[str, typer.Argument(help="embedding, generator, judge or reranker")],
    name: Annotated[str, typer.Argument(help="Unique per kind; may contain '/'")],
    source: Annotated[str, typer.Option(help="A path, hub id, URL or package name")],
    source_type: Annotated[
        str, typer.Option(help="local_path, hub_id, endpoint or package")
    ] = "local_path",
    description: Annotated[str, typer.Option(help="Free text")] = "",
    fine_tuned_from: Annotated[
        str | None, typer.Option(help="Parent: a registered name or a hub id")
    ] = None,
    training_data: Annotated[str | None, typer.Option(help="What it was trained on")] = None,
    notes: Annotated[str | None, typer.Option(help="Lineage notes")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object stored as metadata")] = None,
) -> None:
    """Register a model as a candidate (a local path is digested; nothing is downloaded).

    Example: ragops models register embedding minilm-ft --source ./models/minilm-ft
    --fine-tuned-from all-MiniLM-L6-v2 --training-data s3://corpora/tickets
    """
    meta: dict[str, Any] = json_object_option(metadata, "--metadata") or {}
    lineage = {
        k: v
        for k, v in {
            "fine_tuned_from": fine_tuned_from,
            "training_data": training_data,
            "notes": notes,
        }.items()
        if v
    }
    with _registry_runtime() as rt:
        m = registry.register(
            rt,
            kind=kind,
            name=name,
            source_type=source_type,
            source=source,
            description=description,
            lineage=lineage,
            metadata=meta,
        )
    console.print(f"registered {m.kind} model {m.name} ({m.stage}, digest {_short(m.digest)})")


@models_app.command("stage")
def stage_cmd(
    kind: Annotated[str, typer.Argument(help="embedding, generator, judge or reranker")],
    name: Annotated[str, typer.Argument(help="Registered name")],
    stage: Annotated[str, typer.Argument(help="candidate, staging, production or archived")],
    kb: Annotated[
        str | None,
        typer.Option(
            help="Embedding model to production: roll it out to this KB through its "
            "quality gate (a new index version is built and evaluated)"
        ),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who (default: your user name)")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded)")] = "",
    force: Annotated[
        bool, typer.Option(help="Override the quality gate, or archive a model in use")
    ] = False,
) -> None:
    """Move a model to another stage (candidate → staging → production → archived).

    Example: ragops models stage embedding minilm-ft production --kb docs --reason "ft v2"
    """
    with _registry_runtime() as rt:
        result = rollout.change_stage(
            rt,
            kind=kind,
            name=name,
            stage=stage,
            kb=kb,
            actor=actor or getpass.getuser(),
            reason=reason,
            force=force,
        )
    if isinstance(result, RegistryModel):
        console.print(f"{result.kind} model {result.name} is {result.stage}")
        return
    console.print(
        f"rollout of {kind} model {name} to {kb} started: index version "
        f"{result.index_version} builds, then the quality gate decides (decision "
        f"{result.id}, {result.outcome}); the server's workers run it "
        f"(follow with: ragops models show {kind} {name})"
    )


@models_app.command("delete")
def delete_cmd(
    kind: Annotated[str, typer.Argument(help="embedding, generator, judge or reranker")],
    name: Annotated[str, typer.Argument(help="Registered name")],
) -> None:
    """Delete a model that nothing uses (its stage history stays).

    Example: ragops models delete embedding minilm-old
    """
    with _registry_runtime() as rt:
        registry.delete_model(rt, kind=kind, name=name)
    console.print(f"deleted {kind} model {name}")
