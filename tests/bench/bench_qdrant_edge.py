"""Qdrant Edge vs FAISS flat vs qdrant-client's local mode (the embedded Qdrant before
Edge) on the same clustered vectors: build time and single-query latency.

    python tests/bench/bench_qdrant_edge.py                 # 20k x 384, 200 queries
    python tests/bench/bench_qdrant_edge.py --n 5000 --queries 50 --json /tmp/edge.json

Runs `api.bench.index_latency` (the same build, queries and recall@10 against FAISS flat)
for three backends and two modes (unfiltered; one document's chunks), and prints a
Markdown table for docs/benchmarks.md. Build time includes the final `save()`, which for
Edge is the HNSW build (in a child process); local mode has no index to build. FAISS runs
one OpenMP thread, Edge its default search pool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.index_latency import run  # noqa: E402

BACKENDS = ("qdrant edge", "qdrant-client local")
MODES = ("unfiltered", "filter 1 doc")


def table(report: dict[str, Any]) -> str:
    lines = [
        "| backend | build s | p50 ms | p99 ms | p50 ms, 1 doc | recall@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in report["backends"].items():
        plain, one_doc = entry["modes"]["unfiltered"], entry["modes"]["filter 1 doc"]
        lines.append(
            f"| {name} | {entry['build_s']:.2f} | {plain['p50_ms']:.2f} | "
            f"{plain['p99_ms']:.2f} | {one_doc['p50_ms']:.2f} | {plain['recall_at_10']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="vectors to index")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(
        args.n, args.queries, dim=args.dim, data="clustered", backends=BACKENDS, modes=MODES
    )
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"clustered n={args.n} dim={args.dim} queries={args.queries} top_k=10")
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
