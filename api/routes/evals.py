from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor

from api.access import PrincipalDep, check_visible
from api.deps import RuntimeDep, SessionDep, load_kb
from api.eval_schemas import (
    EvalCreate,
    EvalResultList,
    EvalResultPublic,
    EvalRunList,
    EvalRunPublic,
    TestSetDetail,
    TestSetGenerate,
    TestSetGenerationPublic,
    TestSetList,
    TestSetPublic,
)
from api.limits import MAX_DB_INT
from api.runtime import Runtime
from core.access import Principal
from core.catalog.models import EvalRun, Job, TestSet
from core.errors import InvalidInput, NotFound
from eval import generate, runs
from eval import testsets as ts


class TestSetNameConvertor(StringConvertor):
    """A test set name in a path: never `generate` (POST /v1/testsets/generate and GET
    /v1/testsets/generate/{job_id} are the generation jobs, so other methods there are
    405, not a set of that name)."""

    regex = r"(?!generate(?:/|$))[^/]+"


register_url_convertor("testset_name", TestSetNameConvertor())
router = APIRouter(tags=["evaluation"])

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def testset_public(t: TestSet) -> TestSetPublic:
    return TestSetPublic.model_validate(t, from_attributes=True)


def run_public(r: EvalRun) -> EvalRunPublic:
    return EvalRunPublic.model_validate(r, from_attributes=True)


