"""A/B tests as reviewers run them: create (arms frozen), stop, list, and the report that
compares arms on feedback (Wilson intervals) and on eval scores of the same test set.

Routing a request to an arm is `retrieval.ab` (pure assignment, no eval); the module
docstring there states the decisions both sides follow.

Example::

    test = create_test(rt, kb=kb, name="chunks-48", arms=[
        {"name": "control", "weight": 50},
        {"name": "small-chunks", "weight": 50, "index_version": 2},
    ])
    stop_test(rt, kb=kb, name="chunks-48")
    print(report(rt, kb=kb, name="chunks-48", testset="smoke")["arms"])
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    ABTest,
    Answer,
    AnswerFeedback,
    AnswerSettings,
    EvalRun,
    JobStatus,
    KnowledgeBase,
    TestSet,
    utcnow,
)
from core.errors import Conflict, InvalidInput, NotFound
from eval.metrics import metric_names
from eval.runs import submit_eval
from eval.testsets import get_testset
from index.versions import queryable_version
from retrieval.ab import RUNNING, Arm, running_test
from retrieval.generators import check_generator_name
from retrieval.prompts import DEFAULT_PROMPT, parse_ref, resolve_prompt
from retrieval.search import MAX_TOP_K

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from eval.services import EvalServices

MAX_ARMS = 10
STOPPED = "stopped"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ARM_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ARM_FIELDS = frozenset({"name", "weight", "index_version", "generator", "prompt"})
# The z of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (sound at small n and at 0 or 1, unlike the
    normal approximation); None without observations."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# --- catalog: create, stop, list, get ------------------------------------------------


def _defaults(rt: EvalServices, s: Session, kb: KnowledgeBase) -> tuple[str, str, int | None]:
    row = s.get(AnswerSettings, kb.id)
    generator = (row.generator if row else None) or rt.settings.answer_generator
    if row is not None and row.prompt_name:
        return generator, row.prompt_name, row.prompt_version
    return generator, DEFAULT_PROMPT, None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number, got {value!r}")
    return float(value)


def _resolve_arm(rt: EvalServices, s: Session, kb: KnowledgeBase, raw: Any, position: int) -> Arm:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"arm {position}: expected an object with name and weight")
    unknown = sorted(set(raw) - ARM_FIELDS)
    if unknown:
        raise InvalidInput(
            f"arm {position}: unknown field {unknown[0]!r}; use {', '.join(sorted(ARM_FIELDS))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not ARM_PATTERN.match(name):
        raise InvalidInput(
            f"arm {position}: name {name!r}: use letters, digits, '_', '-' or '.', "
            "up to 64 characters"
        )
    if "weight" not in raw:
        raise InvalidInput(f"arm {name!r}: weight is required (a positive number)")
    weight = _number(raw["weight"], f"arm {name!r}: weight")
    if weight <= 0:
        raise InvalidInput(
            f"arm {name!r}: weight must be positive, got {raw['weight']!r}; weights are "
            "relative (50/50, 1/1 and 90/10 all work)"
        )
    default_generator, default_prompt, default_prompt_version = _defaults(rt, s, kb)

    number = raw.get("index_version")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise InvalidInput(f"arm {name!r}: index_version must be an integer, got {number!r}")
    version = queryable_version(session=s, kb=kb, number=number)
    if version is None:
        raise Conflict(
            f"knowledge base {kb.name!r} has no live index version; give arm {name!r} an "
            "index_version (a ready one)"
        )
    generator = raw.get("generator") or default_generator
    if not isinstance(generator, str):
        raise InvalidInput(f"arm {name!r}: generator must be a name, got {generator!r}")
    check_generator_name(generator)
    prompt = raw.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInput(f"arm {name!r}: prompt must be 'name' or 'name@version'")
    if prompt:
        prompt_name, prompt_version = parse_ref(prompt)
    else:
        prompt_name, prompt_version = default_prompt, default_prompt_version
    record = resolve_prompt(session=s, name=prompt_name, version=prompt_version)
    return Arm(
        name=name,
        weight=weight,
        index_version=version.number,
        generator=generator,
        prompt=f"{record.name}@{record.version}",
    )


def check_arms(arms: Sequence[Arm]) -> None:
    """Unique names and pairwise different configurations."""
    seen: dict[str, Arm] = {}
    configs: dict[tuple[int, str, str], Arm] = {}
    for arm in arms:
        if arm.name in seen:
            raise InvalidInput(f"arm name {arm.name!r} is used twice; arm names must be unique")
        seen[arm.name] = arm
        twin = configs.get(arm.config)
        if twin is not None:
            raise InvalidInput(
                f"arms {twin.name!r} and {arm.name!r} are the same configuration (index "
                f"version {arm.index_version}, generator {arm.generator}, prompt "
                f"{arm.prompt}); an arm must differ in index_version, generator or prompt"
            )
        configs[arm.config] = arm


def create_test(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    name: str,
    arms: Sequence[Any],
    created_by: str | None = None,
) -> ABTest:
    """Validate, freeze the arms and start the test. 422 for a bad spec, 404 for an
    unknown version or prompt, 409 for a version that is not ready/live, a taken name or
    another running test (named)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"A/B test name {name!r}: use letters, digits, '_', '-' or '.', up to 128 characters"
        )
    if not isinstance(arms, Sequence) or isinstance(arms, str | bytes):
        raise InvalidInput("arms must be a list of {name, weight, index_version?, ...}")
    if not 2 <= len(arms) <= MAX_ARMS:
        raise InvalidInput(f"an A/B test needs 2 to {MAX_ARMS} arms, got {len(arms)}")
    if created_by is not None and (not isinstance(created_by, str) or len(created_by) > 128):
        raise InvalidInput("created_by must be text of at most 128 characters")
    try:
        with rt.db.session() as s:
            # Lock the KB row (PostgreSQL) so two creates cannot both see "none running".
            s.execute(select(KnowledgeBase.id).where(KnowledgeBase.id == kb.id).with_for_update())
            frozen = [_resolve_arm(rt, s, kb, raw, i) for i, raw in enumerate(arms, start=1)]
            check_arms(frozen)
            existing = s.execute(
                select(ABTest).where(ABTest.kb_id == kb.id, ABTest.name == name)
            ).scalar_one_or_none()
            if existing is not None:
                raise Conflict(
                    f"an A/B test named {name!r} already exists in {kb.name!r} "
                    f"({existing.status}); pick another name"
                )
            running = running_test(session=s, kb_id=kb.id)
            if running is not None:
                raise Conflict(
                    f"A/B test {running.name!r} is already running on {kb.name!r}; stop it "
                    f"first (POST /v1/kbs/{kb.name}/ab-tests/{running.name}/stop)"
                )
            row = ABTest(
                kb_id=kb.id,
                name=name,
                status=RUNNING,
                arms=[a.as_dict() for a in frozen],
                created_by=created_by,
            )
            s.add(row)
            s.flush()
            s.expunge(row)
    except IntegrityError as exc:  # a concurrent create of the same name won
        raise Conflict(f"an A/B test named {name!r} already exists in {kb.name!r}") from exc
    return row


