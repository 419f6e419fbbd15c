from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from api.ab_schemas import (
    ABEvaluate,
    ABEvaluateResponse,
    ABTestCreate,
    ABTestList,
    ABTestPublic,
    ABTestReport,
    ArmPublic,
    ArmRun,
)
from api.deps import RuntimeDep
from api.routes.evals import run_public
from core.catalog.models import ABTest, KnowledgeBase
from core.kbs import get_kb
from core.runtime import Runtime
from retrieval import ab

router = APIRouter(tags=["ab-tests"])


def ab_test_public(t: ABTest, kb: KnowledgeBase) -> ABTestPublic:
    return ABTestPublic(
        id=t.id,
        kb=kb.name,
        name=t.name,
        status=t.status,  # type: ignore[arg-type]
        arms=[ArmPublic(**a) for a in t.arms],
        created_by=t.created_by,
        created_at=t.created_at,
        stopped_at=t.stopped_at,
    )


def _kb(rt: Runtime, kb: str) -> KnowledgeBase:
    with rt.db.session() as s:
        return get_kb(session=s, name_or_id=kb)


@router.post("/kbs/{kb}/ab-tests", status_code=201, response_model=ABTestPublic)
def create_ab_test(kb: str, body: ABTestCreate, rt: RuntimeDep) -> ABTestPublic:
    """Start splitting the KB's /answer traffic between the arms by weight, sticky per
    `user_id` (else `session_id`). Arms are frozen now: left-out fields become the live
    version, the KB's default generator and prompt. 409 while another test runs."""
    kb_row = _kb(rt, kb)
    row = ab.create_test(
        rt,
        kb=kb_row,
        name=body.name,
        arms=[a.model_dump(exclude_none=True) for a in body.arms],
        created_by=body.created_by,
    )
    return ab_test_public(row, kb_row)


@router.get("/kbs/{kb}/ab-tests", response_model=ABTestList)
def list_ab_tests(
    kb: str, rt: RuntimeDep, status: Literal["running", "stopped"] | None = None
) -> ABTestList:
    kb_row = _kb(rt, kb)
    with rt.db.session() as s:
        rows = ab.list_tests(session=s, kb=kb_row, status=status)
    return ABTestList(tests=[ab_test_public(t, kb_row) for t in rows])


@router.get("/kbs/{kb}/ab-tests/{name}", response_model=ABTestReport)
def get_ab_test(kb: str, name: str, rt: RuntimeDep, testset: str | None = None) -> ABTestReport:
    """The test with, per arm: answers, distinct subjects, feedback with the positive
    rate and its 95% Wilson interval, mean latency, and the latest succeeded eval run of
    the arm's configuration (`?testset=` compares the arms on one test set)."""
    kb_row = _kb(rt, kb)
    result = ab.report(rt, kb=kb_row, name=name, testset=testset)
    public = ab_test_public(result["test"], kb_row).model_dump(exclude={"arms"})
    return ABTestReport(**public, arms=result["arms"])


@router.post("/kbs/{kb}/ab-tests/{name}/stop", response_model=ABTestPublic)
def stop_ab_test(kb: str, name: str, rt: RuntimeDep) -> ABTestPublic:
    """End assignment (later answers are served as without a test); the report stays."""
    kb_row = _kb(rt, kb)
    return ab_test_public(ab.stop_test(rt, kb=kb_row, name=name), kb_row)


@router.post(
    "/kbs/{kb}/ab-tests/{name}/evaluate", status_code=202, response_model=ABEvaluateResponse
)
def evaluate_ab_test(kb: str, name: str, body: ABEvaluate, rt: RuntimeDep) -> ABEvaluateResponse:
    """Queue one eval run per arm (same test set version and parameters); their scores
    appear per arm in GET .../{name} once they succeed."""
    kb_row = _kb(rt, kb)
    runs = ab.evaluate(
        rt,
        kb=kb_row,
        name=name,
        testset=body.testset,
        testset_version=body.testset_version,
        top_k=body.top_k,
        metrics=body.metrics,
    )
    return ABEvaluateResponse(
        test=name, runs=[ArmRun(arm=arm, run=run_public(run)) for arm, run in runs]
    )
