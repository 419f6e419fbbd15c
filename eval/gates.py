"""Quality gates: a KB's promotion policy, checked on eval runs, every decision audited.

A gate (one per KB) names a test set, eval parameters, floors per metric
(`min_scores`, e.g. {"faithfulness": 0.8}) and the largest drop any compared metric may
show against the live version (`max_regression`, e.g. 0.02). `request_promotion`
reuses a finished run with the same key for the candidate and for the live version, or
queues the missing ones and records a `pending` decision; `advance_pending` (called
when a build or an eval job ends, and by the scheduler) finishes it: the version goes
live (`promoted`) or stays ready (`refused`, with every check as evidence). `force`
promotes at once and records who overrode the gate and why (`overridden`).

Example::

    set_gate(rt, kb=kb, policy=GatePolicy(testset="smoke", min_scores={"recall@k": 0.8},
                                          max_regression=0.02))
    decision = request_promotion(rt, kb=kb, number=3, actor="ana")
    decision.outcome   # "pending" until both eval runs finish, then "promoted"/"refused"
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from core.catalog.models import (
    EvalRun,
    IndexVersion,
    JobStatus,
    KnowledgeBase,
    PromotionDecision,
    QualityGate,
    VersionStatus,
    utcnow,
)
from core.errors import Conflict, GateRefused, InvalidInput, NotFound
from eval import registry
from eval.metrics import metric_names
from eval.runs import prepare_eval, queue_run
from index import versions as lifecycle

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from eval.services import EvalServices

log = logging.getLogger(__name__)

PENDING, PROMOTED, REFUSED, OVERRIDDEN, FAILED = (
    "pending",
    "promoted",
    "refused",
    "overridden",
    "failed",
)
# Transient: one process claimed the decision and is switching the live version.
DECIDING = "deciding"
# A decision `deciding` this long was left by a crashed process (switching takes seconds).
STUCK_DECIDING_SECONDS = 300
VERSION_SUBJECT, MODEL_SUBJECT = "index_version", "model"
EVAL_PARAMS = ("generator", "prompt", "top_k", "mode")
# Float noise must not fail a gate: 0.8 - 0.8000000001 is not a regression.
_EPS = 1e-9


@dataclass
class GatePolicy:
    testset: str
    testset_version: int | None = None
    min_scores: dict[str, float] = field(default_factory=dict)
    max_regression: float | None = None
    metrics: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


# -- the policy ------------------------------------------------------------------------


def get_gate(*, session: Session, kb: KnowledgeBase) -> QualityGate | None:
    return session.get(QualityGate, kb.id)


def set_gate(
    rt: EvalServices, *, kb: KnowledgeBase, policy: GatePolicy, actor: str | None = None
) -> QualityGate:
    """Validate and store the KB's gate (replacing any earlier one)."""
    if not policy.min_scores and policy.max_regression is None:
        raise InvalidInput(
            'a gate needs min_scores (e.g. {"faithfulness": 0.8}) and/or max_regression '
            "(e.g. 0.02); it has neither"
        )
    for name, floor in policy.min_scores.items():
        if not isinstance(floor, int | float) or not 0.0 <= float(floor) <= 1.0:
            raise InvalidInput(f"min_scores.{name} must be a number in [0, 1], got {floor!r}")
    if policy.max_regression is not None and not 0.0 <= policy.max_regression <= 1.0:
        raise InvalidInput(f"max_regression must be in [0, 1], got {policy.max_regression}")
    unknown = set(policy.params) - set(EVAL_PARAMS)
    if unknown:
        raise InvalidInput(
            f"unknown gate param {sorted(unknown)[0]!r}; allowed: {', '.join(EVAL_PARAMS)}"
        )
    metric_names(list(policy.min_scores) + list(policy.metrics))  # known metric names
    with rt.db.session() as s:
        kb_row = s.get(KnowledgeBase, kb.id)
        assert kb_row is not None
        # Everything a gate run needs must resolve now, not at promotion time.
        _probe(rt, s, kb_row, policy, number=None, allow_missing_version=True)
        row = s.get(QualityGate, kb.id) or QualityGate(kb_id=kb.id)
        row.testset = policy.testset
        row.testset_version = policy.testset_version
        row.min_scores = {k: float(v) for k, v in policy.min_scores.items()}
        row.max_regression = policy.max_regression
        row.metrics = list(dict.fromkeys(policy.metrics))
        row.params = dict(policy.params)
        row.updated_by = actor
        s.add(row)
        s.flush()
        s.expunge(row)
    return row


