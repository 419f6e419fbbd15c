"""Index engines at scale: FAISS flat / hnsw / ivfpq, Qdrant Edge and qdrant-client's local
mode on the same real vectors, dense and hybrid, with and without a one-document filter.

    ragops bench index --scale 100k
    ragops bench index --scale 1m --engines "faiss flat,faiss ivfpq"
    python tests/bench/bench_index_scale.py --scale 2000 --queries 40   # smoke size

Data (`api.bench.scale_corpus`): up to 100k real chunks (the QA set's passages, then this
machine's manual pages) embedded with all-MiniLM-L6-v2, cached under data/bench-cache/.
Past 100k (`1m`) each real vector is copied with Gaussian noise (`--noise` per
coordinate, then renormalised; copy c of a chunk belongs to its own document "<doc>~c"
and keeps the chunk's text). Queries: the QA set's questions, embedded as queries, their
text on the BM25 side.

Each engine runs in its own child process (so its memory is its own and a run that
overstays `--engine-timeout` is stopped and reported, never dropped), through the
project's index classes, as the product drives them:
- build: upserts in batches of BATCH, then `save()` (FAISS: one segment of the type, an
  IVF-PQ trained on every vector; Edge: a flush, see below);
- write cost: WRITES documents of real chunks (perturbed copies, new ids) added one at a
  time to the built index: FAISS `copy()` + `upsert` + `save(compact=False)` (what
  `IndexStore.writer` publishes), the Qdrant engines `upsert` + `save()`; then, on Edge,
  one `EdgeIndex._rebuild` (what `save()` runs once enough vectors wait unindexed: the
  shard copied, optimized in a child process and swapped in) and a plain copy of the
  shard's files, the share an in-place optimize would save;
- Edge twice: "qdrant edge" as `save()` leaves a shard with BM25 sparse vectors (Edge
  0.9 counts those as indexed vectors, so `save()` never finds dense vectors waiting and
  the shard stays one plain segment, searched exactly), and "qdrant edge +hnsw" with one
  `_rebuild` after the upserts, as `save()` would do without that miscount (HNSW built);
- queries: one at a time, top 10; FAISS with one OpenMP thread (a server's request), the
  Qdrant engines with their own defaults. Hybrid is each engine's product path: FAISS
  dense (`pool` candidates) + the in-process BM25 (`retrieval.bm25.Bm25Index`) fused in
  Python by the model's fusion policy; the Qdrant engines one `search_hybrid` query
  (dense + BM25 sparse prefetch, weighted RRF inside the engine);
- recall@10 against exact search: dense against FAISS flat; FAISS hybrid against FAISS
  flat's (flat dense + BM25, exact); the Qdrant engines' hybrid against plain Edge's
  (exact dense + sparse, fused by the engine), with the overlap of their top 10 with
  the FAISS path's beside it (two different fusions: it is no recall);
- memory: the child's RSS after build and queries minus before (the data set is loaded
  before), and its peak; disk: bytes allocated under the engine's folder.

Every figure also appears as a ratio to FAISS flat in the same run (`x_flat`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from api.bench.scale_corpus import Corpus, load_corpus
from index.edge_index import INDEXING_THRESHOLD_KB, EdgeShards, _copy_file
from index.faiss_index import FaissIndex
from index.qdrant_index import QdrantIndex
from index.sparse import tokenize
from retrieval.bm25 import Bm25Index
from retrieval.fusion import detect_language, engine_fusion, fuse_scores, fusion_policy
from retrieval.search import MAX_CANDIDATES, MIN_CANDIDATES

K = 10
BATCH = 4096
WRITES = 20  # documents added one at a time after the build
REAL_MAX = 100_000
ENGINES = (
    "faiss flat",
    "faiss hnsw",
    "faiss ivfpq",
    "qdrant edge",
    "qdrant edge +hnsw",
    "qdrant-client local",
)
MODES = ("dense", "dense, 1 doc", "hybrid", "hybrid, 1 doc")
SCALES = {"100k": 100_000, "1m": 1_000_000}
# qdrant-client's local mode scans in Python (~50 ms a query at 20k, ~160 ms filtered):
# it answers this many of the queries, the first ones (its recall is on those)
LOCAL_MODE_QUERIES = 100
ROOT = Path(__file__).resolve().parents[2]
# Edge as `save()` leaves a lexical shard: the reference of the Qdrant engines' hybrid
# answers. It was exact when Edge built no HNSW for lexical shards; since b385de5 `save()`
# builds one past the threshold, so at scale it is approximate too (docs/benchmarks.md).
EXACT_EDGE = "qdrant edge"


def parse_scale(text: str) -> int:
    """'100k', '1m', '2000', '20k' → a vector count; ValueError for anything else."""
    text = text.strip().lower()
    if text in SCALES:
        return SCALES[text]
    match = re.fullmatch(r"(\d+)([km]?)", text)
    if not match:
        raise ValueError(f"scale {text!r} is not 100k, 1m or a count such as 2000 or 20k")
    n = int(match.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[match.group(2)]
    if n < 100:
        raise ValueError(f"scale {text!r} is under 100 vectors")
    return n


def parse_ef_search(text: str) -> tuple[int, ...]:
    """'64,128,256' → (64, 128, 256); '' → (); ValueError for anything else."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"{text!r}: give whole numbers separated by commas, such as 64,128,256"
        ) from None
    if any(v < 1 or v > 4096 for v in values):
        raise ValueError("each ef_search is 1 to 4096")
    return values


