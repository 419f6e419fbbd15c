"""Quality gates, promotion decisions (the audit trail) and evaluation schedules."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import RuntimeDep
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
from core.catalog.models import EvalSchedule, KnowledgeBase, PromotionDecision, QualityGate
from core.errors import NotFound
from core.kbs import get_kb
from core.runtime import Runtime
from eval import gates
from eval import schedules as sched
from eval.scheduler import EVAL_JOB_PREFIX, stored_jobs

router = APIRouter(tags=["quality gates"])
schedules_router = APIRouter(prefix="/schedules", tags=["schedules"])


def _gate_public(kb_name: str, g: QualityGate) -> GatePublic:
    return GatePublic(
        kb=kb_name,
        testset=g.testset,
        testset_version=g.testset_version,
        min_scores=g.min_scores or {},
        max_regression=g.max_regression,
        metrics=g.metrics or [],
        params=g.params or {},
        updated_by=g.updated_by,
        updated_at=g.updated_at,
    )


def decision_public(rt: Runtime, d: PromotionDecision) -> DecisionPublic:
    with rt.db.session() as s:
        kb = s.get(KnowledgeBase, d.kb_id) if d.kb_id else None
    return DecisionPublic(**gates.decision_dict(d, kb_name=kb.name if kb else None))


@router.get("/kbs/{kb}/quality-gate", response_model=GatePublic)
def get_gate(kb: str, rt: RuntimeDep) -> GatePublic:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        row = gates.get_gate(session=s, kb=kb_row)
        if row is None:
            raise NotFound(
                f"knowledge base {kb_row.name!r} has no quality gate; "
                f"set one with PUT /v1/kbs/{kb_row.name}/quality-gate"
            )
        return _gate_public(kb_row.name, row)


@router.put("/kbs/{kb}/quality-gate", response_model=GatePublic)
def put_gate(kb: str, body: GateUpdate, rt: RuntimeDep) -> GatePublic:
    """Set the KB's promotion policy, e.g. `{"testset": "smoke", "min_scores":
    {"faithfulness": 0.8}, "max_regression": 0.02}`: promotions then need an eval run of
    the candidate (and of live, for regressions) on that test set that passes it."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    policy = gates.GatePolicy(
        testset=body.testset,
        testset_version=body.testset_version,
        min_scores=body.min_scores,
        max_regression=body.max_regression,
        metrics=body.metrics,
        params=body.params.model_dump(exclude_none=True),
    )
    return _gate_public(kb_row.name, gates.set_gate(rt, kb=kb_row, policy=policy, actor=body.actor))


@router.delete("/kbs/{kb}/quality-gate", status_code=204)
def delete_gate(kb: str, rt: RuntimeDep) -> None:
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    gates.delete_gate(rt, kb=kb_row)


@router.get("/kbs/{kb}/decisions", response_model=DecisionList)
def list_decisions(kb: str, rt: RuntimeDep, limit: int = Query(100, ge=1, le=1000)) -> DecisionList:
    """Every promotion attempt of the KB, newest first: outcome, checks, who forced it."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    rows = gates.list_decisions(rt, kb=kb_row, limit=limit)
    return DecisionList(decisions=[decision_public(rt, d) for d in rows])


@router.get("/decisions/{decision_id}", response_model=DecisionPublic)
def get_decision(decision_id: str, rt: RuntimeDep) -> DecisionPublic:
    """One decision; a `pending` one is moved on first (its eval runs may have ended)."""
    return decision_public(rt, gates.advance(rt, decision_id))


# -- schedules -------------------------------------------------------------------------


def _schedule_public(rt: Runtime, row: EvalSchedule, next_runs: dict) -> SchedulePublic:
    with rt.db.session() as s:
        kb = s.get(KnowledgeBase, row.kb_id) if row.kb_id else None
    return SchedulePublic(
        name=row.name,
        kind=row.kind,
        kb=kb.name if kb else None,
        testset=row.testset,
        testset_version=row.testset_version,
        cron=row.cron,
        params=row.params or {},
        enabled=row.enabled,
        last_run_at=row.last_run_at,
        next_run_time=next_runs.get(f"{EVAL_JOB_PREFIX}{row.id}"),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _kb_id(rt: Runtime, kb: str | None) -> str | None:
    if not kb:
        return None
    with rt.db.session() as s:
        return get_kb(session=s, name_or_id=kb).id


@schedules_router.get("", response_model=ScheduleList)
def list_schedules(rt: RuntimeDep) -> ScheduleList:
    """Eval schedules (changeable here) and the scheduler's own periodic jobs, with next
    run times as the acting scheduler stored them."""
    jobs = stored_jobs(rt)
    next_runs = {j["id"]: j["next_run_time"] for j in jobs}
    return ScheduleList(
        schedules=[_schedule_public(rt, r, next_runs) for r in sched.list_schedules(rt)],
        system=[SystemJob(**j) for j in jobs if not j["id"].startswith(EVAL_JOB_PREFIX)],
    )


@schedules_router.post("", status_code=201, response_model=SchedulePublic)
def create_schedule(body: ScheduleCreate, rt: RuntimeDep) -> SchedulePublic:
    kb_row = None
    if body.kb:
        with rt.db.session() as s:
            kb_row = get_kb(session=s, name_or_id=body.kb)
    row = sched.create_schedule(
        rt,
        name=body.name,
        kind=body.kind,
        testset=body.testset,
        kb=kb_row,
        testset_version=body.testset_version,
        cron=body.cron,
        params=body.params,
        enabled=body.enabled,
    )
    return _schedule_public(rt, row, {})


@schedules_router.get("/{name}", response_model=SchedulePublic)
def get_schedule(name: str, rt: RuntimeDep) -> SchedulePublic:
    with rt.db.session() as s:
        row = sched.get_schedule(session=s, name=name)
        s.expunge(row)
    next_runs = {j["id"]: j["next_run_time"] for j in stored_jobs(rt)}
    return _schedule_public(rt, row, next_runs)


@schedules_router.patch("/{name}", response_model=SchedulePublic)
def update_schedule(name: str, body: ScheduleUpdate, rt: RuntimeDep) -> SchedulePublic:
    """Change a schedule; the running scheduler picks it up within
    RAGOPS_SCHEDULE_SYNC_SECONDS."""
    changes = body.model_dump(exclude_unset=True)
    if "kb" in changes:
        changes["kb_id"] = _kb_id(rt, changes.pop("kb"))
    return _schedule_public(rt, sched.update_schedule(rt, name=name, changes=changes), {})


@schedules_router.delete("/{name}", status_code=204)
def delete_schedule(name: str, rt: RuntimeDep) -> None:
    sched.delete_schedule(rt, name=name)


@schedules_router.post("/{name}/run", status_code=202, response_model=ScheduleRun)
def run_schedule(name: str, rt: RuntimeDep) -> ScheduleRun:
    """Run a schedule now (what its trigger does): queues eval runs."""
    with rt.db.session() as s:
        row_id = sched.get_schedule(session=s, name=name).id
    return ScheduleRun(schedule=name, eval_run_ids=sched.run_schedule(rt, row_id))
