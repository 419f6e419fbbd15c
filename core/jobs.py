"""Durable jobs: rows in the catalog, claimed with a lease by in-process worker threads.

A job survives a restart because it is a row: a worker that dies leaves its lease to
expire and another worker (or the restarted process) claims it again. Claiming is one
conditional UPDATE, so it is atomic on SQLite and PostgreSQL alike and two workers never
run the same attempt. Failures retry with exponential backoff up to `max_attempts`;
`PermanentJobError`s (bad input) fail at once with their reason.

Scale-out: with a `dispatcher` set (core/dispatch.py), every committed job and every
retry is also announced to Celery workers, which claim that one row with the same
conditional UPDATE (`claim_specific`); a message delivered twice finds the row taken.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, Select, and_, event, or_, select, update
from sqlalchemy.orm import Session

from core.catalog.models import Job, JobStatus, new_id, utcnow
from core.db import Database
from core.logs import bind, current_request_id
from core.metrics import count_job

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


@dataclass
class BatchItem:
    """One job of a batch handed to a batch handler (see `WorkerPool.register_batch`)."""

    job_id: str
    payload: dict[str, Any]
    ctx: JobContext


# A job's outcome: its completion message, or the exception it failed with.
Outcome = str | None | BaseException
# Takes several claimed jobs of one kind at once and yields each one's outcome as soon as
# it is known (in any order); jobs it never yields fail as "no outcome".
BatchHandler = Callable[[list[BatchItem]], Iterator[tuple[BatchItem, Outcome]]]

# Session.info keys: job ids to announce once the caller's transaction commits.
_PENDING = "ragops.jobs.pending_dispatch"
_HOOKED = "ragops.jobs.dispatch_hooked"


class Dispatcher(Protocol):
    """Announces runnable jobs to out-of-process workers (Celery: core/dispatch.py).

    A message carries only the job id; the row decides whether anything runs, so a lost
    or duplicated message is harmless (see `core.dispatch.redispatch_stale`).
    """

    def send(self, job_id: str, *, countdown: float = 0.0) -> None:
        """Ask a worker to run `job_id` in `countdown` seconds. Raises on broker errors."""
        ...

    def close(self) -> None:
        """Release broker connections."""
        ...


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
        # Called with a job that failed because its worker died on the last attempt.
        self.on_abandoned: Callable[[Job], None] | None = None
        self.dispatcher: Dispatcher | None = None

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
        """Add a job inside the caller's transaction (it runs once that commits). The
        request id bound to the caller's logs (`core.logs`) goes into the payload as
        `request_id`, so the worker that runs the job logs under it too."""
        request_id = current_request_id()
        if request_id and "request_id" not in payload:
            payload = {**payload, "request_id": request_id}
        job = Job(
            id=new_id(),  # known now, so the after-commit hook needs no flush or query
            kind=kind,
            payload=payload,
            kb_id=kb_id,
            max_attempts=max_attempts or self.max_attempts,
            run_after=utcnow(),
        )
        session.add(job)
        if self.dispatcher is not None:
            self._dispatch_after_commit(session, job.id)
        self.wakeup.set()
        return job

    def _dispatch_after_commit(self, session: Session, job_id: str) -> None:
        """Announce the job only after COMMIT: a worker told earlier would not see the row
        yet, and a rolled-back job must never be announced at all."""
        session.info.setdefault(_PENDING, []).append(job_id)
        if session.info.get(_HOOKED):
            return
        session.info[_HOOKED] = True

        def after_commit(s: Session) -> None:
            for pending in s.info.pop(_PENDING, []):
                self.dispatch(pending)

        def after_rollback(s: Session) -> None:
            s.info.pop(_PENDING, None)

        event.listen(session, "after_commit", after_commit)
        event.listen(session, "after_rollback", after_rollback)

    def dispatch(self, job_id: str, *, countdown: float = 0.0) -> bool:
        """Send a run message if a dispatcher is set. Never raises: the row is already
        durable, and `redispatch_stale` re-sends what a broker outage swallowed."""
        if self.dispatcher is None:
            return False
        try:
            self.dispatcher.send(job_id, countdown=countdown)
        except Exception:  # noqa: BLE001
            log.exception("could not dispatch job %s; it is re-sent once it is overdue", job_id)
            return False
        return True

    # -- claiming ---------------------------------------------------------------------
    def _claimable(self, now):  # type: ignore[no-untyped-def]
        return or_(
            and_(Job.status == JobStatus.QUEUED, Job.run_after <= now),
            and_(Job.status == JobStatus.RUNNING, Job.lease_until < now),
        )

    def _candidates(self, now: datetime, kinds: set[str] | None) -> Select[Any]:
        query = select(Job.id, Job.attempts, Job.max_attempts, Job.status).where(
            self._claimable(now)
        )
        return query.where(Job.kind.in_(kinds)) if kinds else query

    def claim(self, owner: str, kinds: set[str] | None = None) -> Job | None:
        """Take the oldest runnable job (or one whose worker's lease expired)."""
        now = utcnow()
        with self.db.session() as s:
            query = self._candidates(now, kinds).order_by(Job.created_at).limit(8)
            candidates = s.execute(query).all()
        for candidate in candidates:
            job = self._take(candidate, owner, now)
            if job is not None:
                return job
        return None

    def claim_more(self, owner: str, kind: str, limit: int) -> list[Job]:
        """Up to `limit` more queued jobs of `kind` (at most half of those waiting), oldest
        first, for an owner that already runs one (a batch). One conditional UPDATE takes
        them; only rows still claimable are taken, so a job never runs twice. Jobs whose
        lease expired are left to `claim`, which also gives up on those out of attempts."""
        if limit <= 0:
            return []
        now = utcnow()
        with self.db.session() as s:
            ids = list(
                s.execute(
                    select(Job.id)
                    .where(Job.kind == kind, Job.status == JobStatus.QUEUED, Job.run_after <= now)
                    .order_by(Job.created_at)
                    .limit(2 * limit)
                ).scalars()
            )
        # A fair share: half of what is waiting (up to `limit`), so other workers (and a
        # Celery worker's peers) get work too instead of one worker taking it all.
        ids = ids[: len(ids) // 2]
        if not ids:
            return []
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED, Job.run_after <= now)
                .values(
                    status=JobStatus.RUNNING,
                    lease_owner=owner,
                    lease_until=now + self.lease,
                    attempts=Job.attempts + 1,
                )
            )
        with self.db.session() as s:
            # Candidates were queued, so those now running under this owner are the ones
            # this UPDATE took (another worker's claim would carry its own owner).
            taken = list(
                s.execute(
                    select(Job).where(
                        Job.id.in_(ids), Job.lease_owner == owner, Job.status == JobStatus.RUNNING
                    )
                ).scalars()
            )
        order = {job_id: i for i, job_id in enumerate(ids)}
        return sorted(taken, key=lambda job: order[job.id])

    def claim_specific(self, job_id: str, owner: str, kinds: set[str] | None = None) -> Job | None:
        """Take exactly this job if it is runnable now (what a Celery message asks for).

        None when it is finished, gone, running under a live lease, not due yet, or of a
        kind outside `kinds`; `due_in` tells those cases apart.
        """
        now = utcnow()
        with self.db.session() as s:
            candidate = s.execute(self._candidates(now, kinds).where(Job.id == job_id)).first()
        return self._take(candidate, owner, now) if candidate is not None else None

    def _take(self, candidate: Row[Any], owner: str, now: datetime) -> Job | None:
        """The one conditional UPDATE both claim paths share: at most one owner wins."""
        job_id, attempts, max_attempts, status = candidate
        if status == JobStatus.RUNNING and attempts >= max_attempts:
            self._abandon(job_id, attempts, max_attempts, now)
            return None
        with self.db.session() as s:
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
        if claimed != 1:
            return None
        with self.db.session() as s:
            return s.get(Job, job_id)

    def _abandon(self, job_id: str, attempts: int, max_attempts: int, now: datetime) -> None:
        """Its worker died on the last attempt: fail it with the reason, and let the
        domain record that reason too (`on_abandoned`, set by the WorkerPool)."""
        reason = f"worker lost during attempt {attempts} of {max_attempts}; giving up"
        with self.db.session() as s:
            failed = s.execute(
                update(Job)
                .where(Job.id == job_id, self._claimable(now))
                .values(status=JobStatus.FAILED, finished_at=now, lease_owner=None, error=reason)
            ).rowcount
            job = s.get(Job, job_id) if failed == 1 else None
        if job is not None and self.on_abandoned is not None:
            self.on_abandoned(job)

    def due_in(self, job_id: str) -> float | None:
        """Seconds until this job could be claimed (0 if it can now); None once it is
        finished or gone. For a running job that is when its current lease runs out."""
        with self.db.session() as s:
            row = s.execute(
                select(Job.status, Job.run_after, Job.lease_until).where(Job.id == job_id)
            ).first()
        if row is None or row.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return None
        at = row.run_after if row.status == JobStatus.QUEUED else row.lease_until
        return max(0.0, (at - utcnow()).total_seconds()) if at is not None else 0.0

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
        """Record a failed attempt. Returns True when the job will be retried (and, with
        a dispatcher, a run message is sent due when the backoff ends)."""
        delay = 0.0
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
        if retry:
            self.dispatch(job_id, countdown=delay)
        return retry


