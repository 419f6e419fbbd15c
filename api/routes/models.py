"""The model registry: `/v1/models/registry` (`/v1/models` itself is the OpenAI façade's
list of knowledge bases). Names may contain '/', so `{name:path}` takes the rest of the
path; `.../{name}/stage` is matched by method (POST) before the detail routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.deps import RuntimeDep
from api.model_schemas import (
    KbUse,
    ModelCreate,
    ModelDetail,
    ModelList,
    ModelPublic,
    ModelRef,
    ModelUpdate,
    ModelUsage,
    RolloutAccepted,
    StageChange,
    StageEvent,
    VersionUse,
)
from core import model_registry as registry
from core.catalog.models import KnowledgeBase, PromotionDecision, RegistryModel


def _seed_builtins(rt: RuntimeDep) -> None:
    """The shipped models appear on first use of the registry (idempotent)."""
    registry.ensure_builtin(rt)


router = APIRouter(
    prefix="/models/registry", tags=["model registry"], dependencies=[Depends(_seed_builtins)]
)


def to_public(m: RegistryModel) -> ModelPublic:
    return ModelPublic(
        kind=m.kind,
        name=m.name,
        source_type=m.source_type,
        source=m.source,
        digest=m.digest,
        stage=m.stage,
        lineage=m.lineage or {},
        metadata=m.metadata_ or {},
        description=m.description,
        created_at=m.created_at,
        updated_at=m.updated_at,
        stage_changed_at=m.stage_changed_at,
    )


def _ref(m: RegistryModel) -> ModelRef:
    return ModelRef(kind=m.kind, name=m.name, stage=m.stage)


def _event(d: PromotionDecision, kb_names: dict[str, str]) -> StageEvent:
    evidence = d.evidence or {}
    is_rollout = "model" in evidence
    return StageEvent(
        decision_id=d.id,
        type="rollout" if is_rollout else "stage_change",
        outcome=d.outcome,
        from_stage=evidence.get("from"),
        to_stage=evidence.get("model", {}).get("target_stage")
        if is_rollout
        else evidence.get("to"),
        kb=kb_names.get(d.kb_id, d.kb_id) if d.kb_id else None,
        index_version=d.index_version,
        forced=d.forced,
        actor=d.actor,
        reason=d.reason,
        created_at=d.created_at,
    )


@router.get("", response_model=ModelList)
def list_models(rt: RuntimeDep, kind: str | None = None, stage: str | None = None) -> ModelList:
    """Registered models, filtered by kind and/or stage."""
    with rt.db.session() as s:
        rows = registry.list_models(session=s, kind=kind, stage=stage)
        return ModelList(data=[to_public(m) for m in rows])


@router.post("", status_code=201, response_model=ModelPublic)
def register(body: ModelCreate, rt: RuntimeDep) -> ModelPublic:
    """Register a model as a candidate. A local_path must exist on the server and is
    digested (sha256 of its files); hub ids and endpoints are never fetched."""
    model = registry.register(
        rt,
        kind=body.kind,
        name=body.name,
        source_type=body.source_type,
        source=body.source,
        description=body.description,
        lineage=body.lineage.model_dump(exclude_none=True) if body.lineage else None,
        metadata=body.metadata,
    )
    return to_public(model)


@router.post(
    "/{kind}/{name:path}/stage",
    response_model=ModelPublic | RolloutAccepted,
    responses={202: {"model": RolloutAccepted, "description": "Rollout to a KB started"}},
)
def change_stage(
    kind: str, name: str, body: StageChange, rt: RuntimeDep, response: Response
) -> ModelPublic | RolloutAccepted:
    """Move a model along candidate → staging → production → archived (409 lists the
    allowed moves). An embedding model to production *with* `kb` starts a rollout: 202
    with the pending decision; the model becomes production once the new index version
    passes the KB's quality gate and goes live."""
    result = registry.change_stage(
        rt,
        kind=kind,
        name=name,
        stage=body.stage,
        kb=body.kb,
        actor=body.actor,
        reason=body.reason,
        force=body.force,
    )
    if isinstance(result, RegistryModel):
        return to_public(result)
    response.status_code = 202
    with rt.db.session() as s:
        kb = s.get(KnowledgeBase, result.kb_id) if result.kb_id else None
        model = registry.get_model(session=s, kind=kind, name=name)
        return RolloutAccepted(
            decision_id=result.id,
            kb=kb.name if kb else (body.kb or ""),
            model=_ref(model),
            outcome=result.outcome,
            index_version=result.index_version,
            evidence=result.evidence or {},
            created_at=result.created_at,
        )


@router.get("/{kind}/{name:path}", response_model=ModelDetail)
def get_model(kind: str, name: str, rt: RuntimeDep) -> ModelDetail:
    """One model with where it is used, its lineage (parent and children) and its stage
    history."""
    with rt.db.session() as s:
        model = registry.get_model(session=s, kind=kind, name=name)
        use = registry.usage(session=s, settings=rt.settings, model=model)
        parent, children = registry.lineage_links(session=s, model=model)
        history = registry.stage_history(session=s, model=model)
        kb_names = dict(s.query(KnowledgeBase.id, KnowledgeBase.name).all())
        return ModelDetail(
            **to_public(model).model_dump(),
            usage=ModelUsage(
                kbs=[KbUse(**u) for u in use.kbs],
                index_versions=[VersionUse(**v) for v in use.index_versions],
                server_defaults=use.server_defaults,
                in_use=use.in_use,
            ),
            parent=_ref(parent) if parent else None,
            children=[_ref(c) for c in children],
            history=[_event(d, kb_names) for d in history],
        )


@router.patch("/{kind}/{name:path}", response_model=ModelPublic)
def update_model(kind: str, name: str, body: ModelUpdate, rt: RuntimeDep) -> ModelPublic:
    """Change description, lineage or metadata (given fields replace stored ones)."""
    sent = body.model_fields_set
    model = registry.update_model(
        rt,
        kind=kind,
        name=name,
        description=body.description,
        lineage=(body.lineage.model_dump(exclude_none=True) if body.lineage else {})
        if "lineage" in sent
        else None,
        metadata=(body.metadata or {}) if "metadata" in sent else None,
    )
    return to_public(model)


@router.delete("/{kind}/{name:path}", status_code=204)
def delete_model(kind: str, name: str, rt: RuntimeDep) -> Response:
    """Remove a model that no KB, index version or server default uses (409 names the
    users); its stage history stays in the audit log."""
    registry.delete_model(rt, kind=kind, name=name)
    return Response(status_code=204)
