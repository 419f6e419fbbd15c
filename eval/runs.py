"""Evaluation runs: score a test set version against a KB's pinned index version.

`submit_eval` resolves everything that makes a run reproducible — test set version,
index version (live when not given), its embedding model, generator, prompt version and
retrieval parameters — into the run's `key` (hashed in `key_hash`), and queues an
`eval_run` job. `run_eval` (the job) answers each question without recording it as a
user answer, scores it offline (see `eval.metrics`) and stores one `EvalResult` per
question as it completes; a retried job skips questions that already have a row, so
runs resume after a crash. Progress goes to the job and the run row.

Example::

    run = submit_eval(rt, testset="smoke", kb=kb, top_k=5)
    # … the worker runs it; then
    run.aggregate["recall@5"]["mean"]
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    Document,
    EvalResult,
    EvalRun,
    JobStatus,
    TestCase,
    TestSet,
    utcnow,
)
from core.errors import InvalidInput, NotFound
from core.jobs import PermanentJobError
from core.kbs import get_kb
from core.types import sha256_hex
from eval.judge import judge_for_metrics
from eval.llm_metrics import llm_scorer
from eval.metrics import OfflineScorer, aggregate, metric_names, ranked_unique
from eval.testsets import get_cases, get_testset
from index.versions import queryable_version
from retrieval.chain import dont_know, generation_kwargs, plan_answer
from retrieval.generators import check_generator_name
from retrieval.prompts import DEFAULT_PROMPT, parse_ref, resolve_prompt
from retrieval.search import DEFAULT_MODE, MAX_TOP_K, MODES, retrieve

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.catalog.models import KnowledgeBase
    from core.jobs import JobContext
    from eval.services import EvalServices

EVAL_JOB = "eval_run"


def run_key(run: EvalRun, *, testset_name: str, testset_version: int, kb_name: str) -> dict:
    return {
        "testset": testset_name,
        "testset_version": testset_version,
        "kb": kb_name,
        "index_version": run.index_version,
        "embedding_model": run.embedding_model,
        "generator": run.generator,
        "prompt": f"{run.prompt_name}@{run.prompt_version}",
        "params": run.params,
    }


def prepare_eval(
    rt: EvalServices,
    *,
    session: Session,
    testset: str,
    kb: KnowledgeBase,
    testset_version: int | None = None,
    index_version: int | None = None,
    generator: str | None = None,
    prompt: str | None = None,
    top_k: int | None = None,
    mode: str | None = None,
    metrics: list[str] | None = None,
) -> EvalRun:
    """A validated, unsaved run with its key resolved (test set and prompt versions, the
    index version and its embedding model): what `submit_eval` queues, and what quality
    gates compare against existing runs to reuse one with the same key."""
    top_k = top_k or rt.settings.answer_top_k
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    mode = mode or DEFAULT_MODE
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    judge = judge_for_metrics(rt.settings, metrics)
    names = metric_names(metrics, judge=judge)
    generator = check_generator_name(generator or rt.settings.answer_generator)
    prompt_name, prompt_version = parse_ref(prompt) if prompt else (DEFAULT_PROMPT, None)
    ts = get_testset(session=session, name=testset, version=testset_version)
    version = queryable_version(session=session, kb=kb, number=index_version)
    if version is None:
        raise NotFound(f"knowledge base {kb.name!r} has no live index version yet")
    record = resolve_prompt(session=session, name=prompt_name, version=prompt_version)
    run = EvalRun(
        testset_id=ts.id,
        kb_id=kb.id,
        index_version=version.number,
        embedding_model=version.embedding_model,
        generator=generator,
        prompt_name=record.name,
        prompt_version=record.version,
        params={"top_k": top_k, "mode": mode, **({"judge": judge} if judge else {})},
        metrics=names,
        question_count=ts.case_count,
    )
    run.key = run_key(run, testset_name=ts.name, testset_version=ts.version, kb_name=kb.name)
    run.key_hash = sha256_hex(json.dumps(run.key, sort_keys=True))
    return run


def queue_run(rt: EvalServices, session: Session, run: EvalRun) -> EvalRun:
    """Store a prepared run and queue its job (in the caller's transaction)."""
    session.add(run)
    session.flush()
    job = rt.jobs.submit(session, kind=EVAL_JOB, payload={"run_id": run.id}, kb_id=run.kb_id)
    run.job_id = job.id
    session.flush()
    return run


def submit_eval(rt: EvalServices, *, testset: str, kb: KnowledgeBase, **params: Any) -> EvalRun:
    """Create the run and queue its job (202 for the API). Bad parameters fail here.
    `params`: testset_version, index_version, generator, prompt, top_k, mode, metrics."""
    with rt.db.session() as s:
        run = queue_run(rt, s, prepare_eval(rt, session=s, testset=testset, kb=kb, **params))
        s.expunge(run)
    return run


def _relevant_ids(rt: EvalServices, kb_id: str, refs: list[str]) -> list[str]:
    """Reference ids as document ids: an id of this KB stays, a filename becomes its id;
    anything else stays as given (relevant, but never retrieved)."""
    if not refs:
        return []
    with rt.db.session() as s:
        rows = s.execute(
            select(Document.id, Document.filename).where(
                Document.kb_id == kb_id, (Document.id.in_(refs)) | (Document.filename.in_(refs))
            )
        ).all()
    by_name = {filename: doc_id for doc_id, filename in rows}
    ids = {doc_id for doc_id, _ in rows}
    return list(dict.fromkeys(r if r in ids else by_name.get(r, r) for r in refs))


def _score_case(
    rt: EvalServices, run: EvalRun, kb: KnowledgeBase, case: TestCase, scorer: OfflineScorer
) -> EvalResult:
    started = time.perf_counter()
    top_k = int(run.params["top_k"])
    hits = retrieve(
        rt,
        kb=kb,
        query=case.question,
        top_k=top_k,
        index_version=run.index_version,
        mode=run.params.get("mode"),
    ).results
    ranked_docs = ranked_unique(h.document_id for h in hits)
    scores: dict[str, Any] = scorer.ir_scores(
        ranked_docs=ranked_docs,
        relevant=_relevant_ids(rt, run.kb_id, list(case.reference_doc_ids or [])),
        k=top_k,
    )
    scores.update(
        scorer.context_scores(
            question=case.question,
            contexts=[h.text for h in hits],
            references=list(case.reference_contexts or []),
        )
    )
    answer = ""
    if scorer.wants_answer(case.reference_answer):
        # Answered like /answer (same relevance gate and prompt), but not recorded as a
        # user answer: eval questions must not feed back into feedback-based test sets.
        plan = plan_answer(
            rt,
            kb=kb,
            query=case.question,
            top_k=top_k,
            generator=run.generator,
            prompt=run.prompt_name,
            prompt_version=run.prompt_version,
            index_version=run.index_version,
            channel="eval",
            mode=run.params.get("mode"),
        )
        if plan.knows:
            answer = plan.generator.generate(plan.messages, **generation_kwargs(plan)).strip()
        answer = answer or dont_know(kb.name)
    scores.update(scorer.answer_scores(answer=answer, reference=case.reference_answer))
    scores.update(
        scorer.llm_scores(
            question=case.question,
            answer=answer,
            contexts=[h.text for h in hits],
            reference=case.reference_answer,
        )
    )
    return EvalResult(
        run_id=run.id,
        case_id=case.id,
        position=case.position,
        question=case.question,
        answer=answer,
        retrieved=[
            {
                "chunk_id": h.chunk_id,
                "document_id": h.document_id,
                "filename": h.filename,
                "score": round(float(h.score), 6),
            }
            for h in hits
        ],
        scores=scores,
        seconds=round(time.perf_counter() - started, 4),
    )


def _update_run(rt: EvalServices, run_id: str, **values: Any) -> None:
    with rt.db.session() as s:
        row = s.get(EvalRun, run_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)


def run_eval(rt: EvalServices, payload: dict[str, Any], ctx: JobContext | None = None) -> str:
    """The `eval_run` job: score every question without a result row yet."""

    started = time.perf_counter()
    with rt.db.session() as s:
        run = s.get(EvalRun, payload.get("run_id", ""))
        if run is None:
            raise PermanentJobError(f"eval run {payload.get('run_id')!r} no longer exists")
        kb = get_kb(session=s, name_or_id=run.kb_id)
        cases = get_cases(session=s, testset_id=run.testset_id)
        done = set(
            s.execute(select(EvalResult.case_id).where(EvalResult.run_id == run.id)).scalars()
        )
        s.expunge_all()
    _update_run(rt, run.id, status=JobStatus.RUNNING, error=None)
    scorer = OfflineScorer(
        # One scoring model for every run (not the version's own): semantic similarity
        # from two different embedding models would not be comparable across versions.
        embedder=rt.embedder(),
        metrics=run.metrics,
        judge=llm_scorer(rt, metrics=run.metrics),
    )
    todo = [c for c in cases if c.id not in done]
    total = max(1, len(cases))
    completed = len(done)
    for case in todo:
        result = _score_case(rt, run, kb, case, scorer)
        try:
            with rt.db.session() as s:
                s.add(result)
        except IntegrityError:
            pass  # another attempt stored this question meanwhile
        completed += 1
        _update_run(
            rt,
            run.id,
            completed_count=completed,
            progress=completed / total,
            usage=scorer.usage(run.usage),
        )
        if ctx is not None:
            ctx.progress(completed / total, f"{completed}/{len(cases)} questions")
    with rt.db.session() as s:
        rows = s.execute(select(EvalResult.scores).where(EvalResult.run_id == run.id)).scalars()
        summary = aggregate(rows)
        row = s.get(EvalRun, run.id)
        assert row is not None
        row.aggregate = summary
        row.completed_count = completed
        row.progress = 1.0
        row.status = JobStatus.SUCCEEDED
        row.wall_seconds = round((row.wall_seconds or 0.0) + time.perf_counter() - started, 3)
        row.finished_at = utcnow()
    return f"scored {len(todo)} questions ({len(done)} already done)"


def record_eval_failure(rt: EvalServices, payload: dict[str, Any], reason: str) -> None:
    _update_run(
        rt, payload.get("run_id", ""), status=JobStatus.FAILED, error=reason, finished_at=utcnow()
    )


def list_runs(
    rt: EvalServices,
    *,
    kb_id: str | None = None,
    kb_ids: frozenset[str] | None = None,
    testset: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list:
    """Runs newest first (optionally one page: `limit` rows after `offset`), of one KB
    (`kb_id`) or of some (`kb_ids`: the KBs an API key may see)."""

    with rt.db.session() as s:
        query = select(EvalRun).order_by(EvalRun.created_at.desc(), EvalRun.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        if kb_id is not None:
            query = query.where(EvalRun.kb_id == kb_id)
        if kb_ids is not None:
            query = query.where(EvalRun.kb_id.in_(sorted(kb_ids)))
        if testset is not None:
            query = query.join(TestSet, TestSet.id == EvalRun.testset_id).where(
                TestSet.name == testset
            )
        rows = list(s.execute(query).scalars())
        s.expunge_all()
    return rows


def get_run(rt: EvalServices, run_id: str) -> EvalRun:
    with rt.db.session() as s:
        row = s.get(EvalRun, run_id)
        if row is None:
            raise NotFound(f"eval run {run_id!r} not found; list runs with GET /v1/evals")
        s.expunge(row)
    return row


def get_results(rt: EvalServices, run_id: str) -> list[EvalResult]:
    get_run(rt, run_id)
    with rt.db.session() as s:
        rows = list(
            s.execute(
                select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.position)
            ).scalars()
        )
        s.expunge_all()
    return rows