def _is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentJobError) or bool(getattr(exc, "permanent", False))


class WorkerPool:
    """N daemon threads that claim and run jobs until `stop()`.

    `handlers` maps a job kind to a function(payload, ctx) -> optional message. A
    handler's `on_final_failure` hook (see `register`) lets the domain record the reason
    on the object the job was about (e.g. the document revision). Listeners (see
    `listen`) hear that a job of a kind ended, succeeded or not, so another package can
    react (quality gates waiting for a build or an eval) without the handler knowing.
    """

    def __init__(self, queue: JobQueue, *, threads: int = 2, poll_seconds: float = 0.5) -> None:
        self.queue = queue
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, Handler] = {}
        self.batch_handlers: dict[str, tuple[BatchHandler, int]] = {}
        self.on_final_failure: dict[str, Callable[[dict[str, Any], str], None]] = {}
        self.listeners: dict[str, list[Callable[[dict[str, Any], bool], None]]] = {}
        queue.on_abandoned = self._record_abandoned
        self.owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._running: dict[str, str] = {}  # job id -> owner
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._heartbeat: threading.Thread | None = None

    def _record_abandoned(self, job: Job) -> None:
        count_job(job.kind, failed=True)
        hook = self.on_final_failure.get(job.kind)
        if hook is not None:
            try:
                hook(job.payload, job.error or "worker lost")
            except Exception:  # noqa: BLE001
                log.exception("recording the failure of abandoned job %s failed", job.id)
        self._notify(job.kind, job.payload, succeeded=False)

    def listen(self, kind: str, listener: Callable[[dict[str, Any], bool], None]) -> None:
        """Call `listener(payload, succeeded)` after a job of `kind` ends for good."""
        self.listeners.setdefault(kind, []).append(listener)

    def _notify(self, kind: str, payload: dict[str, Any], *, succeeded: bool) -> None:
        for listener in self.listeners.get(kind, ()):
            try:
                listener(payload, succeeded)
            except Exception:  # noqa: BLE001 - a listener must never fail the job
                log.exception("listener for %s jobs failed", kind)

    def register(
        self,
        kind: str,
        handler: Handler,
        on_final_failure: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        self.handlers[kind] = handler
        if on_final_failure:
            self.on_final_failure[kind] = on_final_failure

    def register_batch(
        self,
        kind: str,
        handler: BatchHandler,
        *,
        max_batch: int,
        on_final_failure: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        """Run jobs of `kind` in batches: a worker that claims one also takes up to
        `max_batch - 1` more queued ones and hands them all to `handler`. Each job still
        completes, retries or fails on its own, as soon as the handler yields its outcome."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")

        def single(payload: dict[str, Any], ctx: JobContext) -> str | None:
            item = BatchItem(ctx.job_id, payload, ctx)
            for _, outcome in handler([item]):
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            raise RuntimeError("the batch handler gave no outcome")

        self.register(kind, single, on_final_failure)
        self.batch_handlers[kind] = (handler, max_batch)

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
        self.start_heartbeat()

    def start_heartbeat(self) -> None:
        """Renew the leases of running jobs; a Celery worker runs jobs without polling
        threads but still needs this, or a long job would look abandoned."""
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="ragops-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.wakeup.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout)
            self._heartbeat = None

    @property
    def alive(self) -> bool:
        return self.threads == 0 or any(t.is_alive() for t in self._threads)

    def run_one(self, owner: str) -> bool:
        """Claim and run one job; False when nothing was runnable."""
        job = self.queue.claim(owner, set(self.handlers))
        if job is None:
            return False
        self._execute_claimed(job, owner)
        return True

    def run_job(self, job_id: str, owner: str) -> bool:
        """Run exactly this job, the way `run_one` would; False when it was not runnable
        (see `JobQueue.claim_specific`). This is what a Celery message triggers."""
        job = self.queue.claim_specific(job_id, owner, set(self.handlers))
        if job is None:
            return False
        self._execute_claimed(job, owner)
        return True

    def _execute_claimed(self, job: Job, owner: str) -> None:
        batch = self.batch_handlers.get(job.kind)
        if batch is None:
            self._execute(job, owner)
            return
        handler, max_batch = batch
        try:
            more = self.queue.claim_more(owner, job.kind, max_batch - 1)
        except Exception:  # noqa: BLE001 - the claimed job still runs, alone
            log.exception("claiming more %s jobs failed", job.kind)
            more = []
        for extra in more:
            log.info("ran job %s as %s, batched with job %s", extra.id, owner, job.id)
        self._execute_batch(handler, [job, *more], owner)

    def _execute_batch(self, handler: BatchHandler, jobs: list[Job], owner: str) -> None:
        """Run a batch handler; record each job's outcome the moment it is yielded."""
        items = [BatchItem(j.id, j.payload, JobContext(self.queue, j.id, owner)) for j in jobs]
        kinds = {j.id: j.kind for j in jobs}
        with self._lock:
            for j in jobs:
                self._running[j.id] = owner
        pending = {item.job_id: item for item in items}
        # Lines about the whole batch carry every request id it serves ("a,b"); each
        # job's own outcome is logged under its own (`_record`).
        request_ids = dict.fromkeys(j.payload.get("request_id") for j in jobs)
        batch_request_id = ",".join(r for r in request_ids if r) or None
        try:
            with bind(request_id=batch_request_id):
                for item, outcome in handler(items):
                    if pending.pop(item.job_id, None) is not None:
                        self._record(item.job_id, kinds[item.job_id], item.payload, owner, outcome)
        except Exception as exc:  # noqa: BLE001 - what is left fails with the cause
            with bind(request_id=batch_request_id):
                log.warning("batch of %s jobs failed: %s", len(pending), exc, exc_info=True)
            for item in list(pending.values()):
                self._record(item.job_id, kinds[item.job_id], item.payload, owner, exc, logged=True)
            pending.clear()
        finally:
            for item in pending.values():
                self._record(
                    item.job_id,
                    kinds[item.job_id],
                    item.payload,
                    owner,
                    RuntimeError("the batch handler gave no outcome"),
                )
            with self._lock:
                for j in jobs:
                    self._running.pop(j.id, None)

    def _execute(self, job: Job, owner: str) -> None:
        """Run a claimed job's handler and record the outcome (complete, retry or fail)."""
        with self._lock:
            self._running[job.id] = owner
        try:
            handler = self.handlers[job.kind]
            try:
                with bind(request_id=job.payload.get("request_id"), job_id=job.id):
                    outcome: Outcome = handler(job.payload, JobContext(self.queue, job.id, owner))
            except Exception as exc:  # noqa: BLE001 - a job failure must never kill the worker
                outcome = exc  # logged once, with its traceback, by `_record`
            self._record(job.id, job.kind, job.payload, owner, outcome)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _record(
        self,
        job_id: str,
        kind: str,
        payload: dict[str, Any],
        owner: str,
        outcome: Outcome,
        *,
        logged: bool = False,
    ) -> None:
        """Complete the job, or record a failed attempt (retry, or fail for good and tell
        the domain's `on_final_failure` hook and the listeners). Logs a failure once, under
        the job's request id, with its traceback unless it is permanent (bad input) or
        already `logged`."""
        with bind(request_id=payload.get("request_id"), job_id=job_id):
            self._record_outcome(job_id, kind, payload, owner, outcome, logged=logged)

    def _record_outcome(
        self,
        job_id: str,
        kind: str,
        payload: dict[str, Any],
        owner: str,
        outcome: Outcome,
        *,
        logged: bool,
    ) -> None:
        if not isinstance(outcome, BaseException):
            self.queue.complete(job_id, owner, outcome or "")
            count_job(kind, failed=False)
            log.info("job %s (%s) succeeded: %s", job_id, kind, outcome or "done")
            self._notify(kind, payload, succeeded=True)
            return
        reason = str(outcome) or outcome.__class__.__name__
        permanent = _is_permanent(outcome)
        retried = self.queue.fail(job_id, owner, reason, permanent=permanent)
        count_job(kind, failed=True, final=not retried)
        log.warning(
            "job %s (%s) %s: %s",
            job_id,
            kind,
            "attempt failed, will retry" if retried else "failed",
            reason,
            exc_info=None if permanent or logged else outcome,
        )
        if retried:
            return
        hook = self.on_final_failure.get(kind)
        if hook:
            try:
                hook(payload, reason)
            except Exception:  # noqa: BLE001
                log.exception("recording the failure of job %s failed", job_id)
        self._notify(kind, payload, succeeded=False)

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
