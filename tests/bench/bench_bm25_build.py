"""The FAISS path's in-process BM25 (`retrieval.bm25.Bm25Store`) on a large KB: a cold
build, a rebuild after a publish (every text already tokenised), one query, and memory.

    python -m tests.bench.bench_bm25_build --chunks 1000000

Uses the KBs of the /retrieve HTTP benchmark (`tests.bench.retrieve_http_corpus`: real
mlqa passages plus perturbed copies, built and cached on first use). A publish moves
the version's generation; every API process then rebuilds its BM25 on its next hybrid
query, reading the version's chunk ids and hashes and only the texts it has not
tokenised yet.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.config import Settings
from core.db import Database
from core.kbs import get_kb
from index.versions import queryable_version
from retrieval.bm25 import Bm25Store
from tests.bench import mlqa
from tests.bench.bench_retrieve_http import CACHE
from tests.bench.retrieve_http_corpus import KB, build_kb

RESULT = Path(__file__).resolve().parent / "results" / "bm25_build.json"


def _rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1e6, 2)
    return 0.0


def run(chunks: int, queries: int = 200) -> dict[str, Any]:
    data_dir = build_kb(CACHE, chunks)
    settings = Settings(_env_file=None, data_dir=data_dir)
    db = Database(settings.catalog_url)
    with db.session() as s:
        version = queryable_version(session=s, kb=get_kb(session=s, name_or_id=KB), number=None)
    assert version is not None
    store = Bm25Store(db)
    before = _rss_gb()
    t0 = time.perf_counter()
    index = store.for_version(version)
    cold = time.perf_counter() - t0
    after_cold = _rss_gb()
    version.generation += 1  # a publish, as readers see it (nothing new to tokenise)
    t0 = time.perf_counter()
    index = store.for_version(version)
    warm = time.perf_counter() - t0
    questions = [q.question for q in mlqa.load_questions("test")][:queries]
    spent = []
    for q in questions:
        t0 = time.perf_counter()
        index.search(q, 30)
        spent.append(time.perf_counter() - t0)
    ms = np.array(spent) * 1000
    return {
        "chunks": len(index),
        "cold_build_s": round(cold, 1),
        "rebuild_after_publish_s": round(warm, 1),
        "query_top30_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "query_top30_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "matrix_mb": round(index.matrix_bytes / 1e6, 1),
        "payload_codes_mb": round(index.payloads.nbytes / 1e6, 1),
        "rss_before_gb": before,
        "rss_after_build_gb": after_cold,
        "rss_now_gb": _rss_gb(),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args()
    report = run(args.chunks)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
