"""The deployment's scheduler (`ragops scheduler`): APScheduler with its job store in the
catalog, and a catalog lease so that, however many scheduler processes run, exactly one
acts on each tick. Ticks only queue or nudge durable jobs; workers do the work.

Periodic jobs:
- `gc`: queue garbage collection of retired index versions (`RAGOPS_GC_INTERVAL_SECONDS`).
- `reconcile`: fail revisions and builds whose job ended without finishing them.
- `redispatch` (Celery mode): re-send messages for queued jobs that are overdue.
- `sync`: mirror the catalog's eval schedules (see `eval.schedules`) into cron jobs
  `ragops-eval-<id>`, run `on_ready` schedules, and move pending promotion decisions on
  (`RAGOPS_SCHEDULE_SYNC_SECONDS`), so schedules changed through the API take effect
  without a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from core.catalog.models import (
    DocumentRevision,
    IndexVersion,
    Job,
    JobStatus,
    RevisionStatus,
    VersionStatus,
)
from core.dispatch import redispatch_stale
from core.leases import CatalogLease
from eval.gates import advance_pending
from eval.schedules import evaluate_new_versions, list_schedules, run_schedule
from index.versions import BUILD_JOB, GC_JOB, submit_gc
from ingest.documents import INGEST_JOB

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from eval.services import EvalServices

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
_ACTIVE: SchedulerService | None = None  # the process's service, for job-store references


def run_tick(name: str) -> None:
    """Entry point stored in the job store (a module-level reference survives restarts)."""
    if _ACTIVE is not None:
        _ACTIVE.tick(name)


def run_eval_schedule(schedule_id: str) -> None:
    """Entry point of an eval schedule's cron job."""
    if _ACTIVE is not None:
        _ACTIVE.run_schedule(schedule_id)


EVAL_JOB_PREFIX = "ragops-eval-"