def human(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# -- the data set, shared with the children through files --------------------------------


def prepare(
    n: int, work: Path, *, queries: int, real: int | None, noise: float, seed: int
) -> dict[str, Any]:
    """Write the data set of `n` vectors under `work` (module docstring); its description."""
    real = min(n, REAL_MAX if real is None else real)
    corpus: Corpus = load_corpus(real, ROOT, queries=queries)
    copies = math.ceil(n / real)
    vectors = np.empty((n, corpus.vectors.shape[1]), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for c in range(copies):
        lo, hi = c * real, min(n, (c + 1) * real)
        base = corpus.vectors[: hi - lo]
        if c == 0:
            vectors[lo:hi] = base
            continue
        noisy = base + rng.standard_normal(base.shape, dtype=np.float32) * noise
        vectors[lo:hi] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    np.save(work / "vectors.npy", vectors)
    np.save(work / "queries.npy", corpus.query_vectors)
    relevant = _relevant_documents(corpus)
    meta = {
        "n": n,
        "real": real,
        "copies": copies,
        "noise": noise if copies > 1 else 0.0,
        "texts": corpus.texts,
        "documents": corpus.documents,
        "languages": corpus.languages,
        "queries": corpus.queries,
        "query_documents": relevant,
        "corpus_digest": corpus.digest,
        "sources": corpus.sources,
    }
    (work / "meta.json").write_text(json.dumps(meta))
    return {k: v for k, v in meta.items() if k not in ("texts", "documents", "languages")} | {
        "queries": len(corpus.queries),
        "query_documents": len(set(relevant)),
    }


def _relevant_documents(corpus: Corpus) -> list[str]:
    """The document each query filters on in the one-document modes: the document of its
    nearest real chunk (real questions filtered to the document they are about)."""
    scores = corpus.query_vectors @ corpus.vectors.T
    return [corpus.documents[int(i)] for i in np.argmax(scores, axis=1)]


class Data:
    """The data set as a child process reads it back."""

    def __init__(self, work: Path) -> None:
        meta = json.loads((work / "meta.json").read_text())
        self.n, self.real = int(meta["n"]), int(meta["real"])
        self.vectors = np.load(work / "vectors.npy")
        self.query_vectors = np.load(work / "queries.npy")
        self.queries: list[str] = meta["queries"]
        self.query_documents: list[str] = meta["query_documents"]
        self._texts: list[str] = meta["texts"]
        self._documents: list[str] = meta["documents"]
        self.dimension = int(self.vectors.shape[1])

    def ids(self, lo: int, hi: int) -> list[str]:
        return [f"c{i}" for i in range(lo, hi)]

    def texts(self, lo: int, hi: int) -> list[str]:
        return [self._texts[i % self.real] for i in range(lo, hi)]

    def payloads(self, lo: int, hi: int) -> list[dict[str, Any]]:
        out = []
        for i in range(lo, hi):
            copy = i // self.real
            document = self._documents[i % self.real]
            out.append(
                {
                    "document_id": document if copy == 0 else f"{document}~{copy}",
                    "page_number": i % 50,
                }
            )
        return out

    def tokens(self) -> list[list[str]]:
        """The BM25 tokens of every chunk (copies share their original's list)."""

        real = [tokenize(t) for t in self._texts]
        return [real[i % self.real] for i in range(self.n)]

    def write_documents(
        self, count: int
    ) -> list[tuple[list[str], np.ndarray, list[Any], list[str]]]:
        """`count` new documents to add: the chunks of real documents of 5 to 40 chunks,
        as perturbed copies under new ids (id, vectors, payloads, texts each)."""
        rows: dict[str, list[int]] = {}
        for i, document in enumerate(self._documents):
            rows.setdefault(document, []).append(i)
        picked = [r for r in rows.values() if 5 <= len(r) <= 40][:count]
        rng = np.random.default_rng(7)
        out = []
        for d, members in enumerate(picked):
            base = self.vectors[members]
            noisy = base + rng.standard_normal(base.shape, dtype=np.float32) * 0.02
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            ids = [f"w{d}-{j}" for j in range(len(members))]
            payloads = [
                {"document_id": f"written-{d}", "page_number": j} for j in range(len(members))
            ]
            out.append((ids, noisy, payloads, [self._texts[i] for i in members]))
        return out


# -- measurements inside a child -------------------------------------------------------------


def _status(field: str) -> float:
    """A /proc/self/status field in MB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def disk_bytes(path: Path) -> int:
    """Bytes allocated under `path` (holes of preallocated files do not count)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _percentiles(latencies: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3)}


def pool_size() -> int:
    """Candidates per list in a hybrid query, as `retrieval.search` takes them for top 10."""

    return min(MAX_CANDIDATES, max(MIN_CANDIDATES, 4 * K))


def _open_engine(engine: str, folder: Path, dimension: int) -> tuple[Any, Callable[[], None]]:
    """The engine's index in `folder` and how to close it."""

    if engine.startswith("faiss"):
        kind = engine.split()[1]
        return FaissIndex.open(folder, dimension, index_type=kind), lambda: None  # type: ignore[arg-type]
    if engine.startswith("qdrant edge"):
        shards = EdgeShards(folder)
        return shards.open("bench", dimension, lexical=True), shards.close
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(folder))
    return QdrantIndex.open(client, "bench", dimension, lexical=True), client.close


