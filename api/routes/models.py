"""The model registry: `/v1/models/registry` (`/v1/models` itself is the OpenAI façade's
list of knowledge bases). Names may contain '/', so `{name:model_name}` takes the rest of
the path, except a final `/stage`: `.../{name}/stage` is the stage change (POST; other
methods there are 405), and no model name ends in '/stage'."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.convertors import PathConvertor, register_url_convertor

from api.access import PrincipalDep
from api.deps import KbDep, RuntimeDep, SessionDep, load_kb
from api.model_schemas import (
    FineTuneAccepted,
    FineTuneCreate,
    FineTuneDatasetPublic,
    FineTunePublic,
    ModelCreate,
    ModelDetail,
    ModelList,
    ModelPublic,
    ModelUpdate,
    RolloutAccepted,
    StageChange,
    StageEvent,
)
from api.schemas import choices
from core.catalog.models import FineTuneRun, PromotionDecision, RegistryModel
from core.errors import InvalidInput, NotFound
from core.kbs import kb_name, kb_names
from eval import finetune, registry, rollout
from eval import finetune_data as ft_data


class ModelNameConvertor(PathConvertor):
    """A model name in a path: the rest of it, '/' included, but never ending in '/stage'."""

    # The lookbehind also sees the '/' before the name: a name of just "stage" is
    # matched by the first branch.
    regex = r"stage|.+(?<!/stage)"


register_url_convertor("model_name", ModelNameConvertor())
KindPath = Annotated[str, Path(json_schema_extra=choices(registry.KINDS))]


def _seed_builtins(rt: RuntimeDep) -> None:
    """The shipped models appear on first use of the registry (idempotent)."""
    registry.ensure_builtin(rt)


router = APIRouter(
    prefix="/models/registry", tags=["model registry"], dependencies=[Depends(_seed_builtins)]
)


def to_public(m: RegistryModel) -> ModelPublic:
    return ModelPublic.model_validate(m, from_attributes=True)


def _event(d: PromotionDecision, names: dict[str, str]) -> StageEvent:
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
        kb=names.get(d.kb_id, d.kb_id) if d.kb_id else None,
        index_version=d.index_version,
        forced=d.forced,
        actor=d.actor,
        reason=d.reason,
        created_at=d.created_at,
    )


@router.get("", response_model=ModelList)
def list_models(
    session: SessionDep,
    kind: Annotated[str | None, Query(json_schema_extra=choices((*registry.KINDS, None)))] = None,
    stage: Annotated[str | None, Query(json_schema_extra=choices((*registry.STAGES, None)))] = None,
) -> ModelList:
    """Registered models, filtered by kind and/or stage."""
    rows = registry.list_models(session=session, kind=kind, stage=stage)
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
    "/{kind}/{name:model_name}/stage",
    response_model=ModelPublic | RolloutAccepted,
    responses={202: {"model": RolloutAccepted, "description": "Rollout to a KB started"}},
)
def change_stage(
    kind: KindPath,
    name: str,
    body: StageChange,
    rt: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> ModelPublic | RolloutAccepted:
    """Move a model along candidate → staging → production → archived (409 lists the
    allowed moves). An embedding model to production *with* `kb` starts a rollout: 202
    with the pending decision; the model becomes production once the new index version
    passes the KB's quality gate and goes live."""
    result = rollout.change_stage(
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
    return RolloutAccepted.from_row(
        result,
        decision_id=result.id,
        kb=kb_name(session=session, kb_id=result.kb_id) or body.kb or "",
        model=registry.get_model(session=session, kind=kind, name=name),
    )


@router.get("/{kind}/{name:model_name}", response_model=ModelDetail)
def get_model(kind: KindPath, name: str, rt: RuntimeDep, session: SessionDep) -> ModelDetail:
    """One model with where it is used, its lineage (parent and children) and its stage
    history."""
    model = registry.get_model(session=session, kind=kind, name=name)
    parent, children = registry.lineage_links(session=session, model=model)
    names = kb_names(session=session)
    return ModelDetail.from_row(
        model,
        usage=registry.usage(session=session, settings=rt.settings, model=model),
        parent=parent,
        children=children,
        history=[_event(d, names) for d in registry.stage_history(session=session, model=model)],
    )


@router.patch("/{kind}/{name:model_name}", response_model=ModelPublic)
def update_model(kind: KindPath, name: str, body: ModelUpdate, rt: RuntimeDep) -> ModelPublic:
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


@router.delete("/{kind}/{name:model_name}", status_code=204)
def delete_model(kind: KindPath, name: str, rt: RuntimeDep) -> Response:
    """Remove a model that no KB, index version or server default uses (409 names the
    users); its stage history stays in the audit log."""
    registry.delete_model(rt, kind=kind, name=name)
    return Response(status_code=204)


# -- fine-tuning: `/v1/models/finetune` and the dataset preview of a KB ------------------

finetune_router = APIRouter(tags=["fine-tuning"])


def _run_public(rt: RuntimeDep, run: FineTuneRun) -> FineTunePublic:
    with rt.db.session() as s:
        kb = kb_name(session=s, kb_id=run.kb_id) if run.kb_id else None
    fields = {k: getattr(run, k) for k in FineTunePublic.model_fields if hasattr(run, k)}
    metrics = run.metrics or {}
    return FineTunePublic.model_validate(
        {
            **fields,
            "job_id": run.id,
            "kb": kb,
            "metrics": finetune.public_metrics(metrics),
            "report": metrics.get(finetune.REPORT),
        }
    )


_SOURCE = "(?:feedback|testsets|synthetic)"
_SOURCES_PATTERN = rf"^ *{_SOURCE} *(?:, *{_SOURCE} *)*$"


@finetune_router.get("/kbs/{kb}/finetune-dataset", response_model=FineTuneDatasetPublic)
def finetune_dataset(
    kb: KbDep,
    rt: RuntimeDep,
    sources: Annotated[
        str,
        Query(
            description="Comma-separated: feedback, testsets, synthetic",
            examples=["feedback"],
            # Checked by `eval.finetune_data.check_sources`, with a message naming the choices.
            json_schema_extra={"pattern": _SOURCES_PATTERN},
        ),
    ] = "feedback",
    testsets: Annotated[
        str | None, Query(description="Comma-separated test set names (source testsets)")
    ] = None,
    hard_negatives: Annotated[int, Query(ge=0, le=ft_data.MAX_HARD_NEGATIVES)] = 1,
    synthetic_questions: Annotated[
        int | None,
        Query(
            description="Source synthetic: questions the judge would write (default 100)",
            # Checked by `eval.finetune_data.check_synthetic`, with a message saying how.
            json_schema_extra={"minimum": 1, "maximum": ft_data.MAX_SYNTHETIC_QUESTIONS},
        ),
    ] = None,
) -> FineTuneDatasetPublic:
    """The pairs a fine-tuning run on this KB would use now, with hard negatives mined from
    the live index (one search per train question), counts by source, language and split,
    and whether the guard rails would let it train. Nothing is stored: with source
    synthetic, `synthetic` says how many questions the judge would write when the job
    runs (none are written here)."""
    chosen = [x for x in sources.split(",") if x.strip()]
    if not chosen:
        raise InvalidInput("sources is empty; choose feedback, testsets and/or synthetic")
    body = finetune.preview_dataset(
        rt,
        kb=kb,
        sources=chosen,
        testsets=[x.strip() for x in (testsets or "").split(",") if x.strip()],
        hard_negatives=hard_negatives,
        synthetic_questions=synthetic_questions,
    )
    return FineTuneDatasetPublic(
        **body, min_train_pairs=ft_data.MIN_TRAIN_PAIRS, min_dev_pairs=ft_data.MIN_DEV_PAIRS
    )


@finetune_router.post("/models/finetune", status_code=202, response_model=FineTuneAccepted)
def start_finetune(body: FineTuneCreate, rt: RuntimeDep, viewer: PrincipalDep) -> FineTuneAccepted:
    """Queue a fine-tuning job (poll GET /v1/jobs/{job_id}). 422 with the figures when the
    KB has too little data or its pairs overlap the quality gate's test set; 409 for
    source synthetic without an LLM judge."""
    kb = load_kb(rt, body.kb, viewer=viewer)
    params = finetune.FineTuneParams(**body.hyperparameters())
    run = finetune.submit_finetune(
        rt,
        name=body.name,
        base_model=body.base_model,
        kb=kb.id,
        sources=list(body.sources),
        testsets=body.testsets,
        params=params,
        synthetic_questions=body.synthetic_questions,
    )
    return FineTuneAccepted(
        job_id=run.id,
        name=run.name,
        base_model=run.base_model,
        kb=kb.name,
        status=run.status,
        dataset=run.dataset,
        poll=f"/v1/jobs/{run.id}",
        run=f"/v1/models/finetune/{run.id}",
    )


def _visible_run(rt: RuntimeDep, job_id: str, viewer: PrincipalDep) -> FineTuneRun:
    run = finetune.get_run(rt, job_id)
    if not viewer.sees(run.kb_id):
        raise NotFound(f"fine-tuning run {job_id!r} not found")
    return run


@finetune_router.get("/models/finetune/{job_id}", response_model=FineTunePublic)
def get_finetune(job_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> FineTunePublic:
    """A run's dataset, loss per step, dev recall@5 / MRR@10 per epoch and outcome."""
    return _run_public(rt, _visible_run(rt, job_id, viewer))


@finetune_router.post("/models/finetune/{job_id}/cancel", response_model=FineTunePublic)
def cancel_finetune(job_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> FineTunePublic:
    """Stop a queued or running run between two training steps (409 once it ended)."""
    _visible_run(rt, job_id, viewer)
    return _run_public(rt, finetune.cancel_finetune(rt, job_id))
