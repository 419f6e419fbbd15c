"""Evaluation metrics that need no LLM.

- IR metrics over the ranked documents of the retrieved chunks against the reference
  document ids (binary relevance): `recall@k`, `mrr`, `ndcg@k`.
- ragas 0.4 non-LLM metrics: `context_precision` / `context_recall` (retrieved passages
  against `reference_contexts`, string distance), `string_similarity`, `bleu`, `rouge`
  (answer against `reference_answer`).
- `semantic_similarity`: cosine of our embedder's normalised vectors of the answer and
  the reference answer (what ragas' SemanticSimilarity computes, without its wrappers).

LLM-judged metrics (`faithfulness`, `answer_relevancy`, `llm_context_precision`,
`llm_context_recall`; see `eval.llm_metrics`) are opt-in: a run computes them only when
it names them, because each question then costs several judge calls (time, and money on
a paid endpoint), and scheduled runs must not start spending when a judge is configured.
Naming one without a judge configured is a 409 naming the settings.

A metric whose reference is missing in a case scores None there and is left out of the
aggregate. Every score is in [0, 1].

Example::

    recall_at_k(["d1", "d2"], {"d2"}, k=5)   # 1.0
    scorer = OfflineScorer(embedder=rt.embedder())
    scorer.score(case, answer="...", contexts=[...], ranked_docs=[...], k=5)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import Conflict, InvalidInput

IR_METRICS = ("recall@k", "mrr", "ndcg@k")
RAGAS_METRICS = (
    "context_precision",
    "context_recall",
    "string_similarity",
    "bleu",
    "rouge",
    "semantic_similarity",
)
OFFLINE_METRICS = IR_METRICS + RAGAS_METRICS
# Need a judge LLM (RAGOPS_JUDGE_BASE_URL or RAGOPS_JUDGE=local): eval/llm_metrics.py.
LLM_METRICS = ("faithfulness", "answer_relevancy", "llm_context_precision", "llm_context_recall")
ALL_METRICS = OFFLINE_METRICS + LLM_METRICS
ANSWER_METRICS = ("string_similarity", "bleu", "rouge", "semantic_similarity")


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("recall needs at least one relevant id")
    return len(relevant & set(ranked[:k])) / len(relevant)


def mrr(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    relevant = set(relevant)
    for rank, item in enumerate(ranked, 1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("nDCG needs at least one relevant id")
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def ranked_unique(ids: Iterable[str]) -> list[str]:
    """Document ids in first-seen order (chunks of one document count once)."""
    return list(dict.fromkeys(ids))


def metric_names(requested: Sequence[str] | None, *, judge: str | None = None) -> list[str]:
    """Validate a requested metric list (None: every offline metric). LLM-judged metrics
    need `judge` (the configured judge's label, see `eval.judge.judge_label`)."""
    if not requested:
        return list(OFFLINE_METRICS)

    names = list(dict.fromkeys(requested))
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise InvalidInput(f"unknown metric {unknown[0]!r}; choose from {', '.join(ALL_METRICS)}")
    llm = [m for m in names if m in LLM_METRICS]
    if llm and judge is None:
        raise Conflict(
            f"LLM-judged metrics ({', '.join(llm)}) need an LLM judge; set "
            "RAGOPS_JUDGE_BASE_URL and RAGOPS_JUDGE_MODEL (an OpenAI-compatible endpoint) or "
            f"RAGOPS_JUDGE=local, or choose from {', '.join(OFFLINE_METRICS)}"
        )
    return names


def _clamp(value: Any) -> float | None:
    if value is None:
        return None
    value = float(getattr(value, "value", value))
    if math.isnan(value):
        return None
    return round(min(1.0, max(0.0, value)), 6)


class OfflineScorer:
    """Scores one case at a time with the selected offline metrics. ragas metrics are
    built once (cheap) and imported lazily. With `judge` (an `eval.llm_metrics.LLMScorer`)
    it also scores the LLM-judged metrics the run names."""

    def __init__(
        self,
        *,
        embedder: Any = None,
        metrics: Sequence[str] = OFFLINE_METRICS,
        judge: Any = None,
    ):
        self.metrics = list(metrics)
        self.embedder = embedder
        self.judge = judge
        self._ragas: dict[str, Any] | None = None

    def wants_answer(self, reference: str | None) -> bool:
        """Whether a case needs a generated answer: for answer-vs-reference metrics when
        it has a reference answer, for judged answers (faithfulness…) always."""
        if self.judge is not None and self.judge.needs_answer:
            return True
        return bool(reference) and any(m in self.metrics for m in ANSWER_METRICS)

    def llm_scores(
        self, *, question: str, answer: str, contexts: list[str], reference: str | None
    ) -> dict[str, Any]:
        if self.judge is None:
            return {}
        return self.judge.score(
            question=question, answer=answer, contexts=contexts, reference=reference
        )

    def usage(self, base: dict[str, Any] | None) -> dict[str, Any]:
        """Judge calls, tokens and cost so far, added to `base` (earlier attempts)."""
        return self.judge.usage(base) if self.judge is not None else dict(base or {})

    def _load(self) -> dict[str, Any]:
        if self._ragas is None:
            from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
            from ragas.metrics._context_recall import NonLLMContextRecall
            from ragas.metrics.collections import BleuScore, NonLLMStringSimilarity, RougeScore

            self._ragas = {
                "context_precision": NonLLMContextPrecisionWithReference(),
                "context_recall": NonLLMContextRecall(),
                "string_similarity": NonLLMStringSimilarity(),
                "bleu": BleuScore(),
                "rouge": RougeScore(),
            }
        return self._ragas

    def context_scores(
        self, *, question: str, contexts: list[str], references: list[str]
    ) -> dict[str, float | None]:
        from ragas.dataset_schema import SingleTurnSample

        wanted = [m for m in ("context_precision", "context_recall") if m in self.metrics]
        if not wanted:
            return {}
        if not references or not contexts:
            return {m: (0.0 if references else None) for m in wanted}
        sample = SingleTurnSample(
            user_input=question, retrieved_contexts=contexts, reference_contexts=references
        )
        ragas = self._load()

        async def run() -> list[Any]:
            return [await ragas[m].single_turn_ascore(sample) for m in wanted]

        return {m: _clamp(v) for m, v in zip(wanted, asyncio.run(run()), strict=True)}

    def answer_scores(self, *, answer: str, reference: str | None) -> dict[str, float | None]:
        wanted = [m for m in ANSWER_METRICS if m in self.metrics]
        if not reference:
            return {m: None for m in wanted}
        ragas = self._load()
        scores: dict[str, float | None] = {}
        for m in wanted:
            if m == "semantic_similarity":
                scores[m] = self.semantic_similarity(answer, reference)
            else:
                scores[m] = _clamp(ragas[m].score(reference=reference, response=answer))
        return scores

    def semantic_similarity(self, answer: str, reference: str) -> float | None:
        if self.embedder is None:
            return None
        # Symmetric similarity: both sides as queries (e5's advice; no-op for MiniLM).
        vectors = self.embedder.encode([answer, reference], kind="query")
        return _clamp(float(vectors[0] @ vectors[1]))

    def ir_scores(self, *, ranked_docs: list[str], relevant: list[str], k: int) -> dict:
        wanted = [m for m in IR_METRICS if m in self.metrics]
        if not relevant:
            return {m.replace("@k", f"@{k}"): None for m in wanted}
        values = {
            "recall@k": lambda: recall_at_k(ranked_docs, relevant, k),
            "mrr": lambda: mrr(ranked_docs, relevant),
            "ndcg@k": lambda: ndcg_at_k(ranked_docs, relevant, k),
        }
        return {m.replace("@k", f"@{k}"): _clamp(values[m]()) for m in wanted}


def aggregate(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each metric over the questions that scored it, with the count (the
    `errors` entry of judged scores is not a metric)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for scores in rows:
        for name, value in scores.items():
            if value is None or not isinstance(value, int | float):
                continue
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1
    return {
        name: {"mean": round(sums[name] / counts[name], 6), "count": counts[name]}
        for name in sorted(sums)
    }
