"""torch (bf16 autocast where the CPU has it) vs OpenVINO through `Embedder.encode`, on
the chunks of 60 generated en/es/ru documents, plus each backend's cosine to torch fp32.
Runs alternate between the backends (a busy machine slows both alike); the best of each
is reported.

    .venv/bin/python tests/bench/bench_embed_backends.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import time  # noqa: E402

import numpy as np  # noqa: E402

from api.bench.corpus import make_documents  # noqa: E402
from core.types import Piece, StageReport  # noqa: E402
from ingest.chunk import SentenceChunker  # noqa: E402
from ingest.embed import Embedder  # noqa: E402


def chunk_texts(embedder: Embedder) -> list[str]:
    chunker = SentenceChunker(
        embedder.tokenize, chunk_size=200, chunk_overlap=32, max_tokens=embedder.max_tokens
    )
    texts: list[str] = []
    for d in make_documents(60, words=600):
        meta = {"page_number": None, "section": None, "language": d.language}
        pieces = [Piece(p, dict(meta)) for p in d.paragraphs]
        texts += [c.text for c in chunker(pieces, StageReport())]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model name or folder")
    parser.add_argument("--queries", type=int, default=0, help="also time N one-query calls")
    args = parser.parse_args()
    embedders = {b: Embedder(args.model, device="cpu", backend=b) for b in ("torch", "openvino")}
    for emb in embedders.values():
        emb.warm_up()
    texts = chunk_texts(embedders["torch"])
    times: dict[str, list[float]] = {b: [] for b in embedders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for backend, emb in embedders.items():
            t0 = time.perf_counter()
            vectors[backend] = emb.encode(texts)
            times[backend].append(time.perf_counter() - t0)
    reference = np.asarray(
        embedders["torch"].model.encode(texts, batch_size=32, normalize_embeddings=True),
        dtype=np.float32,
    )
    print(f"{len(texts)} chunks")
    for backend, emb in embedders.items():
        cosine = (vectors[backend] * reference).sum(1)
        print(
            f"{backend:9s} {emb.precision:14s} best {min(times[backend]):.2f} s "
            f"({len(texts) / min(times[backend]):.0f} chunks/s), min cosine to fp32 "
            f"{cosine.min():.5f}"
        )
    print(f"openvino / torch speed: {min(times['torch']) / min(times['openvino']):.2f}x")
    if args.queries:
        # One short query per call, as /retrieve embeds them: latency, not throughput.
        queries = [t[:80] for t in texts[: args.queries]]
        p50: dict[str, float] = {}
        for backend, emb in embedders.items():
            spent = []
            for q in queries:
                t0 = time.perf_counter()
                emb.encode([q], kind="query")
                spent.append(time.perf_counter() - t0)
            p50[backend] = float(np.median(spent)) * 1000
            print(f"{backend:9s} one query: p50 {p50[backend]:.1f} ms")
        print(f"openvino / torch one-query speed: {p50['torch'] / p50['openvino']:.2f}x")


if __name__ == "__main__":
    main()
