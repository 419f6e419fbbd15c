"""Retrieval quality per language and method on the multilingual QA set
(`tests/bench/data/mlqa`: 3,150 en/es/ru passages in one index, human and hand-written
questions; see its README).

Methods: dense per embedding model, BM25 plain (casefolded words) and BM25 as ragops
analyses text (Snowball stems per language), and fusions of a dense list with the BM25
list: reciprocal rank fusion (RRF), distribution-based score fusion (DBSF) and a convex
combination of min-max-normalised scores, each over a grid of dense weights. Weights are
chosen per language on the dev split; every figure is reported on dev and on the held-out
test split. Passages are the retrieval unit (paragraph-level retrieval), so the figures
isolate ranking from chunking.

Passage vectors are cached under `data/bench-mlqa/` (git-ignored) per model digest.

    .venv/bin/python -m tests.bench.bench_retrieval_mlqa [--models all-MiniLM-L6-v2 ...]
        [--json tests/bench/results/retrieval_mlqa.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.config import OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

from retrieval.bm25 import Bm25Index  # noqa: E402
from retrieval.fusion import fuse_scores  # noqa: E402
from tests.bench.mlqa import LANGUAGES, Passage, Question, load_passages, load_questions  # noqa: E402

CACHE = Path(__file__).resolve().parents[2] / "data" / "bench-mlqa"
DEPTH = 100  # candidates each list contributes to fusion
WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)  # dense weight; BM25 gets 1 - w
FUSIONS = ("rrf", "dbsf", "convex")
Ranking = list[tuple[int, float]]  # (passage row, score), best first


def metrics(ranked: Sequence[Sequence[bool]], n_relevant: Sequence[int]) -> dict[str, float]:
    """recall@1/5/10 (a relevant passage in the top k), MRR@10 and nDCG@10 (binary gains)."""
    out: dict[str, float] = {"n": len(ranked)}
    if not ranked:
        return out
    for k in (1, 5, 10):
        out[f"recall@{k}"] = round(sum(any(r[:k]) for r in ranked) / len(ranked), 3)
    mrr = sum(next((1 / (i + 1) for i, ok in enumerate(r[:10]) if ok), 0.0) for r in ranked)
    out["mrr@10"] = round(mrr / len(ranked), 3)
    ndcg = 0.0
    for r, n in zip(ranked, n_relevant, strict=True):
        dcg = sum(1 / math.log2(i + 2) for i, ok in enumerate(r[:10]) if ok)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(n, 10)))
        ndcg += dcg / ideal if ideal else 0.0
    out["ndcg@10"] = round(ndcg / len(ranked), 3)
    return out


class Corpus:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.row = {p.id: i for i, p in enumerate(passages)}
        self.texts = [f"{p.title}\n{p.text}" if p.title else p.text for p in passages]

    def judge(self, q: Question, ranking: Ranking) -> list[bool]:
        relevant = {self.row[i] for i in q.relevant_ids}
        return [row in relevant for row, _ in ranking[:10]]


def dense_rankings(
    model: str, corpus: Corpus, questions: list[Question]
) -> tuple[dict[str, Ranking], dict[str, float]]:
    from ingest.embed import Embedder

    embedder = Embedder(model)
    embedder.warm_up()
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"{embedder.digest[:16]}-{len(corpus.texts)}.npy"
    cost: dict[str, float] = {}
    if cached.exists():
        vectors = np.load(cached)
    else:
        t0 = time.perf_counter()
        vectors = _encode(embedder, corpus.texts, "passage")
        cost["passages_per_s"] = round(len(corpus.texts) / (time.perf_counter() - t0), 1)
        np.save(cached, vectors)
    t0 = time.perf_counter()
    queries = _encode(embedder, [q.question for q in questions], "query")
    cost["queries_per_s"] = round(len(questions) / (time.perf_counter() - t0), 1)
    scores = queries @ vectors.T
    out: dict[str, Ranking] = {}
    for q, row in zip(questions, scores, strict=True):
        top = np.argsort(-row, kind="stable")[:DEPTH]
        out[q.id] = [(int(i), float(row[i])) for i in top]
    return out, cost


def _encode(embedder: Any, texts: list[str], kind: str) -> np.ndarray:
    try:
        return embedder.encode(texts, kind=kind)
    except TypeError:  # an Embedder without prompts: every text is embedded alike
        return embedder.encode(texts)


def bm25_rankings(corpus: Corpus, questions: list[Question], *, stem: bool) -> dict[str, Ranking]:
    index = Bm25Index.build(corpus.texts, stem=stem)
    return {q.id: index.search(q.question, DEPTH) for q in questions}


def table(
    corpus: Corpus, questions: list[Question], ranking: Callable[[Question], Ranking]
) -> dict[str, dict[str, float]]:
    judged = {q.id: corpus.judge(q, ranking(q)) for q in questions}
    out = {}
    for split in ("dev", "test"):
        for language in (*LANGUAGES, "all"):
            chosen = [
                q
                for q in questions
                if q.split == split and (language == "all" or q.language == language)
            ]
            out[f"{split}/{language}"] = metrics(
                [judged[q.id] for q in chosen], [len(q.relevant_ids) for q in chosen]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    corpus = Corpus(load_passages())
    questions = load_questions()
    results: dict[str, Any] = {
        "passages": len(corpus.passages),
        "questions": {
            f"{s}/{lang}": sum(q.split == s and q.language == lang for q in questions)
            for s in ("dev", "test")
            for lang in LANGUAGES
        },
        "methods": {},
        "chosen_weights": {},
        "embedding_cost": {},
    }
    methods = results["methods"]
    lexical = {
        "bm25 plain": bm25_rankings(corpus, questions, stem=False),
        "bm25 per-language": bm25_rankings(corpus, questions, stem=True),
    }
    for name, lists in lexical.items():
        methods[name] = table(corpus, questions, lambda q, lists=lists: lists[q.id])
    bm25 = lexical["bm25 per-language"]
    for model in args.models:
        dense, cost = dense_rankings(model, corpus, questions)
        results["embedding_cost"][model] = cost
        methods[f"dense {model}"] = table(corpus, questions, lambda q, d=dense: d[q.id])
        for fusion in FUSIONS:
            grid = {
                w: table(
                    corpus,
                    questions,
                    lambda q, w=w, d=dense, f=fusion: fuse_scores(d[q.id], bm25[q.id], w, f),
                )
                for w in WEIGHTS
            }
            # Per language: the dense weight with the best dev MRR@10 (ties: recall@5).
            chosen = {
                lang: max(
                    WEIGHTS,
                    key=lambda w, lang=lang: (
                        grid[w][f"dev/{lang}"]["mrr@10"],
                        grid[w][f"dev/{lang}"]["recall@5"],
                    ),
                )
                for lang in LANGUAGES
            }
            results["chosen_weights"][f"{fusion} {model}"] = chosen
            methods[f"{fusion} equal {model}"] = grid[0.5]
            methods[f"{fusion} tuned {model}"] = {
                key: grid[chosen.get(key.split("/")[1], 0.5)][key]
                for key in grid[0.5]
                if key.split("/")[1] in LANGUAGES
            }
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


def print_table(results: dict[str, Any]) -> None:
    print(f"{results['passages']} passages; questions {results['questions']}")
    head = "".join(f"{lang:>22}" for lang in LANGUAGES)
    for split in ("dev", "test"):
        print(f"\n{split}: recall@1 / recall@5 / MRR@10{head}")
        for name, t in results["methods"].items():
            cells = "".join(
                "{:>8.3f}/{:.3f}/{:.3f}".format(
                    t[f"{split}/{lang}"]["recall@1"],
                    t[f"{split}/{lang}"]["recall@5"],
                    t[f"{split}/{lang}"]["mrr@10"],
                )
                for lang in LANGUAGES
            )
            print(f"{name:<44}{cells}")
    print("\nchosen dense weights (dev):", json.dumps(results["chosen_weights"]))
    print("embedding cost:", json.dumps(results["embedding_cost"]))


if __name__ == "__main__":
    main()
