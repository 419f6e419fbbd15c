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
    ArmRun,
)
from api.deps import KbDep, RuntimeDep, SessionDep
from api.routes.evals import run_public
from eval import ab

router = APIRouter(tags=["ab-tests"])


@router.post("/kbs/{kb}/ab-tests", status_code=201, response_model=ABTestPublic)
def create_ab_test(kb: KbDep, body: ABTestCreate, rt: RuntimeDep) -> ABTestPublic:
    """Start splitting the KB's /answer traffic between the arms by weight, sticky per
    `user_id` (else `session_id`). Arms are frozen now: left-out fields become the live
    version, the KB's default generator and prompt. 409 while another test runs."""
    row = ab.create_test(
        rt,
        kb=kb,
        name=body.name,
        arms=[a.model_dump(exclude_none=True) for a in body.arms],
        created_by=body.created_by,
    )
    return ABTestPublic.from_row(row, kb=kb.name)


@router.get("/kbs/{kb}/ab-tests", response_model=ABTestList)
def list_ab_tests(
    kb: KbDep, session: SessionDep, status: Literal["running", "stopped"] | None = None
) -> ABTestList:
    rows = ab.list_tests(session=session, kb=kb, status=status)
    return ABTestList(tests=[ABTestPublic.from_row(t, kb=kb.name) for t in rows])


@router.get("/kbs/{kb}/ab-tests/{name}", response_model=ABTestReport)
def get_ab_test(kb: KbDep, name: str, rt: RuntimeDep, testset: str | None = None) -> ABTestReport:
    """The test with, per arm: answers, distinct subjects, feedback with the positive
    rate and its 95% Wilson interval, mean latency, and the latest succeeded eval run of
    the arm's configuration (`?testset=` compares the arms on one test set)."""
    result = ab.report(rt, kb=kb, name=name, testset=testset)
    return ABTestReport.from_row(result["test"], kb=kb.name, arms=result["arms"])


@router.post("/kbs/{kb}/ab-tests/{name}/stop", response_model=ABTestPublic)
def stop_ab_test(kb: KbDep, name: str, rt: RuntimeDep) -> ABTestPublic:
    """End assignment (later answers are served as without a test); the report stays."""
    return ABTestPublic.from_row(ab.stop_test(rt, kb=kb, name=name), kb=kb.name)


@router.post(
    "/kbs/{kb}/ab-tests/{name}/evaluate", status_code=202, response_model=ABEvaluateResponse
)
def evaluate_ab_test(kb: KbDep, name: str, body: ABEvaluate, rt: RuntimeDep) -> ABEvaluateResponse:
    """Queue one eval run per arm (same test set version and parameters); their scores
    appear per arm in GET .../{name} once they succeed."""
    runs = ab.evaluate(
        rt,
        kb=kb,
        name=name,
        testset=body.testset,
        testset_version=body.testset_version,
        top_k=body.top_k,
        metrics=body.metrics,
    )
    return ABEvaluateResponse(
        test=name, runs=[ArmRun(arm=arm, run=run_public(run)) for arm, run in runs]
    )
