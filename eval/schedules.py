"""Evaluation schedules: what the scheduler evaluates, and when.

Two kinds, both stored in the catalog (`EvalSchedule`) so the API can list and change
them while `ragops scheduler` runs elsewhere (it re-reads them every
`RAGOPS_SCHEDULE_SYNC_SECONDS`):

- `live_nightly`: on a cron expression (UTC, default "0 2 * * *"), evaluate the live
  version of one KB, or of every KB when `kb` is left out.
- `on_ready`: evaluate every version that becomes ready after the schedule was created
  (checked when a build ends, and on every sync).

Example::

    create_schedule(rt, name="nightly", kind="live_nightly", testset="smoke")
    run_schedule(rt, "nightly")   # what the cron trigger does: queues eval runs
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import (
    EvalRun,
    EvalSchedule,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
    utcnow,
)
from core.errors import Duplicate, InvalidInput, NotFound
from eval.runs import prepare_eval, queue_run
from eval.testsets import get_testset

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from eval.services import EvalServices

log = logging.getLogger(__name__)

KINDS = ("live_nightly", "on_ready")
DEFAULT_CRON = "0 2 * * *"
PARAMS = ("generator", "prompt", "top_k", "mode", "metrics")


def check_cron(expr: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        raise InvalidInput(
            f"cron {expr!r} is not a valid 5-field crontab expression "
            f"(minute hour day month weekday, e.g. {DEFAULT_CRON!r}): {exc}"
        ) from exc
    return expr


def _check(rt: EvalServices, s: Session, row: EvalSchedule) -> None:
    if row.kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {row.kind!r}")
    if row.kind == "live_nightly":
        row.cron = check_cron(row.cron or DEFAULT_CRON)
    elif row.cron:
        raise InvalidInput("cron applies to live_nightly schedules only; on_ready has none")
    unknown = set(row.params or {}) - set(PARAMS)
    if unknown:
        raise InvalidInput(f"unknown param {sorted(unknown)[0]!r}; allowed: {', '.join(PARAMS)}")
    get_testset(session=s, name=row.testset, version=row.testset_version)
    # The eval parameters must resolve now (generator, prompt, top_k, mode, metrics).
    kbs = [s.get(KnowledgeBase, row.kb_id)] if row.kb_id else []
    for kb in kbs:
        assert kb is not None
        _prepare(rt, s, row, kb, number=None, tolerate_no_live=True)


def _prepare(
    rt: EvalServices,
    s: Session,
    row: EvalSchedule,
    kb: KnowledgeBase,
    *,
    number: int | None,
    tolerate_no_live: bool = False,
) -> EvalRun | None:
    try:
        return prepare_eval(
            rt,
            session=s,
            testset=row.testset,
            kb=kb,
            testset_version=row.testset_version,
            index_version=number,
            **dict(row.params or {}),
        )
    except NotFound as exc:
        if tolerate_no_live and "no live index version" in exc.message:
            return None
        raise


def create_schedule(
    rt: EvalServices,
    *,
    name: str,
    kind: str,
    testset: str,
    kb: KnowledgeBase | None = None,
    testset_version: int | None = None,
    cron: str | None = None,
    params: dict[str, Any] | None = None,
    enabled: bool = True,
) -> EvalSchedule:
    name = name.strip()
    if not name:
        raise InvalidInput("name is empty; give the schedule a name")
    with rt.db.session() as s:
        if s.execute(select(EvalSchedule).where(EvalSchedule.name == name)).first():
            raise Duplicate(f"schedule {name!r} exists; change it with PATCH /v1/schedules/{name}")
        row = EvalSchedule(
            name=name,
            kind=kind,
            kb_id=kb.id if kb else None,
            testset=testset,
            testset_version=testset_version,
            cron=cron,
            params=dict(params or {}),
            enabled=enabled,
        )
        _check(rt, s, row)
        s.add(row)
        s.flush()
        s.expunge(row)
    return row


def get_schedule(*, session: Session, name: str) -> EvalSchedule:
    row = session.execute(
        select(EvalSchedule).where(EvalSchedule.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"schedule {name!r} not found; list schedules with GET /v1/schedules")
    return row


def update_schedule(rt: EvalServices, *, name: str, changes: dict[str, Any]) -> EvalSchedule:
    """Change fields (cron, enabled, testset, testset_version, params, kb_id)."""
    allowed = {"cron", "enabled", "testset", "testset_version", "params", "kb_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"cannot change {sorted(unknown)[0]!r}; allowed: {sorted(allowed)}")
    with rt.db.session() as s:
        row = get_schedule(session=s, name=name)
        for key, value in changes.items():
            setattr(row, key, value)
        _check(rt, s, row)
        s.flush()
        s.expunge(row)
    return row


def delete_schedule(rt: EvalServices, *, name: str) -> None:
    with rt.db.session() as s:
        s.delete(get_schedule(session=s, name=name))


def list_schedules(rt: EvalServices) -> list[EvalSchedule]:
    with rt.db.session() as s:
        rows = list(s.execute(select(EvalSchedule).order_by(EvalSchedule.name)).scalars())
        s.expunge_all()
    return rows


def run_schedule(rt: EvalServices, name_or_id: str) -> list[str]:
    """Do what the schedule does now; returns the queued eval run ids."""
    with rt.db.session() as s:
        row = s.get(EvalSchedule, name_or_id) or get_schedule(session=s, name=name_or_id)
        if row.kind == "on_ready":
            queued = _queue_new_versions(rt, s, row)
        else:
            queued = _queue_live(rt, s, row)
        row.last_run_at = utcnow()
    if queued:
        log.info("schedule %s queued %d eval runs", name_or_id, len(queued))
    return queued


def _kbs(s: Session, row: EvalSchedule) -> list[KnowledgeBase]:
    query = select(KnowledgeBase).order_by(KnowledgeBase.name)
    if row.kb_id:
        query = query.where(KnowledgeBase.id == row.kb_id)
    return list(s.execute(query).scalars())


def _queue_live(rt: EvalServices, s: Session, row: EvalSchedule) -> list[str]:
    queued = []
    for kb in _kbs(s, row):
        try:
            run = _prepare(rt, s, row, kb, number=None, tolerate_no_live=True)
        except (NotFound, InvalidInput) as exc:  # e.g. a test set deleted since
            log.warning("schedule %s: skipped %s: %s", row.name, kb.name, exc)
            continue
        if run is not None:
            queued.append(queue_run(rt, s, run).id)
    return queued


def _queue_new_versions(rt: EvalServices, s: Session, row: EvalSchedule) -> list[str]:
    """Every version that became ready since the schedule exists and has no run with
    this schedule's key yet."""
    queued = []
    for kb in _kbs(s, row):
        versions = s.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == kb.id,
                IndexVersion.status.in_([VersionStatus.READY, VersionStatus.LIVE]),
                IndexVersion.ready_at >= row.created_at,
            )
        ).scalars()
        for version in versions:
            try:
                run = _prepare(rt, s, row, kb, number=version.number)
            except (NotFound, InvalidInput) as exc:
                log.warning(
                    "schedule %s: skipped %s v%d: %s", row.name, kb.name, version.number, exc
                )
                continue
            assert run is not None
            seen = s.execute(select(EvalRun.id).where(EvalRun.key_hash == run.key_hash)).first()
            if seen is None:
                queued.append(queue_run(rt, s, run).id)
    return queued


def evaluate_new_versions(rt: EvalServices) -> list[str]:
    """Run every enabled `on_ready` schedule (a build just ended, or a sync tick)."""
    with rt.db.session() as s:
        names = list(
            s.execute(
                select(EvalSchedule.id).where(
                    EvalSchedule.kind == "on_ready", EvalSchedule.enabled.is_(True)
                )
            ).scalars()
        )
    queued: list[str] = []
    for schedule_id in names:
        try:
            queued += run_schedule(rt, schedule_id)
        except Exception:  # noqa: BLE001 - one bad schedule must not block the others
            log.exception("on_ready schedule %s failed", schedule_id)
    return queued
