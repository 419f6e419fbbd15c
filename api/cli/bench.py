"""`ragops bench`: ingestion throughput and search latency, as ratios against a baseline
run alongside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.bench import index_latency, index_scale
from api.bench import ingest as ingest_bench
from api.bench import service as service_bench
from api.cli.helpers import console, fail
from core.config import apply_offline_defaults

bench_app = typer.Typer(
    help="Benchmarks: figures as ratios against a baseline run alongside.", no_args_is_help=True
)


@bench_app.command("ingest")
def bench_ingest(
    docs: Annotated[int, typer.Option(min=1, help="Documents in the generated corpus")] = 40,
    words: Annotated[int, typer.Option(min=50, help="Words per document")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Drive a fresh `ragops serve` over HTTP with a mixed-format en/es/ru corpus "
            "(the issue-12 benchmark) instead of the in-process pipeline",
        ),
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Files per upload request (--http)")] = 50,
    redaction: Annotated[
        str, typer.Option(help="Redaction settings to run with --http: off, on or off,on")
    ] = "off,on",
    baseline: Annotated[
        bool,
        typer.Option(help="Run the llama-index baseline (--http; off for long RSS runs)"),
    ] = True,
) -> None:
    """Our ingestion vs llama-index's IngestionPipeline on the same corpus and model.

    Example: ragops bench ingest --docs 40
             ragops bench ingest --http --docs 500 --json > result.json
    """
    chosen = tuple(s.strip() for s in redaction.split(",") if s.strip())
    if not chosen or any(s not in ("off", "on") for s in chosen):
        raise typer.BadParameter("use off, on or off,on", param_hint="--redaction")
    try:
        # The baseline needs the optional bench extra: say so before the long run starts.
        import llama_index.embeddings.huggingface  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        fail(RuntimeError(f"{exc}; install the bench extra: pip install 'ragops[bench]'"))
    apply_offline_defaults()
    if http:
        report = service_bench.run(
            docs, words=words, batch=batch, settings=chosen, baseline=baseline
        )
        if as_json:
            print(json.dumps(report, indent=2))
        else:
            _print_service(report)
        return
    report = ingest_bench.run(docs, words)
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


def _print_service(report: dict) -> None:  # type: ignore[type-arg]
    table = Table(
        "pipeline",
        "seconds",
        "docs/s",
        "chunks/s",
        "words/s",
        "× llama-index",
        "× (model tokens)",
        "peak RSS MB",
        "stage busy share",
        title=f"ingest over HTTP: {report['documents']} docs, {report['words']} words",
    )
    for name, row in report["rows"].items():
        shares = ", ".join(f"{k} {v:.2f}" for k, v in (row.get("stage_busy_share") or {}).items())
        table.add_row(
            name,
            f"{row['seconds']:.1f}",
            f"{row['docs_per_s']}",
            f"{row['chunks_per_s']}",
            f"{row['words_per_s']}",
            f"{row.get('speed_vs_llama_index', '—')}",
            f"{row.get('speed_vs_llama_index_model_tokens', '—')}",
            str(row.get("peak_rss_mb", "")),
            shares,
        )
    console.print(table)


@bench_app.command("index")
def bench_index(
    n: Annotated[
        int | None, typer.Option(min=100, help="Chunks to index (synthetic vectors; default 20000)")
    ] = None,
    queries: Annotated[int, typer.Option(min=10, help="Queries per mode")] = 500,
    data: Annotated[
        str | None, typer.Option(help="random or clustered synthetic vectors (without --scale)")
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option(
            help="Real embeddings instead: 100k, 1m or a count (2000 is a smoke size); "
            "build, write cost, p50/p99, recall@10, memory and disk, dense and hybrid"
        ),
    ] = None,
    engines: Annotated[
        str,
        typer.Option(help=f"With --scale: comma-separated, of {', '.join(index_scale.ENGINES)}"),
    ] = ",".join(index_scale.ENGINES),
    real: Annotated[
        int | None,
        typer.Option(min=100, help="With --scale: real chunks (the rest perturbed copies)"),
    ] = None,
    engine_timeout: Annotated[
        float, typer.Option(min=1, help="With --scale: seconds one engine may take")
    ] = 1800.0,
    ef_search: Annotated[
        str,
        typer.Option(help="With --scale: faiss hnsw dense also at these ef_search values (64,256)"),
    ] = "",
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --scale: JSON result file, a .md table beside it "
            "(default data/bench/index_scale_<scale>.json)"
        ),
    ] = None,
) -> None:
    """Search latency and recall: FAISS flat / hnsw / ivfpq, Qdrant Edge and qdrant-client
    local mode, same chunks.

    Example: ragops bench index --n 20000 --queries 500
             ragops bench index --scale 100k
             ragops bench index --scale 1m --engines "faiss flat,faiss ivfpq"
             ragops bench index --scale 2000 --queries 40
    """
    if scale is None:
        if data not in (None, "random", "clustered"):
            raise typer.BadParameter("use random or clustered", param_hint="--data")
        args = ["--n", str(n or 20_000), "--queries", str(queries), "--data", data or "random"]
        index_latency.main(args)
        return
    if n is not None or data is not None:
        raise typer.BadParameter(
            "--scale measures real embeddings at its own size; leave out --n and --data",
            param_hint="--scale",
        )
    try:
        size = index_scale.parse_scale(scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from exc
    chosen = tuple(e.strip() for e in engines.split(",") if e.strip())
    unknown = sorted(set(chosen) - set(index_scale.ENGINES))
    if unknown:
        raise typer.BadParameter(
            f"unknown {unknown}; pick from {', '.join(index_scale.ENGINES)}", param_hint="--engines"
        )
    try:
        sweep = index_scale.parse_ef_search(ef_search)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ef-search") from exc
    apply_offline_defaults()
    target = out or Path("data") / "bench" / f"index_scale_{index_scale.human(size).lower()}.json"
    report = index_scale.run(
        size,
        queries=queries,
        engines=chosen,
        real=real,
        engine_timeout=engine_timeout,
        ef_search=sweep,
    )
    index_scale.write(report, target)
    console.print(index_scale.markdown(report), markup=False, highlight=False)
    console.print(f"results: {target} and {target.with_suffix('.md')}")


@bench_app.command("retrieval-latency")
def bench_retrieval_latency(
    chunks: Annotated[str, typer.Option(help="KB sizes, comma-separated")] = "10000,100000",
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients under load")] = 4,
    seconds: Annotated[float, typer.Option(min=0.5, help="Seconds per load phase")] = 10.0,
    baseline: Annotated[bool, typer.Option(help="Run the llama-index baseline")] = True,
) -> None:
    """/retrieve over HTTP (dense, hybrid) vs a hello-world route and llama-index's
    retriever; JSON to tests/bench/results/retrieve_http.json. Needs a source checkout
    (the benchmark and its question set live under tests/bench).

    Example: ragops bench retrieval-latency --chunks 10000,100000
    """
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "bench" / "bench_retrieve_http.py").exists():
        fail(RuntimeError(f"{root}/tests/bench is missing: run this from a source checkout"))
    apply_offline_defaults()
    args = ["--chunks", chunks, "--clients", str(clients), "--seconds", str(seconds)]
    if not baseline:
        args.append("--no-baseline")
    code = subprocess.call(
        [sys.executable, "-m", "tests.bench.bench_retrieve_http", *args], cwd=root
    )
    raise typer.Exit(code)