def delete_gate(rt: EvalServices, *, kb: KnowledgeBase) -> None:
    with rt.db.session() as s:
        row = s.get(QualityGate, kb.id)
        if row is None:
            raise NotFound(f"knowledge base {kb.name!r} has no quality gate")
        s.delete(row)


def policy_of(gate: QualityGate) -> GatePolicy:
    return GatePolicy(
        testset=gate.testset,
        testset_version=gate.testset_version,
        min_scores=dict(gate.min_scores or {}),
        max_regression=gate.max_regression,
        metrics=list(gate.metrics or []),
        params=dict(gate.params or {}),
    )


def run_metrics(policy: GatePolicy) -> list[str] | None:
    """Metrics a gate run must score: every floor and every compared metric (None: the
    default offline set, when the gate compares everything)."""
    if not policy.metrics and policy.max_regression is not None:
        return None
    return list(dict.fromkeys(list(policy.min_scores) + list(policy.metrics))) or None


def _probe(
    rt: EvalServices,
    s: Session,
    kb: KnowledgeBase,
    policy: GatePolicy,
    *,
    number: int | None,
    allow_missing_version: bool = False,
) -> EvalRun | None:
    try:
        return prepare_eval(
            rt,
            session=s,
            testset=policy.testset,
            kb=kb,
            testset_version=policy.testset_version,
            index_version=number,
            metrics=run_metrics(policy),
            **{k: v for k, v in policy.params.items() if k in EVAL_PARAMS},
        )
    except NotFound as exc:
        if allow_missing_version and "index version" in exc.message:
            return None
        raise


# -- checking --------------------------------------------------------------------------


def evaluate(
    policy: GatePolicy, candidate: dict[str, Any], baseline: dict[str, Any] | None
) -> tuple[bool, list[dict[str, Any]]]:
    """Every check of the policy on two runs' aggregates ({metric: {"mean": ...}})."""

    def mean(agg: dict[str, Any] | None, name: str) -> float | None:
        agg = agg or {}
        if name not in agg and name.endswith("@k"):
            # Runs store recall@k as recall@<top_k>.
            prefix = name[:-1]
            name = next((key for key in agg if key.startswith(prefix)), name)
        value = (agg.get(name) or {}).get("mean")
        return None if value is None or math.isnan(float(value)) else float(value)

    checks: list[dict[str, Any]] = []
    for name, floor in sorted(policy.min_scores.items()):
        value = mean(candidate, name)
        checks.append(
            {
                "metric": name,
                "rule": f">= {floor:g}",
                "value": value,
                "threshold": floor,
                "baseline": mean(baseline, name),
                "passed": value is not None and value + _EPS >= floor,
                **({"note": "not measured in the candidate run"} if value is None else {}),
            }
        )
    if policy.max_regression is not None and baseline is not None:
        names = policy.metrics or sorted(set(candidate) & set(baseline))
        for name in names:
            value, base = mean(candidate, name), mean(baseline, name)
            if base is None:
                continue  # the live version has no figure to regress from
            drop = None if value is None else base - value
            checks.append(
                {
                    "metric": name,
                    "rule": f"no more than {policy.max_regression:g} below live",
                    "value": value,
                    "threshold": round(base - policy.max_regression, 6),
                    "baseline": base,
                    "delta": None if drop is None else round(-drop, 6),
                    "passed": drop is not None and drop <= policy.max_regression + _EPS,
                }
            )
    return all(c["passed"] for c in checks), checks


