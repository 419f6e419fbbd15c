"""Job kinds of the evaluation package, registered like `ingest.worker.register_handlers`,
and what evaluation does when other jobs end: a finished build or eval run may complete
a pending promotion decision (quality gates) or be due for a scheduled evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eval.finetune import FINETUNE_JOB, record_failure, run_finetune
from eval.gates import advance_pending
from eval.generate import GENERATE_JOB, run_generation
from eval.runs import EVAL_JOB, record_eval_failure, run_eval
from eval.schedules import evaluate_new_versions
from index.versions import BUILD_JOB

if TYPE_CHECKING:
    from eval.services import EvalServices


def register_handlers(rt: EvalServices) -> None:
    rt.workers.register(
        EVAL_JOB,
        lambda p, ctx: run_eval(rt, p, ctx),
        on_final_failure=lambda p, reason: record_eval_failure(rt, p, reason),
    )
    rt.workers.register(GENERATE_JOB, lambda p, ctx: run_generation(rt, p, ctx))
    rt.workers.register(
        FINETUNE_JOB,
        lambda p, ctx: run_finetune(rt, p, ctx),
        on_final_failure=lambda p, reason: record_failure(rt, p, reason),
    )

    def after_build(payload: dict[str, Any], succeeded: bool) -> None:

        if succeeded:
            evaluate_new_versions(rt)
        advance_pending(rt)

    def after_eval(payload: dict[str, Any], succeeded: bool) -> None:

        advance_pending(rt)

    rt.workers.listen(BUILD_JOB, after_build)
    rt.workers.listen(EVAL_JOB, after_eval)
