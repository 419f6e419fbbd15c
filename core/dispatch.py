"""Announcing jobs to Celery workers; the catalog row stays the source of truth.

`JobQueue.submit` (after COMMIT) and `JobQueue.fail` (on retry, with the backoff as
`countdown`) call the queue's dispatcher. A message is only "job <id> may be runnable":
the worker claims that row with the same conditional UPDATE the in-process threads use,
so a duplicate finds it taken and a stale one finds it finished.

Messages can still be lost (a broker restart without persistence, a publish during an
outage). `redispatch_stale` re-sends them; every `ragops worker` runs it in a background
thread every `RAGOPS_CELERY_REDISPATCH_SECONDS`, so Celery mode needs no extra process.

Example::

    queue.dispatcher = make_dispatcher(settings)   # None unless a broker URL is set
    redispatch_stale(queue, older_than_seconds=30)
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, update

from core.catalog.models import Job, JobStatus, utcnow
from core.celery_app import RUN_JOB_TASK, make_celery
from core.config import Settings
from core.jobs import Dispatcher, JobQueue

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class CeleryDispatcher:
    """Publishes `ragops.run_job(job_id)` messages. Cheap to build: the Celery app and its
    broker connection are created on the first send, so an API process only pays for
    Celery when it actually submits work."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Celery | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Celery:
        with self._lock:
            if self._app is None:
                self._app = make_celery(self.settings)
            return self._app

    def send(self, job_id: str, *, countdown: float = 0.0) -> None:
        self.app.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            queue=self.settings.celery_queue,
            countdown=countdown if countdown > 0 else None,
        )

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


def make_dispatcher(settings: Settings) -> Dispatcher | None:
    """A Celery dispatcher when `RAGOPS_CELERY_BROKER_URL` is set, else None (in-process
    threads poll the catalog instead)."""
    return CeleryDispatcher(settings) if settings.celery_broker_url else None


def redispatch_stale(queue: JobQueue, *, older_than_seconds: float) -> list[str]:
    """Re-send run messages for jobs overdue by more than `older_than_seconds`: queued
    jobs whose `run_after` is that far past, and running jobs whose lease expired that
    long ago (their worker died). Returns the ids sent.

    Each re-send first moves the job's deadline to now with a conditional UPDATE, so when
    several workers run this at once only one of them sends a given job.
    """
    if queue.dispatcher is None:
        return []
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than_seconds)
    with queue.db.session() as s:
        rows = s.execute(
            select(Job.id, Job.status, Job.run_after, Job.lease_until)
            .where(
                or_(
                    and_(Job.status == JobStatus.QUEUED, Job.run_after < cutoff),
                    and_(Job.status == JobStatus.RUNNING, Job.lease_until < cutoff),
                )
            )
            .order_by(Job.created_at)
        ).all()
    sent: list[str] = []
    for job_id, status, run_after, lease_until in rows:
        # Still expired after the bump (lease_until = now < the claimer's now), so
        # claimability is unchanged; only the next redispatch waits another interval.
        if status == JobStatus.QUEUED:
            bump = update(Job).where(
                Job.id == job_id, Job.status == status, Job.run_after == run_after
            )
            bump = bump.values(run_after=now)
        else:
            bump = update(Job).where(
                Job.id == job_id, Job.status == status, Job.lease_until == lease_until
            )
            bump = bump.values(lease_until=now)
        with queue.db.session() as s:
            won = s.execute(bump).rowcount == 1
        if won and queue.dispatch(job_id):
            sent.append(job_id)
    if sent:
        log.info("re-sent %d overdue job(s) to the workers: %s", len(sent), ", ".join(sent))
    return sent


def redispatch_forever(
    queue: JobQueue, *, every_seconds: float, stop: threading.Event
) -> threading.Thread:
    """Run `redispatch_stale` now and then every `every_seconds` until `stop` is set."""

    def loop() -> None:
        while True:
            try:
                redispatch_stale(queue, older_than_seconds=every_seconds)
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("re-sending overdue jobs failed; trying again later")
            if stop.wait(every_seconds):
                return

    thread = threading.Thread(target=loop, name="ragops-redispatch", daemon=True)
    thread.start()
    return thread