@router.post("/testsets", status_code=201, response_model=TestSetPublic)
async def create_testset(request: Request, session: SessionDep) -> TestSetPublic:
    """A new test set, or the next version of an existing name. Either multipart (`file`:
    .jsonl or .csv, `name`, optional `description`) or JSON `{"name", "cases": [...]}`.
    Bad cases: 422 naming the line (or `case N`) and the field."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        name = form.get("name")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("send the test set as a multipart 'file' (.jsonl or .csv)")
        if not isinstance(name, str):
            raise InvalidInput("field 'name' is required")
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the test set file is over {MAX_UPLOAD_BYTES} bytes")
        cases = ts.parse_upload(data, filename=upload.filename or "")
        description = form.get("description")
        description = description if isinstance(description, str) else ""
    else:
        try:
            body: Any = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON ({exc.msg})") from exc
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidInput('send {"name": "...", "cases": [...]} or a multipart file')
        name = body["name"]
        cases = ts.check_cases(body.get("cases"))
        description = str(body.get("description") or "")
    row = await run_in_threadpool(
        ts.create_testset, session=session, name=name, cases=cases, description=description
    )
    return testset_public(row)


def generation_public(rt: Runtime, job: Job) -> TestSetGenerationPublic:
    made = generate.generated_testset(rt, job.id) if job.status == "succeeded" else None
    p = job.payload
    return TestSetGenerationPublic.from_row(
        job,
        job_id=job.id,
        kb=p["kb"],
        name=p["name"],
        size=p["size"],
        languages=p.get("languages"),
        index_version=p["index_version"],
        judge=p["judge"],
        testset=made,
    )


@router.post("/testsets/generate", status_code=202, response_model=TestSetGenerationPublic)
def generate_testset(
    body: TestSetGenerate, rt: RuntimeDep, viewer: PrincipalDep
) -> TestSetGenerationPublic:
    """Queue generation of `size` cases from the KB's live index version by the LLM judge
    (the next version of `name`, source "generated"); poll GET
    /v1/testsets/generate/{job_id}. 409 when no judge is configured."""
    job = generate.submit_generation(
        rt,
        kb=load_kb(rt, body.kb, viewer=viewer),
        name=body.name,
        size=body.size,
        languages=body.languages,
    )
    return generation_public(rt, job)


@router.get("/testsets/generate/{job_id}", response_model=TestSetGenerationPublic)
def generation_status(job_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> TestSetGenerationPublic:
    """Progress of a generation job; `testset` is set once it succeeded."""
    job = generate.get_generation(rt, job_id)
    check_visible(
        viewer,
        job.kb_id,
        f"test set generation {job_id!r} not found; start one with POST /v1/testsets/generate",
    )
    return generation_public(rt, job)


@router.get("/testsets", response_model=TestSetList)
def list_testsets(session: SessionDep, viewer: PrincipalDep) -> TestSetList:
    rows = [t for t in ts.list_testsets(session=session) if viewer.sees(t.kb_id)]
    return TestSetList(testsets=[testset_public(t) for t in rows])


@router.get("/testsets/{name:testset_name}", response_model=TestSetList)
def testset_versions(name: str, session: SessionDep, viewer: PrincipalDep) -> TestSetList:
    rows = [t for t in ts.get_versions(session=session, name=name) if viewer.sees(t.kb_id)]
    if not rows:
        raise NotFound(f"test set {name!r} not found; upload it with POST /v1/testsets")
    return TestSetList(testsets=[testset_public(t) for t in rows])


@router.get("/testsets/{name:testset_name}/{version:int}", response_model=TestSetDetail)
def testset_detail(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    session: SessionDep,
    viewer: PrincipalDep,
) -> TestSetDetail:
    t = ts.get_testset(session=session, name=name, version=version)
    check_visible(viewer, t.kb_id, f"test set {name!r} has no version {version}")
    return TestSetDetail.from_row(t, cases=ts.get_cases(session=session, testset_id=t.id))


@router.post(
    "/testsets/{name:testset_name}/from-feedback", status_code=201, response_model=TestSetPublic
)
def testset_from_feedback(
    name: str, kb: str, session: SessionDep, rt: RuntimeDep, viewer: PrincipalDep
) -> TestSetPublic:
    """The next version of `name` from the KB's thumbs-down answers with a correction
    (409 when there are none)."""
    kb_row = load_kb(rt, kb, viewer=viewer)
    return testset_public(
        ts.testset_from_feedback(session=session, name=name, kb_id=kb_row.id, kb_name=kb_row.name)
    )


@router.post("/evals", status_code=202, response_model=EvalRunPublic)
def create_eval(body: EvalCreate, rt: RuntimeDep, viewer: PrincipalDep) -> EvalRunPublic:
    """Queue an evaluation run; poll GET /v1/evals/{id} for progress and the aggregate."""
    kb = load_kb(rt, body.kb, viewer=viewer)
    with rt.db.session() as session:
        try:
            t = ts.get_testset(session=session, name=body.testset, version=body.testset_version)
        except NotFound:
            t = None  # submit_eval says what is missing, after its own checks
        if t is not None:
            check_visible(
                viewer,
                t.kb_id,
                f"test set {body.testset!r} not found; upload it with POST /v1/testsets",
            )
    run = runs.submit_eval(
        rt,
        testset=body.testset,
        testset_version=body.testset_version,
        kb=kb,
        index_version=body.index_version,
        generator=body.generator,
        prompt=body.prompt,
        top_k=body.top_k,
        mode=body.mode,
        metrics=body.metrics,
    )
    return run_public(run)


@router.get("/evals", response_model=EvalRunList)
def list_evals(
    rt: RuntimeDep,
    viewer: PrincipalDep,
    kb: str | None = None,
    testset: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> EvalRunList:
    """Runs newest first, one page at a time (`limit`, `offset`)."""
    kb_id = load_kb(rt, kb, viewer=viewer).id if kb is not None else None
    rows = runs.list_runs(
        rt, kb_id=kb_id, kb_ids=viewer.kb_ids, testset=testset, limit=limit, offset=offset
    )
    return EvalRunList(runs=[run_public(r) for r in rows])


@router.get("/evals/{run_id}", response_model=EvalRunPublic)
def get_eval(run_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> EvalRunPublic:
    return run_public(visible_run(rt, run_id, viewer))


@router.get("/evals/{run_id}/results", response_model=EvalResultList)
def eval_results(run_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> EvalResultList:
    visible_run(rt, run_id, viewer)
    rows = runs.get_results(rt, run_id)
    return EvalResultList(
        run_id=run_id,
        results=[EvalResultPublic.model_validate(r, from_attributes=True) for r in rows],
    )


def visible_run(rt: Runtime, run_id: str, viewer: Principal) -> EvalRun:
    run = runs.get_run(rt, run_id)
    check_visible(viewer, run.kb_id, f"eval run {run_id!r} not found; list runs with GET /v1/evals")
    return run


def hide_unless_visible(rt: Runtime, run_id: str, viewer: Principal, *, role: str) -> None:
    """404 for a run of a KB the key may not see, worded as `eval.report` words an unknown
    `role` ("eval run", "compare run"); an unknown run is left to the report to refuse."""
    with rt.db.session() as session:
        run = session.get(EvalRun, run_id)
        kb_id = run.kb_id if run is not None else None
    if run is not None:
        check_visible(viewer, kb_id, f"{role} {run_id!r} not found; list runs with GET /v1/evals")
