"""Job kinds of the evaluation package, registered like `ingest.worker.register_handlers`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eval.runs import EVAL_JOB, record_eval_failure, run_eval

if TYPE_CHECKING:
    from core.runtime import Runtime


def register_handlers(rt: Runtime) -> None:
    rt.workers.register(
        EVAL_JOB,
        lambda p, ctx: run_eval(rt, p, ctx),
        on_final_failure=lambda p, reason: record_eval_failure(rt, p, reason),
    )
