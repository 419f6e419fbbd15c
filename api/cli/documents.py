"""`ragops ingest`: upload files into a knowledge base and wait for them to be indexed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.helpers import console, err, json_object_option, kb_row, runtime
from api.runtime import Runtime
from core.errors import NotFound, RagopsError
from ingest.documents import check_uploaded_file, revisions_by_id, submit_upload
from ingest.knowledge_bases import create_kb

FINAL = {"indexed", "failed", "superseded"}


def _collect(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, name relative to the given folder) for every non-hidden file under `paths`."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path)
                if f.is_file() and not any(p.startswith(".") for p in rel.parts):
                    found.append((f, rel.as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint="PATH")
    return found


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name (created if missing)")],
    metadata: Annotated[
        str | None, typer.Option(help="JSON object stored on each document")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until every document is processed")] = True,
) -> None:
    """Upload files into a knowledge base and index them, with a progress bar.

    Unchanged files are skipped (same bytes, same KB); interrupted runs resume: queued work
    stays in the catalog and is picked up by the next `ragops ingest` or `ragops serve`.

    Example: ragops ingest ./samples --kb sample
    """
    meta = json_object_option(metadata, "--metadata")
    files = _collect(paths)
    if not files:
        err.print("[red]no files found[/red] under the given paths")
        raise typer.Exit(2)
    # Models load only once something is queued: a rerun over unchanged files (or one
    # that only rejects) answers in seconds instead of after a full warm-up.
    with runtime(models=False) as rt:
        try:
            target = kb_row(rt, kb)
        except NotFound:
            # A new KB needs its model now: load everything at once (side by side).
            rt.warm_up(workers=wait, warm_ingest=True)
            target = create_kb(rt, name=kb)
            console.print(f"created knowledge base [bold]{kb}[/bold]")
        rejected: list[tuple[str, str]] = []
        queued: dict[str, str] = {}  # revision id -> filename
        skipped = 0
        limits = rt.archive_limits()
        for path, name in files:
            try:
                checked = check_uploaded_file(
                    name,
                    path.read_bytes(),
                    max_bytes=rt.settings.max_file_bytes,
                    archive_limits=limits,
                )
            except RagopsError as exc:
                rejected.append((name, exc.message))
                continue
            rejected += checked.skipped
            for doc_name, data, media_type in checked.documents:
                try:
                    outcome = submit_upload(
                        rt,
                        kb=target,
                        filename=doc_name,
                        data=data,
                        media_type=media_type,
                        metadata=meta,
                    )
                except RagopsError as exc:
                    rejected.append((doc_name, exc.message))
                    continue
                if outcome.duplicate and outcome.status in FINAL:
                    skipped += 1
                else:
                    queued[outcome.revision_id] = doc_name
        for name, reason in rejected:
            err.print(f"[red]rejected[/red] {name}: {reason}")
        console.print(f"{len(queued)} queued, {skipped} unchanged, {len(rejected)} rejected")
        if not wait or not queued:
            raise typer.Exit(1 if rejected else 0)
        if not rt.workers.alive:
            rt.warm_up(workers=True, warm_ingest=True)
        started = time.monotonic()
        try:
            states = _wait_for(rt, queued)
        except KeyboardInterrupt:
            # The queue is in the catalog: nothing is lost, the next run picks it up.
            err.print(
                "[yellow]interrupted[/yellow]: unfinished documents stay queued; run "
                "the same command again (or `ragops serve`) to resume"
            )
            raise typer.Exit(130) from None
        wall = time.monotonic() - started
    _print_outcome(states, queued, wall)
    failed = sum(1 for st in states.values() if st.status == "failed")
    raise typer.Exit(1 if failed or rejected else 0)


@dataclass
class RevisionState:
    status: str
    error: str | None
    chunks: int
    seconds: dict[str, float]


def _wait_for(rt: Runtime, queued: dict[str, str]) -> dict[str, RevisionState]:
    columns = TextColumn("[bold]ingesting"), BarColumn(), MofNCompleteColumn()
    with Progress(
        *columns, TextColumn("{task.fields[current]}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("ingest", total=len(queued), current="")
        while True:
            with rt.db.session() as s:
                rows = revisions_by_id(session=s, ids=list(queued))
                states = {
                    r.id: RevisionState(
                        r.status, r.error, r.chunk_count, (r.report or {}).get("seconds", {})
                    )
                    for r in rows
                }
            done = sum(1 for st in states.values() if st.status in FINAL)
            busy = [queued[rid] for rid, st in states.items() if st.status not in FINAL]
            progress.update(task, completed=done, current=(busy[0] if busy else ""))
            if done >= len(queued):
                return states
            time.sleep(0.3)


def _print_outcome(
    states: dict[str, RevisionState], queued: dict[str, str], wall_seconds: float
) -> None:
    table = Table("file", "status", "chunks", "reason")
    totals: dict[str, float] = {}
    for rid, name in sorted(queued.items(), key=lambda kv: kv[1]):
        st = states.get(rid, RevisionState("missing", None, 0, {}))
        color = "green" if st.status == "indexed" else "red"
        table.add_row(name, f"[{color}]{st.status}[/{color}]", str(st.chunks), st.error or "")
        for stage, secs in st.seconds.items():
            totals[stage] = totals.get(stage, 0.0) + secs
    console.print(table)
    indexed = [st for st in states.values() if st.status == "indexed"]
    stages = ", ".join(f"{stage} {secs:.2f}s" for stage, secs in totals.items())
    console.print(
        f"{len(indexed)} documents, {sum(st.chunks for st in indexed)} chunks in "
        f"{wall_seconds:.1f}s wall; per stage (summed over documents): {stages}"
    )
