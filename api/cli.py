"""The `ragops` command line: one group reading the same Settings as the server."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli_ab import ab_app
from api.cli_gates import register as register_gates
from api.cli_generate import register as register_generate
from api.cli_models import models_app
from api.cli_report import register as register_report
from core.config import apply_offline_defaults, get_settings

app = typer.Typer(
    help="ragops: versioned RAG indexes with measured answer quality.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

FINAL = {"indexed", "failed", "superseded"}


def _runtime(*, workers: bool, warm_ingest: bool = True):  # type: ignore[no-untyped-def]
    from core.runtime import Runtime

    apply_offline_defaults()
    rt = Runtime(get_settings())
    rt.start(workers=workers, warm_ingest=warm_ingest)
    return rt


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Start the HTTP API (and its in-process ingestion workers).

    Example: ragops serve --port 8000
    """
    import uvicorn

    from api.app import create_app

    apply_offline_defaults()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Presidio logs one line per recognizer (and warns about languages we don't load).
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    uvicorn.run(create_app(get_settings()), host=host, port=port, log_level=log_level)


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


@app.command()
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
    from core.errors import NotFound, RagopsError
    from core.kbs import get_kb
    from ingest.documents import check_uploaded_file, submit_upload
    from ingest.knowledge_bases import create_kb

    meta = json_object_option(metadata, "--metadata")
    files = _collect(paths)
    if not files:
        err.print("[red]no files found[/red] under the given paths")
        raise typer.Exit(2)
    rt = _runtime(workers=wait)
    try:
        with rt.db.session() as s:
            try:
                kb_row = get_kb(session=s, name_or_id=kb)
            except NotFound:
                kb_row = None
        if kb_row is None:
            kb_row = create_kb(rt, name=kb)
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
                        kb=kb_row,
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
    finally:
        rt.close()
    _print_outcome(states, queued, wall)
    failed = sum(1 for st in states.values() if st.status == "failed")
    raise typer.Exit(1 if failed or rejected else 0)


@dataclass
class RevisionState:
    status: str
    error: str | None
    chunks: int
    seconds: dict[str, float]


def _wait_for(rt, queued: dict[str, str]) -> dict[str, RevisionState]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from core.catalog.models import DocumentRevision

    columns = TextColumn("[bold]ingesting"), BarColumn(), MofNCompleteColumn()
    with Progress(
        *columns, TextColumn("{task.fields[current]}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("ingest", total=len(queued), current="")
        while True:
            with rt.db.session() as s:
                rows = s.execute(
                    select(DocumentRevision).where(DocumentRevision.id.in_(list(queued)))
                ).scalars()
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


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: Annotated[str | None, typer.Option(help="dense or hybrid (default: hybrid)")] = None,
    version: Annotated[int | None, typer.Option(help="Pin an index version")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Search a knowledge base's live index version.

    Example: ragops query "how do bees communicate?" --kb sample
    """
    from core.errors import RagopsError
    from core.kbs import get_kb
    from retrieval.search import retrieve

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        with rt.db.session() as s:
            kb_row = get_kb(session=s, name_or_id=kb)
        result = retrieve(rt, kb=kb_row, query=text, top_k=top_k, mode=mode, index_version=version)
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    if as_json:
        print(
            json.dumps(
                {
                    "index_version": result.index_version,
                    "results": [r.__dict__ for r in result.results],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if result.index_version is None:
        console.print(f"knowledge base {kb!r} has no indexed documents yet")
        return
    table = Table(
        "#", "score", "file", "page", "text", title=f"{kb} (index v{result.index_version})"
    )
    for i, r in enumerate(result.results, 1):
        snippet = " ".join(r.text.split())[:160]
        table.add_row(
            str(i), f"{r.score:.3f}", r.filename, str(r.metadata.get("page_number") or ""), snippet
        )
    console.print(table)


def json_object_option(value: str | None, hint: str) -> dict | None:
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


def _kb_row(rt, kb: str):  # type: ignore[no-untyped-def]
    from core.kbs import get_kb

    with rt.db.session() as s:
        return get_kb(session=s, name_or_id=kb)


def _fail(exc: Exception) -> NoReturn:
    err.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
    raise typer.Exit(2) from exc


def _version_table(kb: str, rows: list) -> Table:  # type: ignore[type-arg]
    table = Table(
        "version",
        "status",
        "backend",
        "model",
        "chunking",
        "progress",
        "vectors",
        title=f"{kb}: index versions",
    )
    for v in rows:
        chunking = v.config.get("chunking", {})
        table.add_row(
            str(v.number),
            v.status,
            f"{v.backend}:{v.index_params.get('index_type', '')}".rstrip(":"),
            v.embedding_model,
            f"{chunking.get('chunk_size')}/{chunking.get('chunk_overlap')}",
            f"{v.progress:.0%}",
            str(v.vector_count),
        )
    return table


@app.command()
def versions(kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")]) -> None:
    """List a knowledge base's index versions.

    Example: ragops versions --kb sample
    """
    from core.errors import RagopsError
    from index.versions import list_versions

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        kb_row = _kb_row(rt, kb)
        with rt.db.session() as s:
            rows = list_versions(session=s, kb=kb_row)
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    console.print(_version_table(kb, rows))


@app.command()
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
    from core.errors import RagopsError
    from index.versions import create_version, get_version, promote

    changes: dict = {}  # type: ignore[type-arg]
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
    rt = _runtime(workers=wait)
    try:
        kb_row = _kb_row(rt, kb)
        version = create_version(
            rt, kb=kb_row, changes=changes, backend=backend, index_params=params
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
                    current = get_version(session=s, kb=kb_row, number=version.number)
                progress.update(task, completed=current.progress)
                if current.status != "building" or current.error:
                    break
                time.sleep(0.3)
        if current.status != "ready":
            _fail(
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
            promote(rt, kb=kb_row, number=version.number)
            console.print(f"version {version.number} is live")
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()


@app.command(name="promote")
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
    from api.cli_gates import print_decision
    from core.errors import GateRefused, RagopsError
    from eval import gates

    rt = _runtime(workers=wait, warm_ingest=False)
    try:
        kb_row = _kb_row(rt, kb)
        with rt.db.session() as s:
            live = lifecycle_version(s, kb_row, version)
        if live:
            console.print(f"version {version} of {kb} is already live")
            return
        decision = gates.request_promotion(
            rt, kb=kb_row, number=version, actor=actor, force=force, reason=reason or ""
        )
        while wait and decision.outcome == gates.PENDING:
            time.sleep(0.5)
            decision = gates.advance(rt, decision.id)
    except GateRefused as exc:
        print_decision(exc.details)
        err.print(f"[red]refused:[/red] {exc.message}")
        raise typer.Exit(3) from exc
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    print_decision(gates.decision_dict(decision, kb_name=kb))
    if decision.outcome == gates.REFUSED:
        raise typer.Exit(3)
    if decision.outcome == gates.FAILED:
        raise typer.Exit(2)
    if decision.outcome == gates.PENDING:
        console.print(f"pending: decision {decision.id} waits for its eval runs")
    else:
        console.print(f"version {version} of {kb} is live ({decision.outcome})")


def lifecycle_version(s, kb_row, number: int) -> bool:  # type: ignore[no-untyped-def]
    """True when the version is already live (404 for an unknown one)."""
    from core.catalog.models import VersionStatus
    from index.versions import get_version

    return get_version(session=s, kb=kb_row, number=number).status == VersionStatus.LIVE


@app.command(name="rollback")
def rollback_cmd(kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")]) -> None:
    """Make the previously live index version live again.

    Example: ragops rollback --kb sample
    """
    from core.errors import RagopsError
    from index.versions import rollback

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        v = rollback(rt, kb=_kb_row(rt, kb))
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    console.print(f"rolled back: version {v.number} of {kb} is live")


@app.command()
def scheduler(
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the periodic jobs (GC of retired versions, reconciliation, Celery re-dispatch).

    Run one or several: a lease in the catalog makes exactly one act at a time.

    Example: ragops scheduler
    """
    from eval.scheduler import SchedulerService

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rt = _runtime(workers=False, warm_ingest=False)
    service = SchedulerService(rt)
    sched = service.build(blocking=True)
    console.print(
        f"scheduler started: {', '.join(f'{k} every {v:g}s' for k, v in service.intervals.items())}"
    )
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        service.lease.release()
        rt.close()


@app.command()
def check() -> None:
    """Check that this deployment's services answer: catalog, and when configured the
    Celery broker and the Qdrant server. Exit 1 names what is down (for health checks).

    Example: ragops check
    """
    from sqlalchemy import text

    from core.db import Database

    apply_offline_defaults()
    settings = get_settings()
    problems: list[str] = []
    db = Database(settings.catalog_url)
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash
        problems.append(f"catalog: {exc.__class__.__name__}: {exc}")
    finally:
        db.dispose()
    if settings.celery_broker_url:
        from kombu import Connection

        try:
            with Connection(settings.celery_broker_url, connect_timeout=5) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"broker: {exc.__class__.__name__}: {exc}")
    if settings.qdrant_url:
        from index.qdrant_index import make_client

        try:
            make_client(
                url=settings.qdrant_url, api_key=settings.qdrant_api_key or None
            ).get_collections()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"qdrant: {exc.__class__.__name__}: {exc}")
    for problem in problems:
        err.print(f"[red]down[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("ok")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they come")] = False,
    generator: Annotated[
        str | None, typer.Option("--generator", help="extractive, local or openai")
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="name or name@version")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON response")] = False,
) -> None:
    """Answer a question from a knowledge base, with citations (recorded like /answer).

    Example: ragops ask "How often should I feed my starter?" --kb sample --stream
    """
    from core.errors import RagopsError
    from retrieval.chain import plan_answer, run_answer, stream_answer

    if stream and as_json:
        err.print("[red]error:[/red] --stream and --json do not combine; pick one")
        raise typer.Exit(2)
    rt = _runtime(workers=False, warm_ingest=False)
    try:
        plan = plan_answer(
            rt,
            kb=_kb_row(rt, kb),
            query=question,
            top_k=top_k,
            generator=generator,
            prompt=prompt,
            channel="cli",
        )
        if stream:
            result = {}
            for kind, data in stream_answer(rt, plan):
                if kind == "token":
                    sys.stdout.write(data)
                    sys.stdout.flush()
                else:
                    result = data
            sys.stdout.write("\n")
        else:
            result = run_answer(rt, plan)
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if not stream:
        console.print(result["answer"], markup=False, highlight=False)
    for c in result["citations"]:
        page = f", page {c['page_number']}" if c.get("page_number") else ""
        console.print(f"[{c['index']}] {c['filename']}{page}", markup=False, highlight=False)
    console.print(
        f"(answer {result['id']}; {result['generator']}, prompt "
        f"{result['prompt']['name']}@{result['prompt']['version']}, "
        f"index v{result['index_version']})",
        style="dim",
        markup=False,
        highlight=False,
    )