def summary(checks: list[dict[str, Any]]) -> str:
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        return f"all {len(checks)} checks passed"

    def fmt(c: dict[str, Any]) -> str:
        value = "not measured" if c["value"] is None else f"{c['value']:.4f}"
        base = "" if c.get("baseline") is None else f", live {c['baseline']:.4f}"
        return f"{c['metric']} {value} (needs {c['rule']}{base})"

    return f"{len(failed)} of {len(checks)} checks failed: " + "; ".join(map(fmt, failed))


# -- promotion -------------------------------------------------------------------------


def request_promotion(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    number: int,
    actor: str | None = None,
    force: bool = False,
    reason: str = "",
) -> PromotionDecision:
    """Promote version `number` through the KB's gate. Returns the decision: `promoted`,
    `overridden` (forced), or `pending` (eval runs queued; `advance_pending` finishes
    it). Raises GateRefused (409 with the evidence) when the gate fails now."""
    check_force(force, actor, reason)
    with rt.db.session() as s:
        version = lifecycle.get_version(session=s, kb=kb, number=number)
        if version.status == VersionStatus.LIVE:
            raise Conflict(f"index version {number} of {kb.name!r} is already live")
        lifecycle.check_promotable(version, number)
        decision = PromotionDecision(
            kb_id=kb.id,
            subject_type=VERSION_SUBJECT,
            subject=f"v{number}",
            index_version=number,
            outcome=PENDING,
            forced=force,
            actor=actor,
            reason=reason,
        )
        s.add(decision)
        s.flush()
        decision_id = decision.id
    decided = advance(rt, decision_id)
    if decided.outcome == REFUSED:
        raise GateRefused(
            f"index version {number} of {kb.name!r} failed the quality gate: "
            f"{decided.evidence.get('summary', '')}; it stays ready (promote with force, "
            "actor and reason to override)",
            details=decision_dict(decided, kb_name=kb.name),
        )
    return decided


def check_force(force: bool, actor: str | None, reason: str) -> None:
    registry.check_force(force, actor, reason, overrides="overrides the quality gate")


def advance(rt: EvalServices, decision_id: str) -> PromotionDecision:
    """Move one decision as far as it can go now; idempotent, safe to call anywhere."""
    with rt.db.session() as s:
        d = s.get(PromotionDecision, decision_id)
        if d is None:
            raise NotFound(f"promotion decision {decision_id!r} not found")
        if d.outcome != PENDING:
            s.expunge(d)
            return d
        action = _next_step(rt, s, d)
        # Written only while still pending: another process (a worker's listener, the
        # CLI's loop) may have decided meanwhile, and this copy of the evidence is older.
        progress = {name: getattr(d, name) for name in _STEP_COLUMNS}
        s.expunge(d)
        s.execute(
            update(PromotionDecision)
            .where(PromotionDecision.id == decision_id, PromotionDecision.outcome == PENDING)
            .values(**progress)
        )
    if action is None:
        return d
    outcome, note = action
    return _finish(rt, decision_id, outcome, promote=outcome in (PROMOTED, OVERRIDDEN), note=note)


# What `_next_step` records on a pending decision.
_STEP_COLUMNS = ("eval_run_id", "baseline_version", "baseline_run_id", "evidence", "passed")


