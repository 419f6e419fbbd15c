"""A knowledge base's index versions: `ragops versions`, `build`, `promote`, `rollback`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.helpers import (
    CLI_ACTOR,
    audit_cli,
    console,
    err,
    fail,
    kb_row,
    print_decision,
    print_table,
    runtime,
)
from core.catalog.models import IndexVersion, VersionStatus
from core.errors import GateRefused
from eval import gates
from index import snapshots
from index.versions import get_version, list_versions, promote, rollback
from ingest.builds import create_version


def _version_row(v: IndexVersion) -> list[str]:
    chunking = v.config.get("chunking", {})
    return [
        str(v.number),
        v.status,
        f"{v.backend}:{v.index_params.get('index_type', '')}".rstrip(":"),
        v.embedding_model,
        f"{chunking.get('chunk_size')}/{chunking.get('chunk_overlap')}",
        f"{v.progress:.0%}",
        str(v.vector_count),
    ]


def versions(kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")]) -> None:
    """List a knowledge base's index versions.

    Example: ragops versions --kb sample
    """
    with runtime(models=False) as rt:
        target = kb_row(rt, kb)
        with rt.db.session() as s:
            rows = list_versions(session=s, kb=target)
    print_table(
        ("version", "status", "backend", "model", "chunking", "progress", "vectors"),
        (_version_row(v) for v in rows),
        title=f"{kb}: index versions",
    )


def build(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    embedding_model: Annotated[str | None, typer.Option(help="Packaged name or local path")] = None,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Model tokens")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(min=0)] = None,
    backend: Annotated[str | None, typer.Option(help="faiss or qdrant")] = None,
    index_type: Annotated[str | None, typer.Option(help="FAISS: flat, hnsw or ivfpq")] = None,
    promote_when_ready: Annotated[
        bool, typer.Option("--promote", help="Promote when ready")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Build here and wait (else queue it)")] = True,
) -> None:
    """Build a new index version from the KB's current documents while the live one serves.

    Example: ragops build --kb sample --chunk-size 128 --promote
    """
    changes: dict[str, Any] = {}
    if embedding_model:
        changes["embedding_model"] = embedding_model
    chunking = {
        k: v
        for k, v in {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}.items()
        if v is not None
    }
    if chunking:
        changes["chunking"] = chunking
    params = {"index_type": index_type} if index_type else None
    with runtime(workers=wait, warm_ingest=True) as rt:
        target = kb_row(rt, kb)
        version = create_version(
            rt, kb=target, changes=changes, backend=backend, index_params=params
        )
        console.print(f"building version {version.number} of {kb}")
        if not wait:
            return
        with Progress(
            TextColumn(f"[bold]version {version.number}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("build", total=1.0)
            while True:
                with rt.db.session() as s:
                    current = get_version(session=s, kb=target, number=version.number)
                progress.update(task, completed=current.progress)
                if current.status != "building" or current.error:
                    break
                time.sleep(0.3)
        if current.status != "ready":
            fail(
                RuntimeError(
                    f"version {version.number} is {current.status}: "
                    f"{current.error or 'build did not finish'}"
                )
            )
        stats = current.stats
        console.print(
            f"version {version.number} ready: {stats.get('documents')} documents, "
            f"{stats.get('chunks')} chunks in {stats.get('build_seconds')}s"
        )
        if promote_when_ready:
            promote(rt, kb=target, number=version.number)
            console.print(f"version {version.number} is live")


def promote_cmd(
    version: Annotated[int, typer.Argument(help="Version number to make live")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    force: Annotated[
        bool, typer.Option("--force", help="Override the quality gate (needs --actor, --reason)")
    ] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="Who promotes (recorded)")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded)")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Run the gate's eval runs and wait")
    ] = True,
) -> None:
    """Make a ready index version live (atomically; the old one stays ready), through
    the KB's quality gate when it has one: the gate's eval runs are reused or run, and a
    failing version stays ready (exit code 3) with the checks printed.

    Example: ragops promote 2 --kb sample --actor ana
    """
    # The gate's eval runs (with --wait) load the embedding model on first use, in the
    # workers; promoting without a gate loads nothing.
    with runtime(workers=wait, models=False) as rt:
        target = kb_row(rt, kb)
        with rt.db.session() as s:
            live = get_version(session=s, kb=target, number=version).status == VersionStatus.LIVE
        if live:
            console.print(f"version {version} of {kb} is already live")
            return
        try:
            decision = gates.request_promotion(
                rt, kb=target, number=version, actor=actor, force=force, reason=reason or ""
            )
            while wait and decision.outcome == gates.PENDING:
                time.sleep(0.5)
                decision = gates.advance(rt, decision.id)
        except GateRefused as exc:
            audit_cli(
                rt,
                "version.promote",
                kb_id=target.id,
                target=f"version {version}",
                outcome="error",
                version=version,
                force=force,
                decision=gates.REFUSED,
            )
            print_decision(exc.details)
            err.print(f"[red]refused:[/red] {exc.message}")
            raise typer.Exit(3) from exc
        audit_cli(
            rt,
            "version.promote",
            kb_id=target.id,
            target=f"version {version}",
            outcome="error" if decision.outcome in (gates.REFUSED, gates.FAILED) else "ok",
            version=version,
            force=force,
            decision=decision.outcome,
            **({"gate_override": True, "reason": reason or ""} if force else {}),
        )
    print_decision(gates.decision_dict(decision, kb_name=kb))
    if decision.outcome == gates.REFUSED:
        raise typer.Exit(3)
    if decision.outcome == gates.FAILED:
        raise typer.Exit(2)
    if decision.outcome == gates.PENDING:
        console.print(f"pending: decision {decision.id} waits for its eval runs")
    else:
        console.print(f"version {version} of {kb} is live ({decision.outcome})")


def rollback_cmd(kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")]) -> None:
    """Make the previously live index version live again.

    Example: ragops rollback --kb sample
    """
    with runtime(models=False) as rt:
        row = kb_row(rt, kb)
        v = rollback(rt, kb=row)
        audit_cli(rt, "version.rollback", kb_id=row.id, target=f"version {v.number}")
    console.print(f"rolled back: version {v.number} of {kb} is live")


# -- `ragops versions`: the listing above, plus snapshot and restore --------------------
versions_app = typer.Typer(
    help="List a knowledge base's index versions (--kb), or snapshot and restore one.",
    invoke_without_command=True,
    add_completion=False,
)


@versions_app.callback()
def versions_group(
    ctx: typer.Context,
    kb: Annotated[str | None, typer.Option("--kb", help="Knowledge base name")] = None,
) -> None:
    """List a knowledge base's index versions (`ragops versions --kb sample`), or move one
    between engines: `ragops versions snapshot sample 2`, `ragops versions restore sample
    <snapshot id or file>`."""
    if ctx.invoked_subcommand is not None:
        if kb is not None:
            raise typer.BadParameter("give the KB as the subcommand's argument", param_hint="--kb")
        return
    if kb is None:
        raise typer.BadParameter("name the knowledge base", param_hint="--kb")
    versions(kb)


def _print_snapshot(row: Any, kb: str) -> None:
    print_table(
        ("snapshot", "version", "engine", "points", "dim", "size", "sha256"),
        [
            [
                row.id,
                str(row.version_number or "-"),
                row.engine,
                str(row.point_count),
                str(row.dimension),
                str(row.size_bytes),
                row.sha256,
            ]
        ],
        title=f"{kb}: snapshot",
    )


@versions_app.command("snapshot")
def snapshot_cmd(
    kb: Annotated[str, typer.Argument(help="Knowledge base name")],
    number: Annotated[int, typer.Argument(min=1, help="Version number to export")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the archive to this file")
    ] = None,
) -> None:
    """Export a Qdrant index version as a Qdrant shard snapshot into the blob store
    (recorded in the catalog with its sha256); --out also writes the file, which a Qdrant
    server recovers (README: "Moving a version between engines").

    Example: ragops versions snapshot sample 2 --out sample-v2.snapshot
    """
    with runtime(models=False) as rt:
        target = kb_row(rt, kb)
        row = snapshots.create_snapshot(rt, kb=target, number=number, created_by=CLI_ACTOR)
        audit_cli(
            rt,
            "version.snapshot",
            kb_id=target.id,
            target=f"version {number}",
            snapshot_id=row.id,
            sha256=row.sha256,
        )
        if out is not None:
            out.write_bytes(snapshots.snapshot_bytes(rt, row))
    _print_snapshot(row, kb)
    if out is not None:
        console.print(f"wrote {out} ({row.size_bytes} bytes, sha256 {row.sha256})")


@versions_app.command("restore")
def restore_cmd(
    kb: Annotated[str, typer.Argument(help="Knowledge base to restore into")],
    snapshot: Annotated[
        str, typer.Argument(help="A snapshot id (ragops versions snapshot) or a snapshot file")
    ],
) -> None:
    """Restore a snapshot as a new ready version of KB (not live: promote it). A file is
    matched to its catalog record by sha256; an unknown file (e.g. a shard snapshot
    downloaded from a Qdrant server) takes the model and chunking of KB's live version.
    Restores on the Qdrant server when RAGOPS_QDRANT_URL is set, else on Qdrant Edge.

    Example: ragops versions restore staging 5f0c...e1
    """
    with runtime(models=False) as rt:
        target = kb_row(rt, kb)
        path = Path(snapshot)
        if path.is_file():
            row = snapshots.import_snapshot_file(rt, kb=target, path=path, created_by=CLI_ACTOR)
            snapshot_id = row.id
        else:
            snapshot_id = snapshot
        version = snapshots.restore_snapshot(rt, kb=target, snapshot_id=snapshot_id)
        audit_cli(
            rt,
            "version.restore",
            kb_id=target.id,
            target=f"version {version.number}",
            snapshot_id=snapshot_id,
        )
    console.print(
        f"restored snapshot {snapshot_id} as version {version.number} of {kb} "
        f"({version.vector_count} vectors, {version.index_params.get('engine')}); "
        f"promote it with: ragops promote {version.number} --kb {kb}"
    )
