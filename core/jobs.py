"""Durable jobs: rows in the catalog, claimed with a lease by in-process worker threads.

A job survives a restart because it is a row: a worker that dies leaves its lease to
expire and another worker (or the restarted process) claims it again. Claiming is one
conditional UPDATE, so it is atomic on SQLite and PostgreSQL alike and two workers never
run the same attempt. Failures retry with exponential backoff up to `max_attempts`;
`PermanentJobError`s (bad input) fail at once with their reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.catalog.models import Job, JobStatus, utcnow
from core.db import Database

log = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """Retrying cannot help (corrupt input, deleted target): fail the job now."""


@dataclass
class JobContext:
    """Handed to a handler so it can report progress; also renews the lease."""

    queue: JobQueue
    job_id: str
    owner: str

    def progress(self, fraction: float, message: str = "") -> None:
        self.queue.report_progress(self.job_id, self.owner, fraction, message)


Handler = Callable[[dict[str, Any], JobContext], str | None]


class JobQueue:
    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float = 60.0,
        backoff_seconds: float = 2.0,
        max_attempts: int = 3,
    ) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff_seconds = backoff_seconds
        self.max_attempts = max_attempts
        self.wakeup = threading.Event()

    # -- submitting -------------------------------------------------------------------
    def submit(
        self,
        session: Session,
        *,
        kind: str,
        payload: dict[str, Any],
        kb_id: str | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Add a job inside the caller's transaction (it runs once that commits)."""
        job = Job(
            kind=kind,
            payload=payload,
            kb_id=kb_id,
            max_attempts=max_attempts or self.max_attempts,
            run_after=utcnow(),
        )
        session.add(job)
        self.wakeup.set()
        return job

    # -- claiming ---------------------------------------------------------------------
    def _claimable(self, now):  # type: ignore[no-untyped-def]
        return or_(
            and_(Job.status == JobStatus.QUEUED, Job.run_after <= now),
            and_(Job.status == JobStatus.RUNNING, Job.lease_until < now),
        )

    def claim(self, owner: str, kinds: set[str] | None = None) -> Job | None:
        """Take the oldest runnable job (or one whose worker's lease expired)."""
        now = utcnow()
        with self.db.session() as s:
            query = select(Job.id, Job.attempts, Job.max_attempts, Job.status).where(
                self._claimable(now)
            )
            if kinds:
                query = query.where(Job.kind.in_(kinds))
            candidates = s.execute(query.order_by(Job.created_at).limit(8)).all()
        for job_id, attempts, max_attempts, status in candidates:
            with self.db.session() as s:
                if status == JobStatus.RUNNING and attempts >= max_attempts:
                    # Its worker died on the last attempt: stop here, with the reason.
                    s.execute(
                        update(Job)
                        .where(Job.id == job_id, self._claimable(now))
                        .values(
                            status=JobStatus.FAILED,
                            finished_at=now,
                            lease_owner=None,
                            error=f"worker lost during attempt {attempts} of "
                            f"{max_attempts}; giving up",
                        )
                    )
                    continue
                claimed = s.execute(
                    update(Job)
                    .where(Job.id == job_id, self._claimable(now))
                    .values(
                        status=JobStatus.RUNNING,
                        lease_owner=owner,
                        lease_until=now + self.lease,
                        attempts=Job.attempts + 1,
                    )
                ).rowcount
            if claimed == 1:
                with self.db.session() as s:
                    return s.get(Job, job_id)
        return None

    # -- while running ----------------------------------------------------------------
    def report_progress(self, job_id: str, owner: str, fraction: float, message: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner)
                .values(
                    progress=max(0.0, min(1.0, fraction)),
                    message=message[:500],
                    lease_until=utcnow() + self.lease,
                )
            )

    def heartbeat(self, job_ids: list[str], owner: str) -> None:
        if not job_ids:
            return
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(
                    Job.id.in_(job_ids), Job.lease_owner == owner, Job.status == JobStatus.RUNNING
                )
                .values(lease_until=utcnow() + self.lease)
            )

    # -- finishing --------------------------------------------------------------------
    def complete(self, job_id: str, owner: str, message: str = "") -> None:
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner)
                .values(
                    status=JobStatus.SUCCEEDED,
                    progress=1.0,
                    message=message[:500],
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                    error=None,
                )
            )

    def fail(self, job_id: str, owner: str, error: str, *, permanent: bool) -> bool:
        """Record a failed attempt. Returns True when the job will be retried."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.lease_owner != owner:
                return False
            retry = not permanent and job.attempts < job.max_attempts
            job.error = error[:4000]
            job.lease_owner = None
            job.lease_until = None
            if retry:
                delay = self.backoff_seconds * (2 ** (job.attempts - 1))
                job.status = JobStatus.QUEUED
                job.run_after = utcnow() + timedelta(seconds=delay)
            else:
                job.status = JobStatus.FAILED
                job.finished_at = utcnow()
            return retry


class WorkerPool:
    """N daemon threads that claim and run jobs until `stop()`.

    `handlers` maps a job kind to a function(payload, ctx) -> optional message. A
    handler's `on_final_failure` hook (see `register`) lets the domain record the reason
    on the object the job was about (e.g. the document revision).
    """

    def __init__(self, queue: JobQueue, *, threads: int = 2, poll_seconds: float = 0.5) -> None:
        self.queue = queue
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, Handler] = {}
        self.on_final_failure: dict[str, Callable[[dict[str, Any], str], None]] = {}
        self.owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._running: dict[str, str] = {}  # job id -> owner
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def register(
        self,
        kind: str,
        handler: Handler,
        on_final_failure: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        self.handlers[kind] = handler
        if on_final_failure:
            self.on_final_failure[kind] = on_final_failure

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for i in range(self.threads):
            t = threading.Thread(
                target=self._loop,
                args=(f"{self.owner_prefix}:{i}",),
                name=f"ragops-worker-{i}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._heartbeat_loop, name="ragops-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.wakeup.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    @property
    def alive(self) -> bool:
        return self.threads == 0 or any(t.is_alive() for t in self._threads)

    def run_one(self, owner: str) -> bool:
        """Claim and run one job; False when nothing was runnable."""
        job = self.queue.claim(owner, set(self.handlers))
        if job is None:
            return False
        with self._lock:
            self._running[job.id] = owner
        try:
            handler = self.handlers[job.kind]
            message = handler(job.payload, JobContext(self.queue, job.id, owner))
            self.queue.complete(job.id, owner, message or "")
        except Exception as exc:  # noqa: BLE001 - a job failure must never kill the worker
            permanent = isinstance(exc, PermanentJobError) or getattr(exc, "permanent", False)
            reason = str(exc) or exc.__class__.__name__
            if not permanent:
                log.warning(
                    "job %s (%s) attempt failed: %s\n%s",
                    job.id,
                    job.kind,
                    reason,
                    traceback.format_exc(),
                )
            retried = self.queue.fail(job.id, owner, reason, permanent=permanent)
            hook = self.on_final_failure.get(job.kind)
            if not retried and hook:
                try:
                    hook(job.payload, reason)
                except Exception:  # noqa: BLE001
                    log.exception("recording the failure of job %s failed", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        return True

    def _loop(self, owner: str) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_one(owner)
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("worker %s: claim failed", owner)
                worked = False
            if not worked:
                self.queue.wakeup.wait(self.poll_seconds)
                self.queue.wakeup.clear()

    def _heartbeat_loop(self) -> None:
        interval = max(0.5, self.queue.lease.total_seconds() / 3)
        while not self._stop.wait(interval):
            with self._lock:
                running = dict(self._running)
            by_owner: dict[str, list[str]] = {}
            for job_id, owner in running.items():
                by_owner.setdefault(owner, []).append(job_id)
            for owner, ids in by_owner.items():
                try:
                    self.queue.heartbeat(ids, owner)
                except Exception:  # noqa: BLE001
                    log.exception("heartbeat failed")
