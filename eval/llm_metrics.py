"""LLM-judged metrics (ragas 0.4 collections) for one eval question at a time.

- `faithfulness`: share of the answer's statements the retrieved passages support
  (`Faithfulness`); needs the generated answer.
- `answer_relevancy`: cosine of the question and questions the judge writes back from
  the answer, 0 for a noncommittal answer (`AnswerRelevancy`, with our embedder).
- `llm_context_precision`: ranked share of retrieved passages the judge finds useful for
  the reference answer (`ContextPrecisionWithReference`).
- `llm_context_recall`: share of the reference answer's statements the passages support
  (`ContextRecall`).

Like the offline metrics, a metric whose input is missing (no reference answer) scores
None. A judge failure on one metric (timeout, output that is not the expected JSON, a
NaN score) scores None there and its reason goes to `scores["errors"][metric]`: one bad
verdict never fails a run. An unreachable or refusing endpoint does (`judge.fatal`), so
the job retries and resumes instead of storing a run full of errors.

Example::

    scorer = LLMScorer(Judge(settings, embedder=emb), metrics=["faithfulness"])
    scorer.score(question=q, answer=a, contexts=[...], reference=None)
    # {"faithfulness": 1.0}  or  {"faithfulness": None, "errors": {"faithfulness": "…"}}
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import Conflict
from core.jobs import PermanentJobError
from eval.judge import Judge, describe_failure, fatal, local_judge_model
from eval.metrics import LLM_METRICS

if TYPE_CHECKING:
    from eval.services import EvalServices

# These judge the generated answer, so an eval run must generate one for every question.
ANSWER_JUDGED = ("faithfulness", "answer_relevancy")


def _value(result: Any) -> float | None:
    value = float(getattr(result, "value", result))
    if math.isnan(value):
        return None
    return round(min(1.0, max(0.0, value)), 6)


class LLMScorer:
    """The requested LLM metrics over one judge; `usage()` is what the run records."""

    def __init__(self, judge: Judge, *, metrics: Sequence[str]) -> None:
        self.judge = judge
        self.metrics = [m for m in LLM_METRICS if m in metrics]

    @property
    def needs_answer(self) -> bool:
        return any(m in self.metrics for m in ANSWER_JUDGED)

    def usage(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.judge.usage.as_dict(base)

    def score(
        self, *, question: str, answer: str, contexts: list[str], reference: str | None
    ) -> dict[str, Any]:
        if not self.metrics:
            return {}
        return asyncio.run(
            self.ascore(question=question, answer=answer, contexts=contexts, reference=reference)
        )

    async def ascore(
        self, *, question: str, answer: str, contexts: list[str], reference: str | None
    ) -> dict[str, Any]:
        from ragas.metrics.collections import (
            AnswerRelevancy,
            ContextPrecisionWithReference,
            ContextRecall,
            Faithfulness,
        )

        scores: dict[str, Any] = {}
        errors: dict[str, str] = {}
        gate = asyncio.Semaphore(self.judge.settings.judge_concurrency)
        async with self.judge.llm() as llm:
            jobs: dict[str, Any] = {}
            for m in self.metrics:
                if m in ANSWER_JUDGED and not answer:
                    scores[m] = None
                elif m == "faithfulness":
                    if not contexts:
                        scores[m] = None  # nothing to be faithful to
                    else:
                        jobs[m] = Faithfulness(llm=llm).ascore(
                            user_input=question, response=answer, retrieved_contexts=contexts
                        )
                elif m == "answer_relevancy":
                    jobs[m] = AnswerRelevancy(llm=llm, embeddings=self.judge.embeddings).ascore(
                        user_input=question, response=answer
                    )
                elif not reference:
                    scores[m] = None
                elif not contexts:
                    scores[m] = 0.0  # nothing retrieved: nothing useful, nothing recalled
                elif m == "llm_context_precision":
                    jobs[m] = ContextPrecisionWithReference(llm=llm).ascore(
                        user_input=question, reference=reference, retrieved_contexts=contexts
                    )
                else:
                    jobs[m] = ContextRecall(llm=llm).ascore(
                        user_input=question, retrieved_contexts=contexts, reference=reference
                    )

            async def run(name: str, job: Any) -> tuple[str, Any]:
                async with gate:
                    try:
                        return name, await job
                    except Exception as exc:  # noqa: BLE001 - sorted below
                        return name, exc

            for name, outcome in await asyncio.gather(*(run(m, j) for m, j in jobs.items())):
                if isinstance(outcome, Exception):
                    problem = fatal(outcome)
                    if problem is not None:
                        raise problem from outcome
                    scores[name] = None
                    errors[name] = describe_failure(outcome)
                    continue
                scores[name] = _value(outcome)
                if scores[name] is None:
                    errors[name] = "the judge's verdicts gave no score (e.g. no statements)"
        result: dict[str, Any] = {m: scores.get(m) for m in self.metrics}
        if errors:
            result["errors"] = errors
        return result


def llm_scorer(
    rt: EvalServices, *, metrics: Sequence[str], embedding_model: str | None = None
) -> LLMScorer | None:
    """The scorer for a run's LLM metrics (None when it names none). A run queued where a
    judge was configured but run where none is fails at once, naming the settings.
    `embedding_model` (for answer relevancy) defaults to the server's model, like
    semantic similarity, so runs of different index versions stay comparable."""
    if not any(m in LLM_METRICS for m in metrics):
        return None

    try:
        judge = Judge(
            rt.settings,
            embedder=rt.embedder(embedding_model),
            local_generator=local_judge_model(rt),
        )
    except Conflict as exc:
        raise PermanentJobError(f"this worker has no LLM judge: {exc}") from exc
    return LLMScorer(judge, metrics=metrics)