def get_test(*, session: Session, kb: KnowledgeBase, name: str) -> ABTest:
    row = session.execute(
        select(ABTest).where(ABTest.kb_id == kb.id, ABTest.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"A/B test {name!r} not found in {kb.name!r}; list them with "
            f"GET /v1/kbs/{kb.name}/ab-tests"
        )
    return row


def list_tests(*, session: Session, kb: KnowledgeBase, status: str | None = None) -> list[ABTest]:
    if status is not None and status not in (RUNNING, STOPPED):
        raise InvalidInput(f"status must be {RUNNING} or {STOPPED}, got {status!r}")
    query = select(ABTest).where(ABTest.kb_id == kb.id)
    if status is not None:
        query = query.where(ABTest.status == status)
    return list(session.execute(query.order_by(ABTest.created_at.desc())).scalars())


def stop_test(rt: EvalServices, *, kb: KnowledgeBase, name: str) -> ABTest:
    """End assignment: later answers are served as if no test ran. Its report stays."""
    with rt.db.session() as s:
        row = get_test(session=s, kb=kb, name=name)
        if row.status == STOPPED:
            raise Conflict(
                f"A/B test {name!r} was already stopped at {row.stopped_at:%Y-%m-%d %H:%M:%S}"
            )
        row.status, row.stopped_at = STOPPED, utcnow()
        s.flush()
        s.expunge(row)
    return row


# --- report and evaluation ----------------------------------------------------------


def _subject_column() -> Any:
    """`answers.subject`: the hashed user/session id, for distinct subjects per arm."""
    return Answer.subject


def _latest_run(
    s: Session, *, kb_id: str, arm: Arm, testset: str | None
) -> tuple[EvalRun, TestSet] | None:
    prompt_name, prompt_version = parse_ref(arm.prompt)
    query = (
        select(EvalRun, TestSet)
        .join(TestSet, TestSet.id == EvalRun.testset_id)
        .where(
            EvalRun.kb_id == kb_id,
            EvalRun.status == JobStatus.SUCCEEDED,
            EvalRun.index_version == arm.index_version,
            EvalRun.generator == arm.generator,
            EvalRun.prompt_name == prompt_name,
            EvalRun.prompt_version == prompt_version,
        )
    )
    if testset is not None:
        query = query.where(TestSet.name == testset)
    row = s.execute(
        query.order_by(EvalRun.finished_at.desc(), EvalRun.created_at.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def report(rt: EvalServices, *, kb: KnowledgeBase, name: str, testset: str | None = None) -> dict:
    """The test and, per arm: answers, distinct subjects, feedback (thumbs up/down,
    positive rate with its 95% Wilson interval), mean latency, and the aggregate means of
    the latest succeeded eval run of exactly the arm's configuration (of `testset` when
    given, so arms are compared on the same questions)."""
    with rt.db.session() as s:
        test = get_test(session=s, kb=kb, name=name)
        arms = [Arm.from_dict(a) for a in test.arms]
        subject = _subject_column()
        columns = [
            Answer.arm,
            func.count(Answer.id),
            func.avg(Answer.latency_ms),
            func.count(func.distinct(subject)) if subject is not None else literal(None),
        ]
        served = {
            arm: (count, latency, subjects)
            for arm, count, latency, subjects in s.execute(
                select(*columns).where(Answer.ab_test_id == test.id).group_by(Answer.arm)
            ).all()
        }
        votes = {
            arm: (count, up or 0, down or 0)
            for arm, count, up, down in s.execute(
                select(
                    Answer.arm,
                    func.count(AnswerFeedback.id),
                    func.sum(case((AnswerFeedback.rating > 0, 1), else_=0)),
                    func.sum(case((AnswerFeedback.rating < 0, 1), else_=0)),
                )
                .join(AnswerFeedback, AnswerFeedback.answer_id == Answer.id)
                .where(Answer.ab_test_id == test.id)
                .group_by(Answer.arm)
            ).all()
        }
        runs = {a.name: _latest_run(s, kb_id=kb.id, arm=a, testset=testset) for a in arms}
    total = sum(a.weight for a in arms)
    out = []
    for arm in arms:
        count, latency, subjects = served.get(arm.name, (0, None, 0))
        feedback, up, down = votes.get(arm.name, (0, 0, 0))
        interval = wilson(up, up + down)
        found = runs[arm.name]
        out.append(
            {
                **arm.as_dict(),
                "share": round(arm.weight / total, 6),
                "answers": count,
                "distinct_subjects": subjects if subject is not None else None,
                "feedback": feedback,
                "thumbs_up": up,
                "thumbs_down": down,
                "positive_rate": round(up / (up + down), 6) if up + down else None,
                "positive_rate_ci95": [round(v, 6) for v in interval] if interval else None,
                "mean_latency_ms": round(float(latency), 3) if latency is not None else None,
                "eval": _eval_summary(*found) if found else None,
            }
        )
    return {"test": test, "arms": out}


def _eval_summary(run: EvalRun, ts: TestSet) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "testset": ts.name,
        "testset_version": ts.version,
        "params": run.params,
        "question_count": run.question_count,
        "finished_at": run.finished_at,
        "scores": {k: v.get("mean") for k, v in (run.aggregate or {}).items()},
    }


def evaluate(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    name: str,
    testset: str,
    testset_version: int | None = None,
    top_k: int | None = None,
    metrics: list[str] | None = None,
) -> list[tuple[str, Any]]:
    """Queue one eval run per arm, on the same test set version and parameters; returns
    [(arm name, EvalRun)]. Everything is checked before the first run is queued, so a
    bad request queues nothing."""
    if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    names = metric_names(metrics)
    with rt.db.session() as s:
        test = get_test(session=s, kb=kb, name=name)
        ts = get_testset(session=s, name=testset, version=testset_version)
        arms = [Arm.from_dict(a) for a in test.arms]
        for arm in arms:
            try:
                queryable_version(session=s, kb=kb, number=arm.index_version)
            except (NotFound, Conflict) as exc:
                raise Conflict(f"arm {arm.name!r} cannot be evaluated: {exc.message}") from exc
    return [
        (
            arm.name,
            submit_eval(
                rt,
                testset=ts.name,
                testset_version=ts.version,
                kb=kb,
                index_version=arm.index_version,
                generator=arm.generator,
                prompt=arm.prompt,
                top_k=top_k,
                metrics=names,
            ),
        )
        for arm in arms
    ]
