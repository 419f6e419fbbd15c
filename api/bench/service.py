"""Ingestion throughput of the running service against a hand-rolled llama-index pipeline,
on one generated corpus (Markdown, text, HTML, DOCX, PDF; English, Spanish, Russian),
back to back in one run.

(a) llama-index: `IngestionPipeline([SentenceSplitter, HuggingFaceEmbedding])` on the
    same packaged model and chunk settings, vectors into a FAISS flat index. It gets the
    documents' text directly (no parsing at all), so the ratio is conservative.
(b) ragops: `ragops serve` on the embedded default (SQLite, local blobs, FAISS,
    in-process workers) in a fresh data directory, driven over HTTP: create a KB
    (redaction off, then on), upload every file in requests of `batch` files, wait until
    every document is indexed. Warm-up (model loading) is excluded on both sides.

Reported per setting: seconds, docs/s, chunks/s, words/s, the ratio to llama-index,
each stage's busy share (summed stage seconds from the documents' reports over the wall
time; above 1.0 means stages overlapped), and the server's peak RSS (process and
children).

Example::

    report = run(n_docs=500, words=600)
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from api.bench.corpus import BenchDocument, make_documents
from core.config import Settings
from ingest.embed import resolve_model_path

KEY = "bench-key"
# The baseline as a user writes it (SentenceSplitter counts tiktoken tokens), and the
# same with chunk_size counted in the model's own tokens, as ragops counts it: equal
# chunk settings in equal units, so no chunk outgrows the model's window.
BASELINE = "llama-index IngestionPipeline"
BASELINE_MODEL_TOKENS = "llama-index, chunks in model tokens"
FINAL = ("indexed", "failed", "superseded")


def run(
    n_docs: int = 500,
    *,
    words: int = 600,
    batch: int = 50,
    settings: tuple[str, ...] = ("off", "on"),
    baseline: bool = True,
) -> dict[str, Any]:
    """`baseline=False` skips llama-index (for long runs that measure only ragops, e.g.
    peak RSS over 10k documents); rows then carry no ratio."""
    docs = make_documents(n_docs, words=words)
    defaults = Settings(_env_file=None)
    model = str(resolve_model_path(defaults.embedding_model))
    rows: dict[str, dict[str, Any]] = {}
    if baseline:
        rows[BASELINE] = run_llama_index(docs, model, defaults.chunk_size, defaults.chunk_overlap)
        rows[BASELINE_MODEL_TOKENS] = run_llama_index(
            docs, model, defaults.chunk_size, defaults.chunk_overlap, model_tokens=True
        )
    for redaction in settings:
        rows[f"ragops, redaction {redaction}"] = run_service(
            docs, redaction=redaction == "on", batch=batch
        )
    total_words = sum(d.words for d in docs)
    for row in rows.values():
        row["docs_per_s"] = round(n_docs / row["seconds"], 2)
        row["chunks_per_s"] = round(row["chunks"] / row["seconds"], 1)
        row["words_per_s"] = round(total_words / row["seconds"])
        if baseline:
            row["speed_vs_llama_index"] = round(rows[BASELINE]["seconds"] / row["seconds"], 2)
            row["speed_vs_llama_index_model_tokens"] = round(
                rows[BASELINE_MODEL_TOKENS]["seconds"] / row["seconds"], 2
            )
    return {
        "documents": n_docs,
        "words": total_words,
        "formats": sorted({d.filename.rsplit(".", 1)[1] for d in docs}),
        "machine": machine(),
        "rows": rows,
    }


def machine() -> dict[str, Any]:
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
                flags = [f for f in line.split(":", 1)[1].split() if f in wanted]
                break
    except OSError:
        pass
    versions = {}
    for package in ("torch", "sentence-transformers", "llama-index-core", "faiss-cpu"):
        try:
            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - report what is installed
            versions[package] = None
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "flags": flags,
        "python": platform.python_version(),
        "versions": versions,
    }


def run_llama_index(
    docs: list[BenchDocument],
    model_path: str,
    chunk_size: int,
    chunk_overlap: int,
    *,
    model_tokens: bool = False,
) -> dict[str, Any]:
    # Heavy optional imports: the bench extra (llama-index) and FAISS.
    import faiss
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    embed = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    embed.get_text_embedding("warm up")
    tokenizer = None
    if model_tokens:
        from transformers import AutoTokenizer

        wordpiece = AutoTokenizer.from_pretrained(model_path)

        def tokenizer(text: str) -> list[int]:
            return wordpiece(text, add_special_tokens=False)["input_ids"]

    splitter = SentenceSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenizer
    )
    pipeline = IngestionPipeline(transformations=[splitter, embed])
    documents = [Document(text=d.text, metadata={"filename": d.filename}) for d in docs]
    rss = RssSampler(psutil.Process())
    t0 = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    vectors = np.asarray([n.embedding for n in nodes], dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    seconds = time.perf_counter() - t0
    peak = rss.stop()
    return {
        "seconds": round(seconds, 2),
        "chunks": len(nodes),
        "peak_rss_mb": peak,
        **truncation(model_path, [n.get_content() for n in nodes]),
    }


def truncation(model_path: str, chunks: list[str]) -> dict[str, Any]:
    """How many chunks exceed the model's window, and the share of their tokens it never
    sees: SentenceSplitter counts tiktoken tokens, the model reads its own (WordPiece),
    and a Russian chunk of 200 tiktoken tokens is far longer than 256 WordPiece ones."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    window = int(model.max_seq_length)
    lengths = [
        len(ids) + 2  # [CLS] and [SEP]
        for ids in model.tokenizer(chunks, add_special_tokens=False)["input_ids"]
    ]
    cut = sum(max(0, n - window) for n in lengths)
    return {
        "model_window_tokens": window,
        "truncated_chunks": sum(n > window for n in lengths),
        "tokens_not_embedded_share": round(cut / max(1, sum(lengths)), 3),
    }


