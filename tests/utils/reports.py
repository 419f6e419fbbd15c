"""Eval runs as in-memory catalog rows (never flushed) for report tests that need no
database: two runs of one test set with known scores, plus older history."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.catalog.models import EvalResult, EvalRun, JobStatus
from eval.metrics import aggregate

T0 = datetime(2026, 11, 20, 9, 0, 0)
METRICS = ["recall@5", "mrr", "ndcg@5", "context_precision", "rouge", "semantic_similarity"]


def make_run(
    run_id: str,
    *,
    index_version: int,
    created_at: datetime,
    testset_id: str = "ts1",
    kb_id: str = "kb1",
    kb: str = "docs",
    chunk_note: str = "",
) -> EvalRun:
    key = {
        "testset": "smoke",
        "testset_version": 1,
        "kb": kb,
        "index_version": index_version,
        "embedding_model": "all-MiniLM-L6-v2",
        "generator": "extractive",
        "prompt": "default@1",
        "params": {"top_k": 5, "mode": "hybrid"},
    }
    return EvalRun(
        id=run_id,
        testset_id=testset_id,
        kb_id=kb_id,
        index_version=index_version,
        embedding_model="all-MiniLM-L6-v2",
        generator="extractive",
        prompt_name="default",
        prompt_version=1,
        params={"top_k": 5, "mode": "hybrid"},
        metrics=METRICS,
        key=key,
        key_hash=f"hash-{run_id}{chunk_note}",
        status=JobStatus.SUCCEEDED,
        progress=1.0,
        question_count=0,
        completed_count=0,
        aggregate={},
        wall_seconds=12.5,
        usage={},
        created_at=created_at,
        finished_at=created_at + timedelta(seconds=13),
    )


def make_result(
    run: EvalRun,
    position: int,
    question: str,
    scores: dict[str, float | None],
    *,
    answer: str = "",
    chunk_ids: list[str] | None = None,
) -> EvalResult:
    return EvalResult(
        id=f"{run.id}-{position}",
        run_id=run.id,
        case_id=f"case-{position}",
        position=position,
        question=question,
        answer=answer,
        retrieved=[
            {"chunk_id": c, "document_id": f"doc-{c}", "filename": f"{c}.md", "score": 0.9 - i / 10}
            for i, c in enumerate(chunk_ids or [])
        ],
        scores=scores,
        seconds=0.1,
    )


def finish(run: EvalRun, results: list[EvalResult]) -> None:
    """Set the run's aggregate and counts the way `run_eval` does."""
    run.aggregate = aggregate(r.scores for r in results)
    run.question_count = run.completed_count = len(results)


@dataclass
class Pair:
    a: EvalRun
    results_a: list[EvalResult]
    b: EvalRun
    results_b: list[EvalResult]
    history: list[EvalRun] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)


def random_pair(questions: int = 30, seed: int = 7) -> Pair:
    """A (index v3) mostly better than B (index v2) with a few regressions, one question
    with HTML in it, one answerless case, one garbage-collected chunk, and two older
    runs (v1, v2) as history."""
    rng = random.Random(seed)
    b = make_run("run-b", index_version=2, created_at=T0 + timedelta(days=1))
    a = make_run("run-a", index_version=3, created_at=T0 + timedelta(days=2))
    results_a, results_b, texts = [], [], {}
    for pos in range(1, questions + 1):
        question = f"Question {pos}: how does feature {pos} behave under load?"
        if pos == 3:
            question = "What does <script>alert('x')</script> & <b>bold</b> do?"
        base = {m: round(rng.uniform(0.3, 0.9), 3) for m in METRICS}
        shift = rng.gauss(0.06, 0.12)
        better = {
            m: round(min(1.0, max(0.0, v + shift + rng.gauss(0, 0.05))), 3) for m, v in base.items()
        }
        if pos == 5:  # no reference answer: answer metrics unscored
            for m in ("rouge", "semantic_similarity"):
                base[m] = better[m] = None
        ids_a = [f"a{pos}-{i}" for i in range(3)]
        ids_b = [f"b{pos}-{i}" for i in range(3)]
        for c in ids_a + ids_b:
            texts[c] = f"Passage {c} about feature {pos}. " * 4
        texts.pop("b1-2", None)  # garbage-collected after B ran
        answer = "" if pos == 5 else f"Feature {pos} scales linearly."
        results_a.append(make_result(a, pos, question, better, answer=answer, chunk_ids=ids_a))
        results_b.append(make_result(b, pos, question, base, answer=answer, chunk_ids=ids_b))
    finish(a, results_a)
    finish(b, results_b)
    history = []
    for i, (version, level) in enumerate([(1, 0.45), (2, 0.52)]):
        old = make_run(f"run-old{i}", index_version=version, created_at=T0 + timedelta(hours=i))
        old.aggregate = {
            m: {"mean": level + rng.uniform(-0.05, 0.05), "count": questions} for m in METRICS
        }
        history.append(old)
    return Pair(a, results_a, b, results_b, [*history, b, a], texts)