def _eval_table(run) -> Table:  # type: ignore[no-untyped-def]
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


@app.command(name="eval")
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
    from core.errors import RagopsError
    from eval.runs import get_run, submit_eval

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        run = submit_eval(
            rt,
            testset=testset,
            testset_version=version,
            kb=_kb_row(rt, kb),
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
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
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
        _fail(RuntimeError(f"eval run {run.id} failed: {run.error}"))
    else:
        console.print(_eval_table(run))
        console.print(
            f"run {run.id}: {run.completed_count} questions in {run.wall_seconds:.1f}s", style="dim"
        )


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="Jobs run at once (threads sharing the models)")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run a Celery worker: load the models once, then run jobs sent through the broker.

    Needs RAGOPS_CELERY_BROKER_URL (redis://... or amqp://...). Run one process per GPU;
    give the API RAGOPS_WORKERS=0 so only these processes ingest.

    Example: RAGOPS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 ragops worker --concurrency 2
    """
    from pydantic import ValidationError

    from core.celery_app import run_worker

    apply_offline_defaults()
    try:
        settings = get_settings()
    except ValidationError as exc:
        err.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    if not settings.celery_broker_url:
        err.print(
            "[red]error:[/red] RAGOPS_CELERY_BROKER_URL is not set; set "
            "RAGOPS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (or amqp://...) or run "
            "`ragops serve`, which has in-process workers"
        )
        raise typer.Exit(2)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_worker(settings, concurrency=concurrency, log_level=log_level)


bench_app = typer.Typer(
    help="Benchmarks: figures as ratios against a baseline run alongside.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


@bench_app.command("ingest")
def bench_ingest(
    docs: Annotated[int, typer.Option(min=1, help="Documents in the generated corpus")] = 40,
    words: Annotated[int, typer.Option(min=50, help="Words per document")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Our ingestion vs llama-index's IngestionPipeline on the same corpus and model.

    Example: ragops bench ingest --docs 40
    """
    try:
        from eval.bench.ingest import run
    except ImportError as exc:  # pragma: no cover - depends on the install
        _fail(RuntimeError(f"{exc}; install the bench extra: pip install 'ragops[bench]'"))
    apply_offline_defaults()
    report = run(docs, words)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(
        "pipeline",
        "seconds",
        "chunks",
        "docs/s",
        "× baseline",
        "seconds per stage",
        title=f"ingest: {report['documents']} docs, {report['words']} words",
    )
    for name, row in report["rows"].items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in (row.get("stages") or {}).items())
        table.add_row(
            name,
            f"{row['seconds']:.2f}",
            str(row["chunks"]),
            f"{row['docs_per_s']}",
            f"{row['speed_vs_baseline']}",
            stages,
        )
    console.print(table)