class RssSampler:
    """Peak memory of a process and its children: RSS summed (pages the forked parser
    workers share with their forkserver count once per process) every 0.2 s, and PSS
    (shared pages split between the processes that map them: what the tree really
    holds) every second. PSS is read from /proc/*/smaps_rollup; 0 where unavailable."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self.peak_pss = 0
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            procs = [self.process, *self.process.children(recursive=True)]
            self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            if self._samples % 5 == 0:
                pss = sum(getattr(p.memory_full_info(), "pss", 0) for p in procs)
                self.peak_pss = max(self.peak_pss, pss)
        except psutil.Error:
            pass
        self._samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def stop(self) -> float:
        self._samples = 0  # the last sample reads PSS too
        self._sample()
        self._stop.set()
        self._thread.join()
        return round(self.peak / 2**20)

    @property
    def peak_pss_mb(self) -> int:
        return round(self.peak_pss / 2**20)


def run_service(docs: list[BenchDocument], *, redaction: bool, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ragops-bench-") as tmp:
        port = _free_port()
        env = {
            **os.environ,
            "RAGOPS_DATA_DIR": tmp,
            "RAGOPS_ADMIN_KEY": KEY,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # A deployment that does not redact does not load Presidio and spaCy at all.
            "RAGOPS_REDACTION_ENABLED": "true" if redaction else "false",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "server.log", "w"),  # noqa: SIM115 - closed with the dir
        )
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=600
            ) as c:
                t_start = time.perf_counter()
                _wait_ready(c, server, deadline_s=900)
                ready_s = time.perf_counter() - t_start
                r = c.post("/v1/kbs", json={"name": "bench", "redaction": {"enabled": redaction}})
                r.raise_for_status()
                rss = RssSampler(psutil.Process(server.pid))
                t0 = time.perf_counter()
                upload_s: list[float] = []
                for i in range(0, len(docs), batch):
                    files = [
                        ("files", (d.filename, d.data, d.media_type)) for d in docs[i : i + batch]
                    ]
                    while True:  # a full queue answers 429: wait as told, send again
                        t_up = time.perf_counter()
                        r = c.post("/v1/kbs/bench/documents", files=files)
                        upload_s.append(time.perf_counter() - t_up)
                        if r.status_code != 429:
                            break
                        time.sleep(float(r.headers.get("Retry-After", "1")))
                    r.raise_for_status()
                counts = _wait_indexed(c, len(docs), server)
                seconds = time.perf_counter() - t0
                peak = rss.stop()
                stages, chunks = _stage_seconds(c)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
    return {
        "seconds": round(seconds, 2),
        "chunks": chunks,
        "documents_by_status": counts,
        "time_to_ready_s": round(ready_s, 1),
        "upload_request_s_p50": round(float(np.median(upload_s)), 3),
        "stage_busy_share": {k: round(v / seconds, 3) for k, v in stages.items()},
        "peak_rss_mb": peak,
        "peak_pss_mb": rss.peak_pss_mb,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(c: httpx.Client, server: subprocess.Popen, *, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"ragops serve exited with {server.returncode} while starting")
        try:
            if c.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("ragops serve did not become ready")


def _wait_indexed(c: httpx.Client, total: int, server: subprocess.Popen) -> dict[str, int]:
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"ragops serve exited with {server.returncode} while ingesting")
        counts = c.get("/v1/kbs/bench/documents", params={"limit": 1}).json()["counts"]
        if sum(counts.get(s, 0) for s in FINAL) >= total:
            return counts
        time.sleep(0.5)


def _stage_seconds(c: httpx.Client) -> tuple[dict[str, float], int]:
    stages: dict[str, float] = {}
    chunks = 0
    offset = 0
    while True:
        page = c.get("/v1/kbs/bench/documents", params={"limit": 500, "offset": offset}).json()
        docs = page["documents"]
        if not docs:
            return stages, chunks
        for d in docs:
            detail = c.get(f"/v1/kbs/bench/documents/{d['id']}").json()
            revisions = detail.get("revisions") or [{}]
            rev = max(revisions, key=lambda r: r.get("number", 0))
            chunks += rev.get("chunk_count", 0)
            for stage, secs in ((rev.get("report") or {}).get("seconds") or {}).items():
                stages[stage] = stages.get(stage, 0.0) + float(secs)
        offset += len(docs)