def measure(engine: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Build, write to and query one engine (module docstring); the figures and the raw
    top-10 ids per mode (for recall in the parent)."""
    import faiss

    data = Data(work)
    queries = options["queries"]
    if engine == "qdrant-client local":
        queries = min(queries, options["local_queries"])
    folder = work / engine.replace(" ", "-")
    faiss_engine = engine.startswith("faiss")
    out: dict[str, Any] = {"engine": engine, "n": data.n, "queries": queries}
    rss0 = _status("VmRSS")
    _reset_peak()

    index, close = _open_engine(engine, folder, data.dimension)
    started = time.perf_counter()
    for lo in range(0, data.n, BATCH):
        hi = min(data.n, lo + BATCH)
        args = (data.ids(lo, hi), data.vectors[lo:hi], data.payloads(lo, hi))
        if faiss_engine:
            index.upsert(*args)
        else:
            index.upsert(*args, texts=data.texts(lo, hi))
    index.save()
    if engine == "qdrant edge +hnsw":
        # what save() does once enough vectors wait unindexed (module docstring)
        index._rebuild(purge=False)
    out["build_s"] = round(time.perf_counter() - started, 2)
    if faiss_engine:
        out["trained"] = index.trained
        out["segments"] = len(index.layout()["segments"])
    out["rss_after_build_mb"] = round(_status("VmRSS") - rss0, 1)

    bm25 = None
    if faiss_engine:  # the FAISS path's lexical side: an in-process BM25 per version
        tokens = data.tokens()
        payloads = data.payloads(0, data.n)
        ids = data.ids(0, data.n)
        rss = _status("VmRSS")
        started = time.perf_counter()
        bm25 = Bm25Index.from_tokens(tokens, ids=ids, payloads=payloads)
        out["bm25_build_s"] = round(time.perf_counter() - started, 2)
        out["bm25_rss_mb"] = round(_status("VmRSS") - rss, 1)
        del tokens

    pool = pool_size()
    policy = fusion_policy("all-MiniLM-L6-v2")
    languages = [detect_language(q) for q in data.queries[:queries]]
    if faiss_engine:
        faiss.omp_set_num_threads(1)

    def dense(q: int, filters: dict[str, Any] | None) -> list[str]:
        return [h.chunk_id for h in index.search(data.query_vectors[q], K, filters)]

    def faiss_hybrid(q: int, filters: dict[str, Any] | None) -> list[str]:
        text = data.queries[q]
        hits = index.search(data.query_vectors[q], pool, filters)
        lexical = bm25.search(text, pool, filters)  # type: ignore[union-attr]
        fused = fuse_scores(
            [(h.chunk_id, h.score) for h in hits],
            [(bm25.ids[r], s) for r, s in lexical],  # type: ignore[union-attr]
            policy.weight(languages[q], text),
            policy.method,
        )
        return [str(i) for i, _ in fused[:K]]

    def engine_hybrid(q: int, filters: dict[str, Any] | None) -> list[str]:
        text = data.queries[q]
        fusion = engine_fusion(policy, languages[q], text)
        hits = index.search_hybrid(
            data.query_vectors[q], text, 2 * pool, filters, fusion=fusion, candidates=pool
        )
        return [h.chunk_id for h in hits[:K]]

    hybrid = faiss_hybrid if faiss_engine else engine_hybrid
    out["modes"] = {}
    results: dict[str, list[list[str]]] = {}
    for mode in options["modes"]:
        search = hybrid if mode.startswith("hybrid") else dense
        one_doc = mode.endswith("1 doc")

        def filters_of(q: int, one_doc: bool = one_doc) -> dict[str, Any] | None:
            return {"document_id": data.query_documents[q]} if one_doc else None

        search(0, filters_of(0))  # warm-up: lazy structures, caches
        latencies, found = [], []
        for q in range(queries):
            filters = filters_of(q)
            started = time.perf_counter()
            ids = search(q, filters)
            latencies.append(time.perf_counter() - started)
            found.append(ids)
        results[mode] = found
        out["modes"][mode] = _percentiles(latencies)
    if engine == "faiss hnsw" and options.get("ef_search"):
        out["ef_sweep"], results["ef_sweep"] = _ef_sweep(folder, data, queries, options)
    out["rss_mb"] = round(_status("VmRSS") - rss0, 1)
    out["peak_rss_mb"] = round(_status("VmHWM") - rss0, 1)
    if faiss_engine:
        faiss.omp_set_num_threads(os.cpu_count() or 1)

    out["write"] = _writes(engine, index, data, options["writes"])
    if engine.startswith("qdrant edge") and options.get("edge_rebuild", True):
        out["rebuild"] = _edge_rebuild(index, folder)
    close()
    out["disk_mb"] = round(disk_bytes(folder) / 2**20, 1)
    out["results"] = results
    return out


def _ef_sweep(
    folder: Path, data: Data, queries: int, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dense queries on the built HNSW version reopened with each `ef_search` (a
    search-time knob): latency per value, and the top-10 ids for recall in the parent."""
    figures: dict[str, Any] = {}
    found: dict[str, list[list[str]]] = {}
    for ef in options["ef_search"]:
        index = FaissIndex.open(
            folder, data.dimension, index_type="hnsw", index_params={"ef_search": ef}
        )
        index.search(data.query_vectors[0], K)  # warm-up
        latencies, answers = [], []
        for q in range(queries):
            started = time.perf_counter()
            answers.append([h.chunk_id for h in index.search(data.query_vectors[q], K)])
            latencies.append(time.perf_counter() - started)
        figures[str(ef)] = _percentiles(latencies)
        found[str(ef)] = answers
    return figures, found


def _writes(engine: str, index: Any, data: Data, count: int) -> dict[str, Any]:
    """Add `count` documents one at a time; per-document seconds (p50, p90, max)."""
    documents = data.write_documents(count)
    seconds: list[float] = []
    for ids, vectors, payloads, texts in documents:
        started = time.perf_counter()
        if engine.startswith("faiss"):
            writer = index.copy()
            writer.upsert(ids, vectors, payloads)
            writer.save(compact=False)
            index = writer
        else:
            index.upsert(ids, vectors, payloads, texts=texts)
            index.save()
        seconds.append(time.perf_counter() - started)
    ms = np.array(seconds) * 1000.0
    return {
        "documents": len(documents),
        "chunks_per_document": round(sum(len(d[0]) for d in documents) / max(1, len(documents)), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def _edge_rebuild(index: Any, folder: Path) -> dict[str, Any]:
    """What Edge's rebuild costs at this size (`EdgeIndex._rebuild`, which `save()` runs
    once INDEXING_THRESHOLD_KB of vectors wait unindexed, and `erase` always): the shard
    copied, optimized in a child process, swapped in; and a plain copy of the shard's
    files alone, the share an in-place optimize would save."""

    shard = folder / "bench"
    started = time.perf_counter()
    shutil.copytree(shard, folder / "copy", copy_function=_copy_file)
    copy_s = time.perf_counter() - started
    shutil.rmtree(folder / "copy")
    started = time.perf_counter()
    index._rebuild(purge=False)
    return {
        "threshold_vectors": INDEXING_THRESHOLD_KB * 1024 // (4 * index.dimension),
        "rebuild_s": round(time.perf_counter() - started, 2),
        "shard_copy_s": round(copy_s, 2),
        "shard_mb": round(disk_bytes(shard) / 2**20, 1),
    }


def _child(engine: str, work: str, options: dict[str, Any], conn: Any) -> None:
    os.setpgrp()  # the parent stops the whole group (Edge's optimizer child included)
    try:
        conn.send(measure(engine, Path(work), options))
    except BaseException as exc:  # noqa: BLE001 - reported in the parent's table
        conn.send({"engine": engine, "error": f"{type(exc).__name__}: {exc}"[:500]})
    finally:
        conn.close()


def _run_child(engine: str, work: Path, options: dict[str, Any], timeout: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(engine, str(work), options, send))
    started = time.perf_counter()
    process.start()
    send.close()
    result: dict[str, Any] | None = None
    if receive.poll(timeout):
        try:
            result = receive.recv()
        except EOFError:
            result = None
    process.join(5)
    if process.is_alive() or result is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.join()
        if result is None:
            elapsed = time.perf_counter() - started
            why = (
                f"did not finish within {timeout:.0f} s (--engine-timeout)"
                if elapsed >= timeout
                else f"the child process died (exit {process.exitcode})"
            )
            result = {"engine": engine, "error": why}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


# -- the run -------------------------------------------------------------------------------


def _recall(found: list[list[str]], reference: list[list[str]]) -> float:
    hit = sum(len(set(f) & set(r)) for f, r in zip(found, reference, strict=False))
    total = sum(len(r) for r in reference[: len(found)])
    return round(hit / max(1, total), 4)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def run(
    scale: str | int = "2000",
    *,
    queries: int = 500,
    engines: tuple[str, ...] = ENGINES,
    modes: tuple[str, ...] = MODES,
    real: int | None = None,
    noise: float = 0.02,
    seed: int = 0,
    writes: int = WRITES,
    local_queries: int = LOCAL_MODE_QUERIES,
    engine_timeout: float = 1800.0,
    edge_rebuild: bool = True,
    ef_search: tuple[int, ...] = (),
    work_root: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark (module docstring); the report. FAISS flat always runs, first:
    it is the baseline (ratios) and the exact reference (recall)."""
    n = scale if isinstance(scale, int) else parse_scale(scale)
    unknown = sorted(set(engines) - set(ENGINES)) + sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown engines or modes {unknown}; engines: {', '.join(ENGINES)}")
    chosen = ["faiss flat", *[e for e in ENGINES if e in engines and e != "faiss flat"]]
    started = time.perf_counter()
    report: dict[str, Any] = {
        "scale": human(n),
        "n": n,
        "top_k": K,
        "modes": list(modes),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="ragops-bench-scale-", dir=work_root) as tmp:
        work = Path(tmp)
        report["data"] = prepare(n, work, queries=queries, real=real, noise=noise, seed=seed)
        options: dict[str, Any] = {
            "queries": report["data"]["queries"],
            "local_queries": local_queries,
            "modes": list(modes),
            "writes": writes,
            "edge_rebuild": edge_rebuild,
            "ef_search": list(ef_search),
        }
        report["engines"] = {}
        baseline: dict[str, Any] | None = None
        for engine in chosen:
            result = _run_child(engine, work, options, engine_timeout)
            if engine == "faiss flat":
                if "error" in result:
                    raise RuntimeError(f"the FAISS flat baseline failed: {result['error']}")
                baseline = result
            report["engines"][engine] = result
            shutil.rmtree(work / engine.replace(" ", "-"), ignore_errors=True)
        assert baseline is not None
        answers = {e: r.pop("results", None) for e, r in report["engines"].items()}
        for engine, result in report["engines"].items():
            _score(
                result, answers[engine], baseline, answers["faiss flat"], answers.get(EXACT_EDGE)
            )
        report["not_run"] = {e: "not selected (--engines)" for e in ENGINES if e not in chosen}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def _score(
    result: dict[str, Any],
    answers: dict[str, list[list[str]]] | None,
    baseline: dict[str, Any],
    exact: dict[str, list[list[str]]],
    edge: dict[str, list[list[str]]] | None,
) -> None:
    """Recall against exact answers (module docstring) and ratios to the baseline's
    figures, in place."""
    if "error" in result or answers is None:
        return
    faiss_engine = result["engine"].startswith("faiss")
    for ef, figures in result.get("ef_sweep", {}).items():
        figures["recall_at_10"] = _recall(answers["ef_sweep"][ef], exact["dense"])
        figures["p50_x_flat"] = _ratio(figures["p50_ms"], baseline["modes"]["dense"]["p50_ms"])
    for mode, figures in result["modes"].items():
        flat = baseline["modes"][mode]
        if mode.startswith("hybrid") and not faiss_engine:
            reference = edge[mode] if edge is not None else None
            figures["recall_at_10"] = _recall(answers[mode], reference) if reference else None
            figures["overlap_with_faiss_hybrid"] = _recall(answers[mode], exact[mode])
        else:
            figures["recall_at_10"] = _recall(answers[mode], exact[mode])
        figures["p50_x_flat"] = _ratio(figures["p50_ms"], flat["p50_ms"])
        figures["p99_x_flat"] = _ratio(figures["p99_ms"], flat["p99_ms"])
    for key in ("build_s", "rss_mb", "disk_mb"):
        result[f"{key}_x_flat"] = _ratio(result.get(key), baseline.get(key))
    result["write"]["p50_x_flat"] = _ratio(result["write"]["p50_ms"], baseline["write"]["p50_ms"])


def markdown(report: dict[str, Any]) -> str:
    """Two tables for docs/benchmarks.md: cost (build, write, memory, disk) and search
    (latency and recall per mode), each figure with its ratio to FAISS flat."""
    data = report["data"]
    made = (
        f"{data['real']:,} real chunks"
        if data["copies"] == 1
        else f"{data['real']:,} real chunks x {data['copies']} (copies: Gaussian noise "
        f"sigma {data['noise']} per coordinate, renormalised)"
    )
    lines = [
        f"{report['scale']} vectors (dim 384, all-MiniLM-L6-v2): {made}; "
        f"{data['queries']} real questions, top {report['top_k']}; corpus {data['corpus_digest']}",
        "",
        "| engine | build s | write ms/doc p50 | RSS MB | disk MB | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]

    def cell(value: Any, ratio: Any, digits: int = 1) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"
        return f"{text} ({ratio}x)" if ratio is not None else text

    for engine, r in report["engines"].items():
        if "error" in r:
            lines.append(
                f"| {engine} | — | — | — | — | not measured at {report['scale']}: {r['error']} |"
            )
            continue
        notes = []
        if "bm25_build_s" in r:
            notes.append(f"+ BM25 {r['bm25_build_s']} s, {r['bm25_rss_mb']:.0f} MB per process")
        if "trained" in r and not r["trained"]:
            notes.append("untrained: served exact")
        if "rebuild" in r:
            rb = r["rebuild"]
            notes.append(
                f"rebuild (copy + optimize + swap) {rb['rebuild_s']} s, of which copying "
                f"the {rb['shard_mb']:.0f} MB shard {rb['shard_copy_s']} s"
            )
        if r["queries"] < data["queries"]:
            notes.append(f"{r['queries']} queries")
        lines.append(
            f"| {engine} | {cell(r['build_s'], r['build_s_x_flat'])} | "
            f"{cell(r['write']['p50_ms'], r['write']['p50_x_flat'], 2)} | "
            f"{cell(r['rss_mb'], r['rss_mb_x_flat'], 0)} | "
            f"{cell(r['disk_mb'], r['disk_mb_x_flat'], 0)} | "
            f"{'; '.join(notes)} |"
        )
    for engine, why in report.get("not_run", {}).items():
        lines.append(f"| {engine} | — | — | — | — | {why} |")
    modes = report["modes"]
    lines += [
        "",
        "| engine | "
        + " | ".join(f"{m} p50 / p99 ms" for m in modes)
        + " | "
        + " | ".join(f"recall@10 {m}" for m in modes)
        + " |",
        "|---|" + "---:|" * (2 * len(modes)),
    ]
    for engine, r in report["engines"].items():
        if "error" in r:
            continue
        latency = [
            f"{r['modes'][m]['p50_ms']:.2f} / {r['modes'][m]['p99_ms']:.2f} "
            f"({r['modes'][m]['p50_x_flat']}x / {r['modes'][m]['p99_x_flat']}x)"
            for m in modes
        ]
        recall = []
        for m in modes:
            figures = r["modes"][m]
            recall_10 = figures["recall_at_10"]
            text = "—" if recall_10 is None else f"{recall_10:.3f}"
            if "overlap_with_faiss_hybrid" in figures:
                text += f" ({figures['overlap_with_faiss_hybrid']:.2f} vs FAISS path)"
            recall.append(text)
        lines.append(f"| {engine} | " + " | ".join(latency + recall) + " |")
    sweep = report["engines"].get("faiss hnsw", {}).get("ef_sweep")
    if sweep:
        lines += ["", "| faiss hnsw, dense | p50 / p99 ms | recall@10 |", "|---|---:|---:|"]
        for ef, f in sweep.items():
            lines.append(
                f"| ef_search {ef} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | "
                f"{f['recall_at_10']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="100k", help="100k, 1m or a count (2000, 20k)")
    parser.add_argument("--queries", type=int, default=500, help="queries per mode")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    parser.add_argument("--modes", default=";".join(MODES), help="separated by ';'")
    parser.add_argument("--real", type=int, help=f"real chunks (default min(scale, {REAL_MAX:,}))")
    parser.add_argument("--noise", type=float, default=0.02, help="per-coordinate sigma of copies")
    parser.add_argument("--writes", type=int, default=WRITES, help="documents added one by one")
    parser.add_argument(
        "--local-queries", type=int, default=LOCAL_MODE_QUERIES, help="queries for local mode"
    )
    parser.add_argument("--engine-timeout", type=float, default=1800.0, help="seconds per engine")
    parser.add_argument(
        "--no-edge-rebuild",
        action="store_true",
        help="skip timing Edge's rebuild (at 1M plain Edge's is a full HNSW build)",
    )
    parser.add_argument(
        "--ef-search",
        default="",
        help="faiss hnsw: also measure dense search at these ef_search values (64,128,256)",
    )
    parser.add_argument("--out", type=Path, help="JSON result file (and .md beside it)")
    args = parser.parse_args(argv)
    report = run(
        args.scale,
        queries=args.queries,
        engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()),
        modes=tuple(m.strip() for m in args.modes.split(";") if m.strip()),
        real=args.real,
        noise=args.noise,
        writes=args.writes,
        local_queries=args.local_queries,
        engine_timeout=args.engine_timeout,
        edge_rebuild=not args.no_edge_rebuild,
        ef_search=parse_ef_search(args.ef_search),
    )
    print(markdown(report))
    if args.out:
        write(report, args.out)
    return report


def write(report: dict[str, Any], path: Path) -> None:
    """The report as JSON at `path` and its tables (`markdown`) beside it as .md."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    path.with_suffix(".md").write_text(markdown(report) + "\n")


if __name__ == "__main__":
    main()