def _next_step(rt: EvalServices, s: Session, d: PromotionDecision) -> tuple[str, str] | None:
    """What a pending decision becomes now, as (outcome, note); None: still waiting. Runs
    inside the caller's transaction, which it may use to queue eval runs."""
    kb = s.get(KnowledgeBase, d.kb_id)
    version = s.execute(
        select(IndexVersion).where(
            IndexVersion.kb_id == d.kb_id, IndexVersion.number == d.index_version
        )
    ).scalar_one_or_none()
    if kb is None or version is None:
        return FAILED, "its knowledge base or version is gone"
    if version.status == VersionStatus.BUILDING:
        return (FAILED, f"the build failed: {version.error}") if version.error else None
    if version.status == VersionStatus.RETIRED:
        return FAILED, "the version was retired meanwhile"
    if version.status == VersionStatus.LIVE:
        return PROMOTED, "the version became live meanwhile"
    if d.forced:
        return OVERRIDDEN, "quality gate overridden"
    gate = get_gate(session=s, kb=kb)
    if gate is None:
        return PROMOTED, "no quality gate configured"
    policy = policy_of(gate)
    live = s.execute(
        select(IndexVersion).where(
            IndexVersion.kb_id == kb.id, IndexVersion.status == VersionStatus.LIVE
        )
    ).scalar_one_or_none()
    candidate = _reuse_or_queue(rt, s, kb, policy, version.number)
    baseline = (
        _reuse_or_queue(rt, s, kb, policy, live.number)
        if live is not None and policy.max_regression is not None
        else None
    )
    d.eval_run_id = candidate.id
    d.baseline_version = live.number if live is not None else None
    d.baseline_run_id = baseline.id if baseline is not None else None
    runs = [r for r in (candidate, baseline) if r is not None]
    waiting = [r for r in runs if r.status != JobStatus.SUCCEEDED]
    d.evidence = {
        **(d.evidence or {}),
        "policy": policy_dict(policy),
        "waiting_for": [f"eval run {r.id}" for r in waiting] or None,
    }
    failed = [r for r in runs if r.status == JobStatus.FAILED]
    if failed:
        return FAILED, f"eval run {failed[0].id} failed: {failed[0].error}"
    if waiting:
        return None
    passed, checks = evaluate(
        policy, candidate.aggregate, baseline.aggregate if baseline is not None else None
    )
    d.passed = passed
    d.evidence = {
        **d.evidence,
        "checks": checks,
        "summary": summary(checks),
        "candidate_run": candidate.id,
        "baseline_run": baseline.id if baseline is not None else None,
    }
    if live is None:
        return (PROMOTED if passed else REFUSED), "no live version: only the floors apply"
    return (PROMOTED if passed else REFUSED), ""


def _reuse_or_queue(
    rt: EvalServices, s: Session, kb: KnowledgeBase, policy: GatePolicy, number: int
) -> EvalRun:
    """The newest run with the gate's key for this version that scored at least the gate's
    metrics and did not fail, or a newly queued one."""
    probe = _probe(rt, s, kb, policy, number=number)
    assert probe is not None
    needed = set(probe.metrics)
    for run in s.execute(
        select(EvalRun)
        .where(EvalRun.key_hash == probe.key_hash, EvalRun.status != JobStatus.FAILED)
        .order_by(EvalRun.created_at.desc())
    ).scalars():
        if needed <= set(run.metrics or []):
            return run
    return queue_run(rt, s, probe)


def _finish(
    rt: EvalServices, decision_id: str, outcome: str, *, promote: bool = False, note: str = ""
) -> PromotionDecision:
    """Claim the pending decision (only one process wins: pending → deciding), act on it,
    then record the outcome, so a reader never sees `promoted` before the switch."""
    with rt.db.session() as s:
        claimed = s.execute(
            update(PromotionDecision)
            .where(PromotionDecision.id == decision_id, PromotionDecision.outcome == PENDING)
            .values(outcome=DECIDING)
        ).rowcount
    if claimed:
        _mark_deciding(rt, decision_id)
    if claimed and promote:
        try:
            with rt.db.session() as s:
                d = s.get(PromotionDecision, decision_id)
                assert d is not None
                kb = s.get(KnowledgeBase, d.kb_id)
                number = d.index_version
            assert kb is not None and number is not None
            lifecycle.promote(rt, kb=kb, number=number)
        except Exception as exc:  # noqa: BLE001 - recorded on the decision
            log.exception("promotion after the gate failed")
            outcome, note = FAILED, f"promotion failed: {exc}"
    if claimed:
        view = get_decision(rt, decision_id)
        if view.subject_type == MODEL_SUBJECT:
            # The registry moves the model first: `promoted` is the last thing recorded.
            view.outcome = outcome  # a detached copy, never flushed
            try:
                registry.record_rollout_outcome(rt, view)
            except Exception:  # noqa: BLE001 - the switch happened; record it regardless
                log.exception("the model registry hook failed for decision %s", decision_id)
    with rt.db.session() as s:
        d = s.get(PromotionDecision, decision_id)
        assert d is not None
        if claimed:
            d.outcome = outcome
            d.evidence = {
                **{k: v for k, v in (d.evidence or {}).items() if k != "deciding_since"},
                "waiting_for": None,
                **({"note": note} if note else {}),
            }
        s.flush()
        s.expunge(d)
    return d


