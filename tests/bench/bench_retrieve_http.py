"""`/retrieve` over HTTP against two baselines measured in the same run.

    python -m tests.bench.bench_retrieve_http --chunks 10000,100000
    ragops bench retrieval-latency --chunks 10000,100000      # the same, from a checkout

For each size (KBs built by `tests.bench.retrieve_http_corpus`: real mlqa passages plus
perturbed copies) and mode (dense, hybrid), against a real `ragops serve` subprocess:
- latency: one client, requests back to back (p50/p99 of the time from writing the
  request to reading the last byte of the answer);
- throughput: `--clients` keep-alive clients back to back for `--seconds`; requests/s
  counts only 200s.
Baselines: a bare FastAPI hello-world route (`tests.bench.hello_app`, same uvicorn set-up)
under the same client load, and llama-index's `VectorStoreIndex` retriever in-process on
the same chunks, vectors and model (`HuggingFaceEmbedding` on the same e5 folder, with
e5's "query: " prefix). Every query is a different real question from the mlqa set,
embedded by the server at request time. The server runs with
RAGOPS_RATE_LIMIT_RETRIEVE="" and RAGOPS_CONCURRENCY_RETRIEVE=--clients. Servers and the
baseline run one at a time, so none shares the CPU with another.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.config import Settings
from ingest.embed import Embedder
from tests.bench import mlqa
from tests.bench.retrieve_http_corpus import build_kb, corpus, seed_passages, seed_vectors
from tests.utils import loadgen

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "data" / "bench-retrieve-http"
RESULT = ROOT / "tests" / "bench" / "results" / "retrieve_http.json"
MODES = ("dense", "hybrid")
TOP_K = 5
MODEL = Settings(_env_file=None).embedding_model


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _memory_gb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, in GB (Linux /proc)."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[{"VmRSS": "rss_gb", "VmHWM": "peak_rss_gb"}[key]] = round(
                    int(value.split()[0]) / 1e6, 2
                )
    except OSError:
        pass
    return out


def _get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def _closed_loop(
    port: int, raws: Sequence[bytes], clients: int, seconds: float
) -> tuple[list[loadgen.Result], float]:
    """`clients` clients back to back for `seconds`, cycling through `raws` (so every
    request asks a different question); the results and the 200s per second."""
    pool = loadgen.Pool("127.0.0.1", port)
    results: list[loadgen.Result] = []
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        while time.perf_counter() < stop:
            results.append(await pool.send(raws[next(counter) % len(raws)], 60.0))

    t0 = time.perf_counter()
    import asyncio

    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    pool.close()
    return results, sum(r.status == 200 for r in results) / elapsed


def _load(port: int, raws: Sequence[bytes], clients: int, seconds: float) -> dict[str, Any]:
    results, rps = loadgen.run(_closed_loop(port, raws, clients, seconds))
    return {"clients": clients, "requests_per_s": round(rps, 1), **loadgen.summarize(results, 200)}


def hello_world(clients: int, seconds: float) -> dict[str, Any]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.hello_app", str(port)], cwd=ROOT)
    try:
        _wait(f"http://127.0.0.1:{port}/hello", proc, 60)
        raw = [_get(port, "/hello")]
        _load(port, raw, clients, 1.0)  # warm-up
        return _load(port, raw, clients, seconds)
    finally:
        _stop(proc)


def serve_env(data_dir: Path, clients: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGOPS_")}
    env.update(
        RAGOPS_DATA_DIR=str(data_dir),
        RAGOPS_MODEL_CACHE_DIR=os.environ.get(
            "RAGOPS_MODEL_CACHE_DIR", str(ROOT / "data" / "models")
        ),
        RAGOPS_RATE_LIMIT_RETRIEVE="",
        RAGOPS_CONCURRENCY_RETRIEVE=str(clients),
        RAGOPS_WORKERS="0",
        RAGOPS_SCHEDULER_EMBEDDED="false",
        HF_HUB_OFFLINE="1",
    )
    return env


def ragops_http(
    data_dir: Path, questions: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    port = _port()
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=serve_env(data_dir, clients))
    out: dict[str, Any] = {}
    try:
        _wait(f"http://127.0.0.1:{port}/readyz", proc, 300)
        for mode in MODES:
            raws = [
                loadgen.post_json(
                    "127.0.0.1",
                    port,
                    "/v1/kbs/bench/retrieve",
                    {"query": q, "top_k": TOP_K, "mode": mode},
                    {},
                )
                for q in questions
            ]
            # Warm-up: the first hybrid query builds the version's BM25 index (past the
            # request timeout at a million chunks: retry until it is there).
            started = time.monotonic()
            deadline = started + 1800
            while True:
                first = loadgen.run(_closed_loop(port, raws[:1], 1, 0.001))[0]
                if first and first[0].status == 200:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode} warm-up answered {first}")
            first_answer_s = round(time.monotonic() - started, 1)
            loadgen.run(_closed_loop(port, raws, clients, 1.0))
            single, _ = loadgen.run(_closed_loop(port, raws, 1, seconds / 2))
            out[mode] = {
                "first_answer_s": first_answer_s,
                "latency_1_client": loadgen.summarize(single, 200),
                "load": _load(port, raws, clients, seconds),
                "server_memory": _memory_gb(proc.pid),
            }
    finally:
        _stop(proc)
    return out


def llama_index(
    texts: list[str], vectors: np.ndarray, questions: list[str], seconds: float
) -> dict[str, Any]:
    """llama-index's VectorStoreIndex retriever in-process: the same chunks and vectors,
    queries embedded by the same model through `HuggingFaceEmbedding`."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from ingest.embed import resolve_model_path

    model = str(resolve_model_path(MODEL))
    embed = HuggingFaceEmbedding(
        model_name=model, device="cpu", query_instruction="query: ", text_instruction="passage: "
    )
    nodes = [
        TextNode(id_=str(i), text=t, embedding=v.tolist())
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    index = VectorStoreIndex(nodes, embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    for q in questions[:3]:
        retriever.retrieve(q)
    times = []
    stop = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop or i < 5:
        t0 = time.perf_counter()
        retriever.retrieve(questions[i % len(questions)])
        times.append(time.perf_counter() - t0)
        i += 1
    ms = np.array(times) * 1000
    return {
        "n": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "requests_per_s_1_thread": round(len(times) / float(np.sum(times)), 1),
    }


def query_encode(questions: list[str], seconds: float) -> dict[str, Any]:
    """The floor under every /retrieve: embedding one question, in-process, with the
    server's model and backend (`ingest.embed.Embedder`), back to back for `seconds`."""
    settings = Settings(_env_file=None)
    embedder = Embedder(
        MODEL,
        device=settings.embedding_device,
        backend=settings.embedding_backend,
        cache_dir=Path(os.environ.get("RAGOPS_MODEL_CACHE_DIR", str(ROOT / "data" / "models"))),
    )
    embedder.warm_up()
    for q in questions[:5]:
        embedder.encode([q], kind="query")
    times = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or len(times) < 5:
        t0 = time.perf_counter()
        embedder.encode([questions[len(times) % len(questions)]], kind="query")
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "n": len(times),
        "precision": embedder.precision,
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def _ratios(
    row: dict[str, Any],
    hello_rps: float,
    llama: dict[str, Any] | None,
    encode: dict[str, Any] | None,
) -> dict[str, Any]:
    p50 = row["latency_1_client"]["p50_ms"]
    out = {"rps_vs_hello_world": round(row["load"]["requests_per_s"] / hello_rps, 4)}
    if llama:
        out["p50_vs_llama_index"] = round(p50 / llama["p50_ms"], 3)
    if encode:
        # What the service adds on top of embedding the question (HTTP, auth, catalog,
        # search, fusion, JSON): comparable across CPUs that embed at different speeds.
        out["p50_vs_query_encode"] = round(p50 / encode["p50_ms"], 2)
        out["p50_beyond_query_encode_ms"] = round(p50 - encode["p50_ms"], 1)
    return out


def run(
    sizes: Sequence[int],
    *,
    clients: int = 4,
    seconds: float = 10.0,
    queries: int = 300,
    cache: Path = CACHE,
    baseline: bool = True,
) -> dict[str, Any]:
    questions = [q.question for q in mlqa.load_questions("test")]
    questions = questions[:: max(1, len(questions) // queries)][:queries]
    report: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "top_k": TOP_K,
        "queries": len(questions),
        "server": {
            "RAGOPS_RATE_LIMIT_RETRIEVE": "",
            "RAGOPS_CONCURRENCY_RETRIEVE": clients,
            "RAGOPS_WORKERS": 0,
        },
        "cpus": os.cpu_count(),
        "hello_world": hello_world(clients, seconds),
        "query_encode_in_process": query_encode(questions, seconds / 2),
        "sizes": {},
    }
    hello_rps = report["hello_world"]["requests_per_s"]
    for n in sizes:
        data_dir = build_kb(cache, n)
        entry: dict[str, Any] = {
            "chunks": n,
            "ragops": ragops_http(data_dir, questions, clients, seconds),
        }
        llama = None
        if baseline:
            texts = [p.text for p in seed_passages(n)]
            vectors = seed_vectors(cache, MODEL, texts, None)  # cached by build_kb
            chunk_texts, chunk_vectors = corpus(texts, vectors, n)
            llama = entry["llama_index_in_process"] = llama_index(
                chunk_texts, chunk_vectors, questions, seconds
            )
        encode = report["query_encode_in_process"]
        entry["ratios"] = {
            mode: _ratios(entry["ragops"][mode], hello_rps, llama, encode) for mode in MODES
        }
        report["sizes"][str(n)] = entry
    return report


def print_report(r: dict[str, Any]) -> None:
    hello = r["hello_world"]
    print(
        f"hello-world: {hello['requests_per_s']} req/s at {r['clients']} clients "
        f"(p50 {hello.get('p50_ms')} ms)"
    )
    encode = r.get("query_encode_in_process") or {}
    print(
        f"one question embedded in-process ({encode.get('precision')}): "
        f"p50 {encode.get('p50_ms')} ms, p99 {encode.get('p99_ms')} ms"
    )
    print(
        f"{'chunks':>8} {'mode':<7} {'p50':>7} {'p99':>7} {'req/s':>7} {'p50@C':>7} "
        f"{'p99@C':>7} {'×hello':>7} {'llama p50':>10} {'÷llama':>7} {'+encode':>8} {'RSS GB':>7}"
    )
    for n, e in r["sizes"].items():
        llama = e.get("llama_index_in_process") or {}
        for mode in MODES:
            row, ratio = e["ragops"][mode], e["ratios"][mode]
            one, load = row["latency_1_client"], row["load"]
            print(
                f"{n:>8} {mode:<7} {one.get('p50_ms'):>7} {one.get('p99_ms'):>7} "
                f"{load['requests_per_s']:>7} {load.get('p50_ms'):>7} {load.get('p99_ms'):>7} "
                f"{ratio['rps_vs_hello_world']:>7} {llama.get('p50_ms', '—'):>10} "
                f"{ratio.get('p50_vs_llama_index', '—'):>7} "
                f"{ratio.get('p50_beyond_query_encode_ms', '—'):>8} "
                f"{row.get('server_memory', {}).get('peak_rss_gb', '—'):>7}"
            )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", default="10000,100000", help="KB sizes, comma-separated")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients under load")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per load phase")
    parser.add_argument("--queries", type=int, default=300, help="distinct questions")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where KBs are kept")
    parser.add_argument("--no-baseline", action="store_true", help="skip llama-index")
    parser.add_argument("--json", type=Path, default=RESULT, help="where the report goes")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.chunks.split(",") if s.strip()]
    report = run(
        sizes,
        clients=args.clients,
        seconds=args.seconds,
        queries=args.queries,
        cache=args.cache,
        baseline=not args.no_baseline,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return report


if __name__ == "__main__":
    main()
