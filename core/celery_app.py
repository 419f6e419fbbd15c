"""Celery workers for scale-out: the same job handlers as the in-process threads.

A `ragops worker` process (`api.worker.run_worker`) builds one Runtime (models load once
per process), registers `ragops.run_job(job_id)` and consumes the `RAGOPS_CELERY_QUEUE`
queue. The task only
claims the catalog row and hands it to `WorkerPool.run_job`, which shares its
handler/complete/retry/fail path with the polling threads, so the row, not the message,
decides what runs: a duplicate or stale message is a logged no-op.

Example::

    RAGOPS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 ragops worker --concurrency 2
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from core.config import Settings

if TYPE_CHECKING:
    from celery import Celery

    from core.jobs import WorkerPool

log = logging.getLogger(__name__)

RUN_JOB_TASK = "ragops.run_job"

# A message that finds its job not yet runnable (backoff not over, another worker's lease
# still live) comes back this many seconds after it could be, at the earliest.
_MIN_RESEND_SECONDS = 1.0


def make_celery(settings: Settings) -> Celery:
    """The Celery app for `settings.celery_broker_url` (Redis or RabbitMQ).

    Delivery settings favour "at least once": a message is acknowledged only after its
    job ran (`acks_late`) and is redelivered if the worker process dies mid-job
    (`task_reject_on_worker_lost`); the claim on the catalog row turns that into exactly
    once. `worker_prefetch_multiplier=1` stops one busy worker from hoarding messages
    that an idle one could run. Results are not stored: the job row is the result.
    """
    if not settings.celery_broker_url:
        raise ValueError(
            "RAGOPS_CELERY_BROKER_URL is not set; set it to redis://host:6379/0 or "
            "amqp://user:password@host:5672// to use Celery workers"
        )
    try:
        from celery import Celery
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "Celery workers need the celery package: pip install 'celery[redis]>=5.4'"
        ) from exc

    app = Celery("ragops", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.celery_queue,
        broker_connection_retry_on_startup=True,
        worker_enable_remote_control=False,
    )
    return app


def run_job_message(pool: WorkerPool, job_id: str) -> str:
    """The body of `ragops.run_job`: run the job if its row says so, else explain why not.

    Returns "ran", "waiting" (re-sent for when it becomes runnable) or "skipped"
    (finished, deleted, or a kind this process has no handler for).
    """
    owner = f"{pool.owner_prefix}:celery-{uuid.uuid4().hex[:6]}"
    if pool.run_job(job_id, owner):
        log.info("ran job %s as %s", job_id, owner)
        return "ran"
    wait = pool.queue.due_in(job_id)
    if wait is None:
        log.info("skipped job %s: already finished or deleted", job_id)
        return "skipped"
    # Not runnable yet: a retry whose backoff this clock sees as unfinished, or a job
    # whose worker may have died (its lease runs out at `wait`). Come back then.
    pool.queue.dispatch(job_id, countdown=max(wait, _MIN_RESEND_SECONDS))
    log.info("job %s is not runnable for %.1fs; message re-sent for then", job_id, wait)
    return "waiting"


def register_tasks(app: Celery, pool: WorkerPool) -> None:
    """Bind `ragops.run_job` to `pool`'s handlers (one Runtime per worker process)."""

    # shared=False: a shared task would be bound to every app in the process, so a
    # second app (tests, the dispatcher's own) would reach the first app's pool.
    @app.task(name=RUN_JOB_TASK, ignore_result=True, shared=False)
    def run_job(job_id: str) -> str:
        return run_job_message(pool, job_id)