def _mark_deciding(rt: EvalServices, decision_id: str) -> None:
    with rt.db.session() as s:
        d = s.get(PromotionDecision, decision_id)
        if d is not None:
            d.evidence = {**(d.evidence or {}), "deciding_since": utcnow().isoformat()}


def _release_stuck(rt: EvalServices) -> int:
    """Decisions a crashed process left `deciding` go back to `pending`: deciding again
    is safe (a version already live is recorded as promoted, a refusal is re-checked)."""
    cutoff = utcnow() - timedelta(seconds=STUCK_DECIDING_SECONDS)
    released = 0
    with rt.db.session() as s:
        rows = s.execute(
            select(PromotionDecision).where(PromotionDecision.outcome == DECIDING)
        ).scalars()
        for d in rows:
            since = (d.evidence or {}).get("deciding_since")
            if since and datetime.fromisoformat(since) < cutoff:
                d.outcome = PENDING
                released += 1
                log.warning("promotion decision %s was left deciding; deciding again", d.id)
    return released


def advance_pending(rt: EvalServices, *, kb_id: str | None = None) -> int:
    """Advance every pending decision (of one KB); returns how many got decided."""
    _release_stuck(rt)
    with rt.db.session() as s:
        query = select(PromotionDecision.id).where(PromotionDecision.outcome == PENDING)
        if kb_id is not None:
            query = query.where(PromotionDecision.kb_id == kb_id)
        ids = list(s.execute(query.order_by(PromotionDecision.created_at)).scalars())
    decided = 0
    for decision_id in ids:
        try:
            if advance(rt, decision_id).outcome != PENDING:
                decided += 1
        except Exception:  # noqa: BLE001 - one broken decision must not block the others
            log.exception("advancing promotion decision %s failed", decision_id)
    return decided


# -- reading ---------------------------------------------------------------------------


def list_decisions(
    rt: EvalServices, *, kb: KnowledgeBase | None = None, limit: int = 100
) -> list[PromotionDecision]:
    with rt.db.session() as s:
        query = select(PromotionDecision).order_by(PromotionDecision.created_at.desc())
        if kb is not None:
            query = query.where(PromotionDecision.kb_id == kb.id)
        rows = list(s.execute(query.limit(limit)).scalars())
        s.expunge_all()
    return rows


def get_decision(rt: EvalServices, decision_id: str) -> PromotionDecision:
    with rt.db.session() as s:
        row = s.get(PromotionDecision, decision_id)
        if row is None:
            raise NotFound(f"promotion decision {decision_id!r} not found")
        s.expunge(row)
    return row


def policy_dict(policy: GatePolicy) -> dict[str, Any]:
    """The policy as the API and CLI show it (and as decisions record it)."""
    return {
        "testset": policy.testset,
        "testset_version": policy.testset_version,
        "min_scores": policy.min_scores,
        "max_regression": policy.max_regression,
        "metrics": policy.metrics,
        "params": policy.params,
    }


def decision_dict(d: PromotionDecision, *, kb_name: str | None = None) -> dict[str, Any]:
    return {
        "id": d.id,
        "kb": kb_name,
        "subject_type": d.subject_type,
        "subject": d.subject,
        "index_version": d.index_version,
        "baseline_version": d.baseline_version,
        "eval_run_id": d.eval_run_id,
        "baseline_run_id": d.baseline_run_id,
        "outcome": d.outcome,
        "passed": d.passed,
        "forced": d.forced,
        "actor": d.actor,
        "reason": d.reason,
        "evidence": d.evidence or {},
        # Naive UTC in the catalog; ISO 8601 with `Z` like every API timestamp.
        "created_at": d.created_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        if d.created_at
        else None,
    }
