"""Quality gates, promotion decisions (the audit trail) and evaluation schedules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.access import PrincipalDep, check_visible
from api.deps import KbDep, RuntimeDep, SessionDep, load_kb
from api.gate_schemas import (
    DecisionList,
    DecisionPublic,
    GatePublic,
    GateUpdate,
    ScheduleCreate,
    ScheduleList,
    SchedulePublic,
    ScheduleRun,
    ScheduleUpdate,
    SystemJob,
)
from api.runtime import Runtime
from core.access import Principal
from core.catalog.models import EvalSchedule, PromotionDecision
from core.errors import NotFound
from core.kbs import kb_name, kb_names
from eval import gates
from eval import schedules as sched
from eval.scheduler import EVAL_JOB_PREFIX, stored_jobs

router = APIRouter(tags=["quality gates"])
schedules_router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.get("/kbs/{kb}/quality-gate", response_model=GatePublic)
def get_gate(kb: KbDep, session: SessionDep) -> GatePublic:
    row = gates.get_gate(session=session, kb=kb)
    if row is None:
        raise NotFound(
            f"knowledge base {kb.name!r} has no quality gate; "
            f"set one with PUT /v1/kbs/{kb.name}/quality-gate"
        )
    return GatePublic.from_row(row, kb=kb.name)


@router.put("/kbs/{kb}/quality-gate", response_model=GatePublic)
def put_gate(kb: KbDep, body: GateUpdate, rt: RuntimeDep) -> GatePublic:
    """Set the KB's promotion policy, e.g. `{"testset": "smoke", "min_scores":
    {"faithfulness": 0.8}, "max_regression": 0.02}`: promotions then need an eval run of
    the candidate (and of live, for regressions) on that test set that passes it."""
    policy = gates.GatePolicy(
        testset=body.testset,
        testset_version=body.testset_version,
        min_scores=body.min_scores,
        max_regression=body.max_regression,
        metrics=body.metrics,
        params=body.params.model_dump(exclude_none=True),
    )
    row = gates.set_gate(rt, kb=kb, policy=policy, actor=body.actor)
    return GatePublic.from_row(row, kb=kb.name)


@router.delete("/kbs/{kb}/quality-gate", status_code=204)
def delete_gate(kb: KbDep, rt: RuntimeDep) -> None:
    gates.delete_gate(rt, kb=kb)


@router.get("/kbs/{kb}/decisions", response_model=DecisionList)
def list_decisions(
    kb: KbDep, rt: RuntimeDep, limit: int = Query(100, ge=1, le=1000)
) -> DecisionList:
    """Every promotion attempt of the KB, newest first: outcome, checks, who forced it."""
    rows = gates.list_decisions(rt, kb=kb, limit=limit)
    return DecisionList(
        decisions=[DecisionPublic(**gates.decision_dict(d, kb_name=kb.name)) for d in rows]
    )


@router.get("/decisions/{decision_id}", response_model=DecisionPublic)
def get_decision(
    decision_id: str, rt: RuntimeDep, session: SessionDep, viewer: PrincipalDep
) -> DecisionPublic:
    """One decision; a `pending` one is moved on first (its eval runs may have ended)."""
    found = session.get(PromotionDecision, decision_id)
    check_visible(
        viewer,
        found.kb_id if found else None,
        f"promotion decision {decision_id!r} not found",
    )
    d = gates.advance(rt, decision_id)
    return DecisionPublic(**gates.decision_dict(d, kb_name=kb_name(session=session, kb_id=d.kb_id)))


# -- schedules -------------------------------------------------------------------------


def _next_runs(rt: Runtime) -> dict[str, Any]:
    return {j["id"]: j["next_run_time"] for j in stored_jobs(rt)}


def _schedule_public(
    row: EvalSchedule, names: dict[str, str], next_runs: dict[str, Any]
) -> SchedulePublic:
    return SchedulePublic.from_row(
        row,
        kb=names.get(row.kb_id) if row.kb_id else None,
        next_run_time=next_runs.get(f"{EVAL_JOB_PREFIX}{row.id}"),
    )


@schedules_router.get("", response_model=ScheduleList)
def list_schedules(rt: RuntimeDep, session: SessionDep, viewer: PrincipalDep) -> ScheduleList:
    """Eval schedules (changeable here) and the scheduler's own periodic jobs, with next
    run times as the acting scheduler stored them."""
    jobs = stored_jobs(rt)
    next_runs = {j["id"]: j["next_run_time"] for j in jobs}
    rows = [r for r in sched.list_schedules(rt) if _sees_schedule(viewer, r.kb_id)]
    names = kb_names(session=session)
    system = [j for j in jobs if not j["id"].startswith(EVAL_JOB_PREFIX)]
    return ScheduleList(
        schedules=[_schedule_public(r, names, next_runs) for r in rows],
        # Deployment-wide jobs (collection, sync): for keys over every KB only.
        system=[SystemJob(**j) for j in system] if viewer.all_kbs else [],
    )


@schedules_router.post("", status_code=201, response_model=SchedulePublic)
def create_schedule(body: ScheduleCreate, rt: RuntimeDep, viewer: PrincipalDep) -> SchedulePublic:
    kb = load_kb(rt, body.kb, viewer=viewer) if body.kb else None
    if kb is None:
        viewer.require_all_kbs(action="a schedule for every knowledge base")
    row = sched.create_schedule(
        rt,
        name=body.name,
        kind=body.kind,
        testset=body.testset,
        kb=kb,
        testset_version=body.testset_version,
        cron=body.cron,
        params=body.params,
        enabled=body.enabled,
    )
    return _schedule_public(row, {kb.id: kb.name} if kb else {}, {})


@schedules_router.get("/{name}", response_model=SchedulePublic)
def get_schedule(
    name: str, rt: RuntimeDep, session: SessionDep, viewer: PrincipalDep
) -> SchedulePublic:
    next_runs = _next_runs(rt)
    row = visible_schedule(session, name, viewer)
    return _schedule_public(row, kb_names(session=session), next_runs)


@schedules_router.patch("/{name}", response_model=SchedulePublic)
def update_schedule(
    name: str, body: ScheduleUpdate, rt: RuntimeDep, session: SessionDep, viewer: PrincipalDep
) -> SchedulePublic:
    """Change a schedule; the running scheduler picks it up within
    RAGOPS_SCHEDULE_SYNC_SECONDS. Fields left out stay; so do `testset`, `params` and
    `enabled` when null (they have no "none"); a null `kb`, `cron` or `testset_version`
    means every KB, no cron, the newest version."""
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k in ScheduleUpdate.NULLABLE
    }
    with rt.db.session() as own:
        visible_schedule(own, name, viewer)
    if "kb" in changes:
        kb = changes.pop("kb")
        changes["kb_id"] = load_kb(rt, kb, viewer=viewer).id if kb else None
        if kb is None:
            viewer.require_all_kbs(action="a schedule for every knowledge base")
    row = sched.update_schedule(rt, name=name, changes=changes)
    return _schedule_public(row, kb_names(session=session), {})


@schedules_router.delete("/{name}", status_code=204)
def delete_schedule(name: str, rt: RuntimeDep, viewer: PrincipalDep) -> None:
    with rt.db.session() as session:
        visible_schedule(session, name, viewer)
    sched.delete_schedule(rt, name=name)


@schedules_router.post("/{name}/run", status_code=202, response_model=ScheduleRun)
def run_schedule(
    name: str, rt: RuntimeDep, session: SessionDep, viewer: PrincipalDep
) -> ScheduleRun:
    """Run a schedule now (what its trigger does): queues eval runs."""
    row_id = visible_schedule(session, name, viewer).id
    return ScheduleRun(schedule=name, eval_run_ids=sched.run_schedule(rt, row_id))


def _sees_schedule(viewer: Principal, kb_id: str | None) -> bool:
    """A schedule of one KB is the KB's; one of every KB (kb_id None) only for keys over
    every KB."""
    return viewer.all_kbs or (kb_id is not None and viewer.sees(kb_id))


def visible_schedule(session: Session, name: str, viewer: Principal) -> EvalSchedule:
    row = sched.get_schedule(session=session, name=name)
    if not _sees_schedule(viewer, row.kb_id):
        raise NotFound(f"schedule {name!r} not found; list schedules with GET /v1/schedules")
    return row
