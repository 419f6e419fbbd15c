"""The model registry: every embedding model, generator, judge and reranker the deployment
knows, with where it comes from (`source_type` + `source`), a digest of its files, a
lifecycle stage, lineage, and which knowledge bases and index versions use it.

Stages move along a small graph (`TRANSITIONS`)::

    candidate → staging → production → archived      (the main line)
    staging → candidate, production → staging        (step back after review)
    candidate | staging → archived                   (abandon)
    archived → candidate                             (revive, to be reviewed again)

- `candidate → production` is not allowed: a model is reviewed in staging first, and an
  embedding model is rolled out to a KB from staging (or from production, to another KB).
- Moving to the current stage is a no-op (nothing is recorded).

Every stage change writes a `PromotionDecision` (subject_type "model", subject
"<kind>:<name>", evidence {"from", "to"}): the stage history is the audit trail.

Promoting an *embedding* model to production for a knowledge base (`kb=`) does not flip
the stage at once: `eval.rollout.start_rollout` builds a new index version with the
model, evaluates it and makes it live only through the KB's quality gate; when that
decision is final, gates calls `record_rollout_outcome`, which moves the model to
production if the version went live.

Example::

    model = register(rt, kind="embedding", name="minilm-cls-256",
                     source_type="local_path", source="/models/minilm-cls-256",
                     lineage={"fine_tuned_from": "all-MiniLM-L6-v2"})
    move_stage(rt, kind="embedding", name="minilm-cls-256", stage="staging", actor="ana")
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    PromotionDecision,
    RegistryModel,
    utcnow,
)
from core.errors import Conflict, Duplicate, InvalidInput, NotFound
from eval.model_sources import (
    check_source,
    digest_path,
    packaged_embedding_path,
    resolve_embedding,
)
from eval.model_usage import Usage, usage
from retrieval.generators.local import packaged_model_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings
    from eval.services import EvalServices

log = logging.getLogger(__name__)

KINDS = ("embedding", "generator", "judge", "reranker")
STAGES = ("candidate", "staging", "production", "archived")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("staging", "archived"),
    "staging": ("production", "candidate", "archived"),
    "production": ("staging", "archived"),
    "archived": ("candidate",),
}
LINEAGE_KEYS = ("fine_tuned_from", "training_data", "notes")
SUBJECT_TYPE = "model"
# Rollout outcomes after which the model is what serves the KB.
ROLLOUT_WENT_LIVE = ("promoted", "overridden")

# Hub-id-like: letters, digits and _.-:@+ in parts separated by single slashes. Kept
# within 200 characters so "<kind>:<name>" fits PromotionDecision.subject.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+\-]*(?:/[A-Za-z0-9_.:@+\-]+)*$")
NAME_MAX = 200

BUILTIN_GENERATORS = {
    "extractive": (
        "retrieval.generators.extractive",
        "No language model: the best sentences of the retrieved passages, scored with "
        "the KB's embedding model.",
    ),
    "local": (
        "retrieval.generators.local",
        "A small instruction-tuned model on this machine (RAGOPS_LOCAL_GENERATOR_PATH, "
        "default: the packaged SmolLM2-135M-Instruct GGUF).",
    ),
    "openai": (
        "retrieval.generators.openai_compat",
        "Any OpenAI-compatible endpoint (RAGOPS_OPENAI_BASE_URL, RAGOPS_OPENAI_MODEL).",
    ),
}


class IllegalStageMove(Conflict):
    """A stage move outside `TRANSITIONS`; `details.allowed` lists the legal moves."""

    code = "illegal_stage_move"

    def __init__(self, message: str, *, current: str, requested: str) -> None:
        super().__init__(message)
        self.details = {
            "current": current,
            "requested": requested,
            "allowed": list(TRANSITIONS[current]),
        }


class ModelInUse(Conflict):
    """Deleting (or archiving) a model that knowledge bases, index versions or a server
    default still use; `details.usage` names them."""

    code = "model_in_use"

    def __init__(self, message: str, *, usage: Usage) -> None:
        super().__init__(message)
        self.details = {"usage": usage.as_dict()}


# --------------------------------------------------------------------------- validation


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    return stage


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use up to {NAME_MAX} letters, digits, '_', '.', "
            "'-', ':', '@' or '+', in parts separated by single '/' (like a hub id)"
        )
    return name


def subject(kind: str, name: str) -> str:
    """The PromotionDecision subject of a model."""
    return f"{kind}:{name}"


def clean_lineage(lineage: dict[str, Any] | None, *, name: str) -> dict[str, str]:
    """Only the known keys, as non-empty strings; a model cannot descend from itself."""
    if not lineage:
        return {}
    unknown = sorted(set(lineage) - set(LINEAGE_KEYS))
    if unknown:
        raise InvalidInput(
            f"lineage: unknown key(s) {', '.join(unknown)}; use {', '.join(LINEAGE_KEYS)}"
        )
    cleaned: dict[str, str] = {}
    for key, value in lineage.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"lineage.{key} must be a string, got {type(value).__name__}")
        if value.strip():
            cleaned[key] = value.strip()
    if cleaned.get("fine_tuned_from") == name:
        raise InvalidInput(f"lineage.fine_tuned_from: model {name!r} cannot descend from itself")
    return cleaned


# ---------------------------------------------------------------------------- catalog


def get_model(*, session: Session, kind: str, name: str, lock: bool = False) -> RegistryModel:
    check_kind(kind)
    query = select(RegistryModel).where(RegistryModel.kind == kind, RegistryModel.name == name)
    if lock:
        query = query.with_for_update()
    model = session.execute(query).scalar_one_or_none()
    if model is None:
        raise NotFound(
            f"{kind} model {name!r} is not registered; list them with "
            "GET /v1/models/registry or register it with POST /v1/models/registry"
        )
    return model


def list_models(
    *, session: Session, kind: str | None = None, stage: str | None = None
) -> list[RegistryModel]:
    query = select(RegistryModel).order_by(RegistryModel.kind, RegistryModel.name)
    if kind is not None:
        query = query.where(RegistryModel.kind == check_kind(kind))
    if stage is not None:
        query = query.where(RegistryModel.stage == check_stage(stage))
    return list(session.execute(query).scalars())


def register(
    rt: EvalServices,
    *,
    kind: str,
    name: str,
    source_type: str,
    source: str,
    description: str = "",
    lineage: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> RegistryModel:
    """Add a model as a `candidate`. Local files are digested (a large folder takes a
    moment: ~0.3 s for the 90 MB MiniLM); hub ids and endpoints are never fetched."""
    check_kind(kind)
    check_name(name)
    lineage = clean_lineage(lineage, name=name)
    resolved = check_source(kind, source_type, source)
    with rt.db.session() as s:
        if _exists(s, kind, name):
            raise Duplicate(f"{kind} model {name!r} is already registered")
    digest = digest_path(resolved.path) if resolved.path is not None else None
    model = RegistryModel(
        kind=kind,
        name=name,
        source_type=source_type,
        source=resolved.source,
        digest=digest,
        stage="candidate",
        lineage=lineage,
        metadata_={**resolved.extra, **(metadata or {})},
        description=description,
    )
    try:
        with rt.db.session() as s:
            s.add(model)
    except IntegrityError as exc:  # registered concurrently
        raise Duplicate(f"{kind} model {name!r} is already registered") from exc
    return model


def _exists(s: Session, kind: str, name: str) -> bool:
    return (
        s.execute(
            select(RegistryModel.id).where(RegistryModel.kind == kind, RegistryModel.name == name)
        ).first()
        is not None
    )


def update_model(
    rt: EvalServices,
    *,
    kind: str,
    name: str,
    description: str | None = None,
    lineage: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> RegistryModel:
    """Replace the given fields (None leaves a field as it is; `{}` clears lineage or
    metadata). Source, digest and stage change only by registering anew or by a stage
    move."""
    with rt.db.session() as s:
        model = get_model(session=s, kind=kind, name=name, lock=True)
        if description is not None:
            model.description = description
        if lineage is not None:
            model.lineage = clean_lineage(lineage, name=name)
        if metadata is not None:
            model.metadata_ = metadata
    return model


def delete_model(rt: EvalServices, *, kind: str, name: str) -> None:
    """Remove a model nobody uses. Its stage history (PromotionDecision rows) stays."""
    with rt.db.session() as s:
        model = get_model(session=s, kind=kind, name=name, lock=True)
        if model.source_type == "builtin":
            raise Conflict(
                f"{kind} model {name!r} ships with the service and cannot be deleted; "
                "archive it instead"
            )
        use = usage(session=s, settings=rt.settings, model=model)
        if use.in_use:
            raise ModelInUse(
                f"{kind} model {name!r} is in use by {use.describe()}; switch them to "
                "another model (or retire those index versions) before deleting it",
                usage=use,
            )
        s.delete(model)


# ---------------------------------------------------------------------------- lineage


def lineage_links(
    *, session: Session, model: RegistryModel
) -> tuple[RegistryModel | None, list[RegistryModel]]:
    """(parent, children): the registered model `lineage.fine_tuned_from` names (by name,
    preferring the same kind, else by source such as a hub id), and the models that name
    this one."""
    everything = list(session.execute(select(RegistryModel)).scalars())
    parent = None
    ref = (model.lineage or {}).get("fine_tuned_from")
    if ref:
        candidates = [m for m in everything if m.id != model.id]
        ranked = (
            [m for m in candidates if m.name == ref and m.kind == model.kind]
            + [m for m in candidates if m.name == ref]
            + [m for m in candidates if m.source == ref and m.kind == model.kind]
        )
        parent = ranked[0] if ranked else None
    children = [
        m
        for m in everything
        if m.id != model.id
        and (m.lineage or {}).get("fine_tuned_from") in (model.name, model.source)
    ]
    children.sort(key=lambda m: (m.kind, m.name))
    return parent, children


# --------------------------------------------------------------------------- stages


def check_move(model: RegistryModel, stage: str) -> None:
    allowed = TRANSITIONS[model.stage]
    if stage not in allowed:
        raise IllegalStageMove(
            f"{model.kind} model {model.name!r} is {model.stage}; it can move to "
            f"{', '.join(allowed)}, not {stage}",
            current=model.stage,
            requested=stage,
        )


def move_stage(
    rt: EvalServices,
    *,
    kind: str,
    name: str,
    stage: str,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> RegistryModel:
    """Change the stage and record the decision. Archiving a model still in use is a
    409 naming the users unless `force` (which needs actor and reason: it is recorded)."""
    check_stage(stage)
    check_force(force, actor, reason)
    with rt.db.session() as s:
        model = get_model(session=s, kind=kind, name=name, lock=True)
        if model.stage == stage:
            return model
        check_move(model, stage)
        forced = False
        if stage == "archived":
            use = usage(session=s, settings=rt.settings, model=model)
            if use.in_use and not force:
                raise ModelInUse(
                    f"{kind} model {name!r} is in use by {use.describe()}; move them to "
                    "another model first, or pass force=true to archive it anyway",
                    usage=use,
                )
            forced = use.in_use
        old = model.stage
        model.stage = stage
        model.stage_changed_at = utcnow()
        s.add(
            PromotionDecision(
                subject_type=SUBJECT_TYPE,
                subject=subject(kind, name),
                outcome="promoted",
                forced=forced,
                actor=actor,
                reason=reason,
                evidence={"from": old, "to": stage},
            )
        )
    return model


def check_force(
    force: bool, actor: str | None, reason: str, *, overrides: str = "skips a safety check"
) -> None:
    """A forced action is recorded with who and why: refuse it without both."""
    if force and (not (actor or "").strip() or not (reason or "").strip()):
        raise InvalidInput(
            f"force {overrides} and is recorded: send actor (who) and reason (why) with it"
        )


def record_rollout_outcome(rt: EvalServices, decision: PromotionDecision) -> None:
    """Called by eval.gates once a model rollout's decision is final: the version went
    live ("promoted"/"overridden") → the model is production; otherwise it stays where it
    is and nothing more is recorded."""
    info = (decision.evidence or {}).get("model") or {}
    if decision.outcome not in ROLLOUT_WENT_LIVE or not info.get("name"):
        return
    kind = info.get("kind", "embedding")
    target = info.get("target_stage", "production")
    with rt.db.session() as s:
        model = s.execute(
            select(RegistryModel)
            .where(RegistryModel.kind == kind, RegistryModel.name == info["name"])
            .with_for_update()
        ).scalar_one_or_none()
        if model is None:
            log.warning(
                "rollout %s went live with %s model %r, which is no longer registered",
                decision.id,
                kind,
                info["name"],
            )
            return
        if model.stage == target:
            return
        old = model.stage
        model.stage = target
        model.stage_changed_at = utcnow()
        s.add(
            PromotionDecision(
                kb_id=decision.kb_id,
                subject_type=SUBJECT_TYPE,
                subject=subject(kind, model.name),
                index_version=decision.index_version,
                baseline_version=decision.baseline_version,
                eval_run_id=decision.eval_run_id,
                baseline_run_id=decision.baseline_run_id,
                outcome=decision.outcome,
                passed=decision.passed,
                forced=decision.forced,
                actor=decision.actor,
                reason=decision.reason,
                evidence={"from": old, "to": target, "rollout_decision": decision.id},
            )
        )


def stage_history(*, session: Session, model: RegistryModel) -> list[PromotionDecision]:
    """This model's decisions, oldest first: its stage changes (evidence "from"/"to") and
    its rollouts to knowledge bases (evidence "model", with an index version). Rows of an
    earlier, deleted model of the same name are left out."""
    return list(
        session.execute(
            select(PromotionDecision)
            .where(
                PromotionDecision.subject_type == SUBJECT_TYPE,
                PromotionDecision.subject == subject(model.kind, model.name),
                PromotionDecision.created_at >= model.created_at,
            )
            .order_by(PromotionDecision.created_at, PromotionDecision.id)
        ).scalars()
    )


# --------------------------------------------------------------------------- built-ins

_SEEDED: weakref.WeakSet[EvalServices] = weakref.WeakSet()


def ensure_builtin(rt: EvalServices) -> None:
    """Register what the service ships and uses by default: the default embedding model
    (RAGOPS_EMBEDDING_MODEL) and the built-in generators, in `production` (any KB may use
    them right now). Idempotent and cheap after the first call per runtime; existing rows
    are never changed."""
    if rt in _SEEDED:
        return
    with rt.db.session() as s:
        present = {(m.kind, m.name) for m in s.execute(select(RegistryModel)).scalars()}
    wanted = [*_builtin_generators(rt.settings)]
    default = _default_embedding(rt.settings)
    if default is not None:
        wanted.append(default)
    for entry in wanted:
        if (entry["kind"], entry["name"]) in present:
            continue
        files = entry.pop("digest_path", None)
        if files is not None:
            entry["digest"] = digest_path(files)
        try:
            with rt.db.session() as s:
                s.add(RegistryModel(stage="production", stage_changed_at=utcnow(), **entry))
        except IntegrityError:
            pass  # another process registered it first
    _SEEDED.add(rt)


def _builtin_generators(settings: Settings) -> list[dict[str, Any]]:

    local = settings.local_generator_path or packaged_model_path()
    extra: dict[str, dict[str, Any]] = {
        "extractive": {},
        "local": {"path": str(local) if local else None},
        "openai": {"base_url": settings.openai_base_url, "model": settings.openai_model},
    }
    return [
        {
            "kind": "generator",
            "name": name,
            "source_type": "builtin",
            "source": module,
            "description": description,
            "metadata_": extra[name],
        }
        for name, (module, description) in BUILTIN_GENERATORS.items()
    ]


def _provenance(path: Path) -> dict[str, Any]:
    """A model built from packages on first use (multilingual-e5-small) records where each
    of its files came from in `provenance.json`; the registry keeps that record."""
    record = path / "provenance.json"
    if not record.is_file():
        return {}
    try:
        return {"provenance": json.loads(record.read_text(encoding="utf-8"))}
    except (OSError, ValueError) as exc:
        log.warning("model %s: unreadable provenance.json (%s)", path, exc)
        return {}


def _default_embedding(settings: Settings) -> dict[str, Any] | None:
    ref = settings.embedding_model
    path = packaged_embedding_path(ref)
    if path is not None:
        return {
            "kind": "embedding",
            "name": ref,
            "source_type": "package",
            "source": ref,
            "description": "The default embedding model (RAGOPS_EMBEDDING_MODEL), shipped "
            "in a Python package.",
            "metadata_": {"path": str(path), **_provenance(path)},
            "digest_path": path,
        }
    path = resolve_embedding(ref)
    if path is None or not NAME_RE.match(path.name):
        log.warning("default embedding model %r not registered: not found on disk", ref)
        return None
    return {
        "kind": "embedding",
        "name": path.name,
        "source_type": "local_path",
        "source": str(path),
        "description": "The default embedding model (RAGOPS_EMBEDDING_MODEL).",
        "metadata_": {"path": str(path)},
        "digest_path": path,
    }
