"""Search latency and recall of every vector backend on the same chunks and queries.

    ragops bench index --n 20000 --queries 500
    python tests/bench/bench_index_latency.py --n 20000 --queries 500

Builds N random unit vectors (dimension 384, as all-MiniLM-L6-v2 produces) with
payloads in FAISS flat, FAISS hnsw, FAISS ivfpq, Qdrant Edge (the embedded Qdrant) and
qdrant-client's local mode (the embedded Qdrant before Edge; `--backends` picks), then
times single queries unfiltered and filtered. Prints p50/p99 per backend, the ratio to
FAISS flat measured in the same run, and recall@10 against FAISS flat (exact, so the
reference). Build time includes the final `save()` (Edge: its HNSW build).

Random vectors are the hard case for approximate indexes (no cluster structure), so
their recall here is a lower bound of what real embeddings get (`--data clustered` is the
friendlier case).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index.base import VectorIndex
from index.faiss_index import FaissIndex
from index.qdrant_index import QdrantIndex, close_client, make_client, open_collection

K = 10
DOCUMENTS = 200  # chunks per document = n / DOCUMENTS
SECTIONS = 3


def _payload(i: int) -> dict[str, Any]:
    return {
        "document_id": f"d{i % DOCUMENTS}",
        "section": f"s{i % SECTIONS}",
        "page_number": i % 50,
    }


# name → filter for one query (query index q): selective (one document) and broad (a third)
FILTER_MODES: dict[str, Callable[[int], dict[str, Any] | None]] = {
    "unfiltered": lambda q: None,
    "filter 1 doc": lambda q: {"document_id": f"d{q % DOCUMENTS}"},
    "filter 1/3": lambda q: {"section": f"s{q % SECTIONS}"},
}


BACKENDS = ("faiss flat", "faiss hnsw", "faiss ivfpq", "qdrant edge", "qdrant-client local")


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _build(index: VectorIndex, ids: list[str], vectors: np.ndarray) -> float:
    start = time.perf_counter()
    for lo in range(0, len(ids), 1000):
        hi = min(len(ids), lo + 1000)
        index.upsert(ids[lo:hi], vectors[lo:hi], [_payload(i) for i in range(lo, hi)])
    index.save()
    return time.perf_counter() - start


def _time_queries(
    index: VectorIndex, queries: np.ndarray, mode: Callable[[int], dict[str, Any] | None]
) -> tuple[np.ndarray, list[list[str]]]:
    latencies, results = [], []
    index.search(queries[0], K, mode(0))  # warm-up (lazy structures, caches)
    for q, query in enumerate(queries):
        filters = mode(q)
        start = time.perf_counter()
        hits = index.search(query, K, filters)
        latencies.append(time.perf_counter() - start)
        results.append([h.chunk_id for h in hits])
    return np.array(latencies) * 1000.0, results


def run(
    n: int = 20_000,
    queries: int = 500,
    dim: int = 384,
    seed: int = 0,
    faiss_threads: int | None = 1,
    data: str = "random",
    backends: tuple[str, ...] = BACKENDS,
    modes: tuple[str, ...] = tuple(FILTER_MODES),
) -> dict[str, Any]:
    """Build every backend on the same data and time the same queries.

    `faiss_threads=1` times one query on one core, as a server handling concurrent
    requests sees it (and keeps OpenMP spin-waits out of the tail); None keeps FAISS's
    default. `data="clustered"` draws each document's chunks around its own centre,
    closer to how real embeddings group by topic than uniform random vectors. `backends`
    and `modes` pick among BACKENDS and FILTER_MODES (FAISS flat always runs: the
    reference).

    Returns {"n", "queries", "dim", "backends": {name: {"build_s", "trained"?, "modes":
    {mode: {"p50_ms", "p99_ms", "p50_ratio_vs_flat", "p99_ratio_vs_flat",
    "recall_at_10"}}}}}.
    """
    if faiss_threads is not None:
        import faiss

        faiss.omp_set_num_threads(faiss_threads)
    rng = np.random.default_rng(seed)
    if data == "random":
        vectors = _unit(rng, n, dim)
    elif data == "clustered":
        centres = _unit(rng, DOCUMENTS, dim)
        vectors = centres[np.arange(n) % DOCUMENTS] + 0.8 * _unit(rng, n, dim)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    else:
        raise ValueError(f"data {data!r} is not 'random' or 'clustered'")
    # queries near stored vectors, as real questions land near their passages
    picks = rng.integers(0, n, queries)
    query_vectors = vectors[picks] + 0.3 * _unit(rng, queries, dim)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    ids = [f"{i:032x}" for i in range(n)]

    report: dict[str, Any] = {
        "n": n,
        "queries": queries,
        "dim": dim,
        "data": data,
        "faiss_threads": faiss_threads,
        "backends": {},
    }
    unknown = sorted(set(backends) - set(BACKENDS)) + sorted(set(modes) - set(FILTER_MODES))
    if unknown:
        raise ValueError(f"unknown backends or modes {unknown}; pick from {BACKENDS}")
    with tempfile.TemporaryDirectory(prefix="ragops-bench-") as tmp:
        root = Path(tmp)
        edge = make_client(path=root / "qdrant")
        clients: list[Any] = []

        def local_mode() -> VectorIndex:
            from qdrant_client import QdrantClient

            clients.append(QdrantClient(path=str(root / "qdrant-local")))
            return QdrantIndex.open(clients[-1], "b", dim)

        openers: dict[str, Callable[[], VectorIndex]] = {
            "faiss flat": lambda: FaissIndex.open(root / "flat", dim),
            "faiss hnsw": lambda: FaissIndex.open(root / "hnsw", dim, index_type="hnsw"),
            "faiss ivfpq": lambda: FaissIndex.open(root / "ivfpq", dim, index_type="ivfpq"),
            "qdrant edge": lambda: open_collection(edge, "b", dim),
            "qdrant-client local": local_mode,
        }
        reference: dict[str, list[list[str]]] = {}
        flat_latency: dict[str, np.ndarray] = {}
        try:
            for name, opener in openers.items():
                if name != "faiss flat" and name not in backends:
                    continue
                index = opener()
                entry: dict[str, Any] = {"build_s": round(_build(index, ids, vectors), 2)}
                if isinstance(index, FaissIndex):
                    entry["trained"] = index.trained
                entry["modes"] = {}
                for mode_name, mode in FILTER_MODES.items():
                    if mode_name not in modes:
                        continue
                    latency, results = _time_queries(index, query_vectors, mode)
                    if name == "faiss flat":
                        reference[mode_name], flat_latency[mode_name] = results, latency
                    ref = reference[mode_name]
                    found = sum(len(set(r) & set(e)) for r, e in zip(results, ref, strict=True))
                    p50, p99 = np.percentile(latency, [50, 99])
                    f50, f99 = np.percentile(flat_latency[mode_name], [50, 99])
                    entry["modes"][mode_name] = {
                        "p50_ms": round(float(p50), 3),
                        "p99_ms": round(float(p99), 3),
                        "p50_ratio_vs_flat": round(float(p50 / f50), 2),
                        "p99_ratio_vs_flat": round(float(p99 / f99), 2),
                        "recall_at_10": round(found / max(1, sum(len(e) for e in ref)), 4),
                    }
                report["backends"][name] = entry
        finally:
            close_client(edge)
            for client in clients:
                client.close()
    return report


def _print(report: dict[str, Any]) -> None:
    print(
        f"data={report['data']} n={report['n']} dim={report['dim']} "
        f"queries={report['queries']} top_k={K} "
        f"faiss_threads={report['faiss_threads'] or 'default'}"
    )
    header = f"{'backend':<20}{'mode':<14}{'p50 ms':>9}{'p99 ms':>9}{'x flat p50':>11}"
    header += f"{'x flat p99':>11}{'recall@10':>10}"
    print(header)
    for name, entry in report["backends"].items():
        extra = f" (build {entry['build_s']} s" + (
            f", trained={entry['trained']})" if "trained" in entry else ")"
        )
        print(name + extra)
        for mode, m in entry["modes"].items():
            print(
                f"{'':<20}{mode:<14}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}"
                f"{m['p50_ratio_vs_flat']:>11.2f}{m['p99_ratio_vs_flat']:>11.2f}"
                f"{m['recall_at_10']:>10.3f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="chunks to index")
    parser.add_argument("--queries", type=int, default=500, help="queries per mode")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=["random", "clustered"], default="random")
    parser.add_argument(
        "--faiss-threads", type=int, default=1, help="OpenMP threads for FAISS (0: default)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, of: {', '.join(BACKENDS)} (FAISS flat always runs)",
    )
    args = parser.parse_args(argv)
    threads = args.faiss_threads or None
    _print(
        run(
            args.n,
            args.queries,
            dim=args.dim,
            seed=args.seed,
            faiss_threads=threads,
            data=args.data,
            backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        )
    )


if __name__ == "__main__":
    main()