class SchedulerService:
    def __init__(self, rt: EvalServices, *, persistent: bool = True) -> None:
        self.rt = rt
        self.persistent = persistent
        s = rt.settings
        self.lease = CatalogLease(rt.db, LEASE_NAME, ttl_seconds=s.scheduler_lease_seconds)
        self.intervals = {
            "gc": s.gc_interval_seconds,
            "reconcile": s.reconcile_interval_seconds,
            "sync": s.schedule_sync_seconds,
        }
        if s.celery_broker_url:
            self.intervals["redispatch"] = s.celery_redispatch_seconds
        self.scheduler: BaseScheduler | None = None

    # -- what a tick does ---------------------------------------------------------------
    def tick(self, name: str) -> bool:
        """Run one periodic job if this process holds the lease; True when it acted."""
        if not self.lease.acquire():
            return False
        try:
            getattr(self, f"_{name}")()
        except Exception:  # noqa: BLE001 - one failed tick must not stop the scheduler
            log.exception("scheduled job %s failed", name)
        return True

    def _gc(self) -> None:

        with self.rt.db.session() as s:
            pending = s.execute(
                select(Job.id).where(
                    Job.kind == GC_JOB, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
                )
            ).first()
        if pending is None:
            submit_gc(self.rt)

    def _reconcile(self) -> None:

        final = (RevisionStatus.INDEXED, RevisionStatus.FAILED, RevisionStatus.SUPERSEDED)
        with self.rt.db.session() as s:
            open_jobs = {
                (j.kind, j.payload.get("revision_id") or j.payload.get("version_id"))
                for j in s.execute(
                    select(Job).where(
                        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                        Job.kind.in_([INGEST_JOB, BUILD_JOB]),
                    )
                ).scalars()
            }
            stuck = [
                r.id
                for r in s.execute(
                    select(DocumentRevision).where(DocumentRevision.status.not_in(final))
                ).scalars()
                if (INGEST_JOB, r.id) not in open_jobs
            ]
            if stuck:
                s.execute(
                    update(DocumentRevision)
                    .where(DocumentRevision.id.in_(stuck))
                    .values(
                        status=RevisionStatus.FAILED,
                        error="its ingestion job ended without finishing it; use reprocess",
                    )
                )
            builds = [
                v.id
                for v in s.execute(
                    select(IndexVersion).where(
                        IndexVersion.status == VersionStatus.BUILDING, IndexVersion.error.is_(None)
                    )
                ).scalars()
                if (BUILD_JOB, v.id) not in open_jobs
            ]
            if builds:
                s.execute(
                    update(IndexVersion)
                    .where(IndexVersion.id.in_(builds))
                    .values(
                        error="its build job ended without finishing it; retire it and build again"
                    )
                )

        advance_pending(self.rt)
        if stuck or builds:
            log.warning(
                "reconcile: %d revisions and %d builds had no job left", len(stuck), len(builds)
            )

    def _sync(self) -> None:
        """Catalog eval schedules → cron jobs; then on_ready schedules and pending gates."""

        if self.scheduler is not None:
            from apscheduler.triggers.cron import CronTrigger

            wanted = {
                f"{EVAL_JOB_PREFIX}{row.id}": row
                for row in list_schedules(self.rt)
                if row.enabled and row.kind == "live_nightly" and row.cron
            }
            for job in self.scheduler.get_jobs():
                if job.id.startswith(EVAL_JOB_PREFIX) and job.id not in wanted:
                    job.remove()
            for job_id, row in wanted.items():
                trigger = CronTrigger.from_crontab(row.cron, timezone="UTC")
                current = self.scheduler.get_job(job_id)
                if current is not None and str(current.trigger) == str(trigger):
                    continue
                self.scheduler.add_job(
                    "eval.scheduler:run_eval_schedule",
                    trigger,
                    args=[row.id],
                    id=job_id,
                    name=f"eval schedule {row.name}",
                    replace_existing=True,
                )
        evaluate_new_versions(self.rt)
        advance_pending(self.rt)

    def run_schedule(self, schedule_id: str) -> bool:
        """A cron-triggered eval schedule, if this process holds the lease."""

        if not self.lease.acquire():
            return False
        try:
            run_schedule(self.rt, schedule_id)
        except Exception:  # noqa: BLE001
            log.exception("eval schedule %s failed", schedule_id)
        return True

    def _redispatch(self) -> None:

        redispatch_stale(self.rt.jobs, self.rt.settings.celery_redispatch_seconds)

    # -- running ------------------------------------------------------------------------
    def build(self, *, blocking: bool) -> BaseScheduler:
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        global _ACTIVE
        _ACTIVE = self
        store: Any = (
            SQLAlchemyJobStore(engine=self.rt.db.engine, tablename="apscheduler_jobs")
            if self.persistent
            else MemoryJobStore()
        )
        cls = BlockingScheduler if blocking else BackgroundScheduler
        scheduler = cls(
            jobstores={"default": store},
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for name, seconds in self.intervals.items():
            scheduler.add_job(
                "eval.scheduler:run_tick",
                "interval",
                seconds=seconds,
                args=[name],
                id=f"ragops-{name}",
                replace_existing=True,
            )
        self.scheduler = scheduler
        self._sync_jobs_only()
        return scheduler

    def _sync_jobs_only(self) -> None:
        """At start-up: cron jobs for the catalog's schedules before the first tick."""
        try:
            self.tick("sync")
        except Exception:  # noqa: BLE001
            log.exception("initial schedule sync failed")

    def jobs(self) -> list[dict[str, Any]]:
        if self.scheduler is None:
            return []
        return [
            {"id": j.id, "name": j.name, "trigger": str(j.trigger), "next_run_time": _next(j)}
            for j in self.scheduler.get_jobs()
        ]


def _next(job: Any) -> Any:
    """A job's next run; None while its scheduler has not started."""
    return getattr(job, "next_run_time", None)


def stored_jobs(rt: EvalServices) -> list[dict[str, Any]]:
    """What the acting scheduler has in its job store (the catalog), read from any
    process: id, trigger, next run. Empty when no scheduler ever ran here."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import inspect

    if not inspect(rt.db.engine).has_table("apscheduler_jobs"):
        return []
    store = SQLAlchemyJobStore(engine=rt.db.engine, tablename="apscheduler_jobs")
    try:
        jobs = store.get_all_jobs()
    except Exception:  # noqa: BLE001 - a job referring to code that moved
        log.exception("reading the scheduler's job store failed")
        return []
    return [
        {"id": j.id, "name": j.name, "trigger": str(j.trigger), "next_run_time": j.next_run_time}
        for j in jobs
    ]
