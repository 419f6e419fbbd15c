"""What one more document costs to publish into a FAISS version of 1k, 10k and 100k
vectors (index/faiss_index.py: append-only segments + a manifest switch).

Each size: a version holding N random unit vectors (one bulk segment, then a few
documents), then `--publishes` publishes of one document (`--chunks` chunks) exactly as
`IndexStore.writer` does them: copy the snapshot, upsert, `save(compact=False)`. Reports
the median / p90 time and the bytes and files written per publish, next to the size of
the whole index (what the single-file layout rewrote on every publish). A second run of
publishes merges inline (`save()`) to show the amortised cost including merges.

    .venv/bin/python tests/bench/bench_index_writes.py [--sizes 1000 10000 100000]

Prints one JSON object; `ratio` is largest size / smallest size (target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from index.faiss_index import FaissIndex  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def publish(
    index: FaissIndex, rng: np.random.Generator, n: int, chunks: int, *, compact: bool
) -> tuple[FaissIndex, float, int, int]:
    """One document, as the store's writer publishes it; returns the new snapshot, the
    seconds, bytes and files it took."""
    ids = [f"doc{n}-c{j}" for j in range(chunks)]
    payloads = [{"document_id": f"doc{n}", "page_number": j} for j in range(chunks)]
    vectors = unit_rows(rng, chunks, index.dimension)
    bytes_before, files_before = index.bytes_written, index.files_written
    start = time.perf_counter()
    writer = index.copy()
    writer.upsert(ids, vectors, payloads)
    writer.save(compact=compact)
    seconds = time.perf_counter() - start
    return (
        writer,
        seconds,
        writer.bytes_written - bytes_before,
        writer.files_written - files_before,
    )


def run_size(
    root: Path, size: int, dim: int, chunks: int, publishes: int, index_type: str, seed: int
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    path = root / f"n{size}"
    index = FaissIndex.open(path, dim, index_type=index_type)  # type: ignore[arg-type]
    for lo in range(0, size, 10_000):
        hi = min(size, lo + 10_000)
        ids = [f"bulk-{i}" for i in range(lo, hi)]
        index.upsert(ids, unit_rows(rng, hi - lo, dim), [{"document_id": "bulk"}] * (hi - lo))
    index.save()
    for n in range(3):  # a few documents already published: a realistic manifest
        index, *_ = publish(index, rng, -1 - n, chunks, compact=True)
    index_bytes = sum(p.stat().st_size for p in path.iterdir())

    times, sizes, files = [], [], []
    for n in range(publishes):
        index, seconds, written, count = publish(index, rng, n, chunks, compact=False)
        times.append(seconds)
        sizes.append(written)
        files.append(count)
    index.compact()

    steady_times, steady_bytes = [], []
    for n in range(publishes, publishes + 5 * publishes):
        index, seconds, written, _ = publish(index, rng, n, chunks, compact=True)
        steady_times.append(seconds)
        steady_bytes.append(written)
    return {
        "vectors": size,
        "publish_ms_p50": round(float(np.percentile(times, 50)) * 1000, 2),
        "publish_ms_p90": round(float(np.percentile(times, 90)) * 1000, 2),
        "bytes_per_publish": int(np.median(sizes)),
        "files_per_publish": int(np.median(files)),
        "index_bytes": index_bytes,
        "with_inline_merges": {
            "publishes": len(steady_times),
            "publish_ms_mean": round(float(np.mean(steady_times)) * 1000, 2),
            "publish_ms_max": round(float(np.max(steady_times)) * 1000, 2),
            "bytes_per_publish_mean": int(np.mean(steady_bytes)),
            "segments_after": len(index.layout()["segments"]),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunks", type=int, default=20, help="chunks per document")
    parser.add_argument("--publishes", type=int, default=30, help="publishes timed per size")
    parser.add_argument("--index-type", choices=["flat", "hnsw", "ivfpq"], default="flat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: tmp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ragops-writes-", dir=args.dir) as tmp:
        results = [
            run_size(
                Path(tmp), size, args.dim, args.chunks, args.publishes, args.index_type, args.seed
            )
            for size in args.sizes
        ]
    first, last = results[0], results[-1]
    report = {
        "index_type": args.index_type,
        "dim": args.dim,
        "chunks_per_document": args.chunks,
        "results": results,
        "ratio": {
            "sizes": f"{last['vectors']}/{first['vectors']}",
            "publish_ms_p50": round(last["publish_ms_p50"] / first["publish_ms_p50"], 2),
            "bytes_per_publish": round(last["bytes_per_publish"] / first["bytes_per_publish"], 3),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