@bench_app.command("index")
def bench_index(
    n: Annotated[int, typer.Option(min=100, help="Chunks to index")] = 20_000,
    queries: Annotated[int, typer.Option(min=10, help="Queries per mode")] = 500,
    data: Annotated[str, typer.Option(help="random or clustered vectors")] = "random",
) -> None:
    """Search latency and recall: FAISS flat / hnsw / ivfpq and Qdrant local, same chunks.

    Example: ragops bench index --n 20000 --queries 500
    """
    from eval.bench.index_latency import main as bench_main

    if data not in ("random", "clustered"):
        raise typer.BadParameter("use random or clustered", param_hint="--data")
    bench_main(["--n", str(n), "--queries", str(queries), "--data", data])


testset_app = typer.Typer(help="Versioned evaluation test sets.", no_args_is_help=True)
app.add_typer(testset_app, name="testset")
register_generate(testset_app)
register_report(app)
register_gates(app)
app.add_typer(ab_app, name="ab")
app.add_typer(models_app, name="models")


@testset_app.command("upload")
def testset_upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl or .csv")],
    name: Annotated[str, typer.Option("--name", help="Test set name (new version if it exists)")],
    description: Annotated[str, typer.Option(help="Free text")] = "",
) -> None:
    """Upload cases (question, reference_answer, reference_contexts, reference_doc_ids,
    tags) as the next version of a test set.

    Example: ragops testset upload qa.jsonl --name smoke
    """
    from core.errors import RagopsError
    from eval.testsets import create_testset, parse_upload

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        cases = parse_upload(file.read_bytes(), filename=file.name)
        with rt.db.session() as s:
            row = create_testset(session=s, name=name, cases=cases, description=description)
            version, count = row.version, row.case_count
    except RagopsError as exc:
        _fail(exc)
    finally:
        rt.close()
    console.print(f"test set {name} version {version}: {count} cases")


@testset_app.command("list")
def testset_list() -> None:
    """List test sets and their versions.

    Example: ragops testset list
    """
    from eval.testsets import list_testsets

    rt = _runtime(workers=False, warm_ingest=False)
    try:
        with rt.db.session() as s:
            rows = [
                (t.name, str(t.version), t.source, str(t.case_count), t.created_at.isoformat())
                for t in list_testsets(session=s)
            ]
    finally:
        rt.close()
    table = Table("name", "version", "source", "cases", "created", title="test sets")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
