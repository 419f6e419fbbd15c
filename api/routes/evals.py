from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep
from api.eval_schemas import (
    EvalCreate,
    EvalResultList,
    EvalResultPublic,
    EvalRunList,
    EvalRunPublic,
    TestCasePublic,
    TestSetDetail,
    TestSetGenerate,
    TestSetGenerationPublic,
    TestSetList,
    TestSetPublic,
)
from core.catalog.models import EvalRun, Job, TestSet
from core.errors import InvalidInput
from core.kbs import get_kb
from core.runtime import Runtime
from eval import generate, runs
from eval import testsets as ts

router = APIRouter(tags=["evaluation"])

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def testset_public(t: TestSet) -> TestSetPublic:
    return TestSetPublic(
        name=t.name,
        version=t.version,
        description=t.description,
        source=t.source,
        case_count=t.case_count,
        created_at=t.created_at,
    )


def run_public(r: EvalRun) -> EvalRunPublic:
    return EvalRunPublic(
        id=r.id,
        status=r.status,
        progress=round(r.progress, 4),
        question_count=r.question_count,
        completed_count=r.completed_count,
        key=r.key,
        key_hash=r.key_hash,
        metrics=r.metrics,
        aggregate=r.aggregate or {},
        wall_seconds=r.wall_seconds,
        usage=r.usage or {},
        error=r.error,
        job_id=r.job_id,
        created_at=r.created_at,
        finished_at=r.finished_at,
    )


def _store(rt: Runtime, name: str, cases: list[ts.CaseIn], description: str) -> TestSetPublic:
    with rt.db.session() as s:
        return testset_public(
            ts.create_testset(session=s, name=name, cases=cases, description=description)
        )


@router.post("/testsets", status_code=201, response_model=TestSetPublic)
async def create_testset(request: Request, rt: RuntimeDep) -> TestSetPublic:
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
    return await run_in_threadpool(_store, rt, name, cases, description)


def generation_public(rt: Runtime, job: Job) -> TestSetGenerationPublic:
    p = job.payload
    made = generate.generated_testset(rt, job.id) if job.status == "succeeded" else None
    return TestSetGenerationPublic(
        job_id=job.id,
        status=job.status,
        progress=round(job.progress, 4),
        message=job.message,
        error=job.error,
        kb=p["kb"],
        name=p["name"],
        size=p["size"],
        languages=p.get("languages") or [],
        index_version=p["index_version"],
        judge=p["judge"],
        testset=testset_public(made) if made is not None else None,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


@router.post("/testsets/generate", status_code=202, response_model=TestSetGenerationPublic)
def generate_testset(body: TestSetGenerate, rt: RuntimeDep) -> TestSetGenerationPublic:
    """Queue generation of `size` cases from the KB's live index version by the LLM judge
    (the next version of `name`, source "generated"); poll GET
    /v1/testsets/generate/{job_id}. 409 when no judge is configured."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=body.kb)
    job = generate.submit_generation(
        rt, kb=kb_row, name=body.name, size=body.size, languages=body.languages
    )
    return generation_public(rt, job)


@router.get("/testsets/generate/{job_id}", response_model=TestSetGenerationPublic)
def generation_status(job_id: str, rt: RuntimeDep) -> TestSetGenerationPublic:
    """Progress of a generation job; `testset` is set once it succeeded."""
    return generation_public(rt, generate.get_generation(rt, job_id))


@router.get("/testsets", response_model=TestSetList)
def list_testsets(rt: RuntimeDep) -> TestSetList:
    with rt.db.session() as s:
        return TestSetList(testsets=[testset_public(t) for t in ts.list_testsets(session=s)])


@router.get("/testsets/{name}", response_model=TestSetList)
def testset_versions(name: str, rt: RuntimeDep) -> TestSetList:
    with rt.db.session() as s:
        ts.get_testset(session=s, name=name)  # 404 for an unknown name
        return TestSetList(
            testsets=[testset_public(t) for t in ts.get_versions(session=s, name=name)]
        )


@router.get("/testsets/{name}/{version}", response_model=TestSetDetail)
def testset_detail(name: str, version: int, rt: RuntimeDep) -> TestSetDetail:
    with rt.db.session() as s:
        t = ts.get_testset(session=s, name=name, version=version)
        cases = [
            TestCasePublic(
                position=c.position,
                question=c.question,
                reference_answer=c.reference_answer,
                reference_contexts=c.reference_contexts,
                reference_doc_ids=c.reference_doc_ids,
                tags=c.tags,
                metadata=c.metadata_,
            )
            for c in ts.get_cases(session=s, testset_id=t.id)
        ]
        return TestSetDetail(**testset_public(t).model_dump(), cases=cases)


@router.post("/testsets/{name}/from-feedback", status_code=201, response_model=TestSetPublic)
def testset_from_feedback(name: str, kb: str, rt: RuntimeDep) -> TestSetPublic:
    """The next version of `name` from the KB's thumbs-down answers with a correction
    (409 when there are none)."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        return testset_public(
            ts.testset_from_feedback(session=s, name=name, kb_id=kb_row.id, kb_name=kb_row.name)
        )


@router.post("/evals", status_code=202, response_model=EvalRunPublic)
def create_eval(body: EvalCreate, rt: RuntimeDep) -> EvalRunPublic:
    """Queue an evaluation run; poll GET /v1/evals/{id} for progress and the aggregate."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=body.kb)
    run = runs.submit_eval(
        rt,
        testset=body.testset,
        testset_version=body.testset_version,
        kb=kb_row,
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
    kb: str | None = None,
    testset: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EvalRunList:
    """Runs newest first, one page at a time (`limit`, `offset`)."""
    kb_id = None
    if kb is not None:
        with rt.db.session() as s:
            kb_id = get_kb(session=s, name_or_id=kb).id
    rows = runs.list_runs(rt, kb_id=kb_id, testset=testset, limit=limit, offset=offset)
    return EvalRunList(runs=[run_public(r) for r in rows])


@router.get("/evals/{run_id}", response_model=EvalRunPublic)
def get_eval(run_id: str, rt: RuntimeDep) -> EvalRunPublic:
    return run_public(runs.get_run(rt, run_id))


@router.get("/evals/{run_id}/results", response_model=EvalResultList)
def eval_results(run_id: str, rt: RuntimeDep) -> EvalResultList:
    rows = runs.get_results(rt, run_id)
    return EvalResultList(
        run_id=run_id,
        results=[
            EvalResultPublic(
                position=r.position,
                question=r.question,
                answer=r.answer,
                retrieved=r.retrieved,
                scores=r.scores,
                seconds=r.seconds,
            )
            for r in rows
        ],
    )
