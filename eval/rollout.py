"""Rolling a model out: the registry stage move → an index version built with the model
→ its evaluation → the KB's quality gate → the stage, as one flow.

`change_stage` is the entry point of the API and CLI: a plain stage move goes to the
registry; promoting an embedding model to production *for a knowledge base* starts a
rollout. A rollout never flips the stage at once: it builds a new index version with the
model and returns the pending `PromotionDecision`; `eval.gates.advance` evaluates the
version when its build ends, decides, and tells the registry
(`registry.record_rollout_outcome`), which moves the model to production if the version
went live.

Example::

    decision = change_stage(rt, kind="embedding", name="minilm-cls-256",
                            stage="production", kb="docs", actor="ana")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from core.catalog.models import KnowledgeBase, PromotionDecision, RegistryModel
from core.errors import Conflict, InvalidInput
from core.kbs import get_kb
from eval import gates, registry
from eval.model_sources import embedding_ref, model_path
from ingest.builds import create_version

if TYPE_CHECKING:
    from eval.services import EvalServices


def change_stage(
    rt: EvalServices,
    *,
    kind: str,
    name: str,
    stage: str,
    kb: str | None = None,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> RegistryModel | PromotionDecision:
    """The model (a plain move) or the pending rollout decision (`kb` given)."""
    registry.check_kind(kind)
    registry.check_stage(stage)
    if kb:
        if stage != "production":
            raise InvalidInput(
                f"kb applies only when promoting to production (it rolls the model out to "
                f"that knowledge base); leave it out to move to {stage}"
            )
        return start_rollout(
            rt, kind=kind, name=name, kb=kb, actor=actor, reason=reason, force=force
        )
    return registry.move_stage(
        rt, kind=kind, name=name, stage=stage, actor=actor, reason=reason, force=force
    )


def start_rollout(
    rt: EvalServices,
    *,
    kind: str,
    name: str,
    kb: str,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> PromotionDecision:
    """Promote an embedding model to production *for a knowledge base*: a new index
    version is built with it, evaluated, and goes live only through the KB's quality gate
    (`force` overrides a failing gate, and is recorded). Returns the pending decision;
    the stage changes in `registry.record_rollout_outcome`."""
    registry.check_force(force, actor, reason)
    with rt.db.session() as s:
        model = registry.get_model(session=s, kind=kind, name=name)
        if kind != "embedding":
            raise InvalidInput(
                f"kb applies only to embedding models (a rollout builds an index version); "
                f"move {kind} model {name!r} without kb, and choose a KB's generator with "
                "PUT /v1/kbs/{kb}/answer-settings"
            )
        if model.stage != "production":  # already production: rolling out to another KB
            registry.check_move(model, "production")
        if model_path(model) is None:
            raise InvalidInput(
                f"embedding model {name!r} ({model.source_type} {model.source!r}) has no "
                "local files on this server, so no index version can be built with it; "
                "register a local_path or a packaged model"
            )
        kb_row = get_kb(session=s, name_or_id=kb)
        pending = s.execute(
            select(PromotionDecision).where(
                PromotionDecision.subject_type == registry.SUBJECT_TYPE,
                PromotionDecision.subject == registry.subject(kind, name),
                PromotionDecision.kb_id == kb_row.id,
                PromotionDecision.outcome == "pending",
            )
        ).scalar()
        if pending is not None:
            raise Conflict(
                f"a rollout of {kind} model {name!r} to {kb_row.name!r} is already pending "
                f"(decision {pending.id}, index version {pending.index_version}); follow it "
                f"with GET /v1/decisions/{pending.id}"
            )
    return _build_and_gate(
        rt,
        kb=kb_row,
        model_name=model.name,
        model_source=embedding_ref(model),
        actor=actor,
        force=force,
        reason=reason,
    )


def _build_and_gate(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    model_name: str,
    model_source: str,
    actor: str | None,
    force: bool,
    reason: str,
) -> PromotionDecision:
    """Embedding model to production for a KB: build a version with it, evaluate it and
    make it live only through the gate. Returns the pending decision; the build job's
    end moves it on (see `advance`)."""
    gates.check_force(force, actor, reason)
    with rt.db.session() as s:
        if gates.get_gate(session=s, kb=kb) is None and not force:
            raise Conflict(
                f"knowledge base {kb.name!r} has no quality gate, and a model reaches "
                f"production only through one: PUT /v1/kbs/{kb.name}/quality-gate first "
                "(or force with actor and reason)"
            )
    version = create_version(rt, kb=kb, changes={"embedding_model": model_source})
    with rt.db.session() as s:
        decision = PromotionDecision(
            kb_id=kb.id,
            subject_type=gates.MODEL_SUBJECT,
            subject=f"embedding:{model_name}",
            index_version=version.number,
            outcome=gates.PENDING,
            forced=force,
            actor=actor,
            reason=reason,
            evidence={
                "model": {"kind": "embedding", "name": model_name, "target_stage": "production"},
                "waiting_for": f"build of index version {version.number}",
            },
        )
        s.add(decision)
        s.flush()
        s.expunge(decision)
    return decision
