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
the stage at once: `eval.gates.start_model_rollout` builds a new index version with the
model, evaluates it and makes it live only through the KB's quality gate; when that
decision is final, gates calls `on_rollout_decided`, which moves the model to production
if the version went live.

Example::

    model = register(rt, kind="embedding", name="minilm-cls-256",
                     source_type="local_path", source="/models/minilm-cls-256",
                     lineage={"fine_tuned_from": "all-MiniLM-L6-v2"})
    move_stage(rt, kind="embedding", name="minilm-cls-256", stage="staging", actor="ana")
    decision = start_rollout(rt, kind="embedding", name="minilm-cls-256", kb="docs")
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    AnswerSettings,
    IndexVersion,
    KnowledgeBase,
    PromotionDecision,
    RegistryModel,
    VersionStatus,
    utcnow,
)
from core.errors import Conflict, Duplicate, InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings
    from core.runtime import Runtime

log = logging.getLogger(__name__)

KINDS = ("embedding", "generator", "judge", "reranker")
SOURCE_TYPES = ("local_path", "hub_id", "endpoint", "package", "builtin")
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
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")

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
    if len(name) > NAME_MAX or not NAME_RE.match(name):
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


def digest_path(path: Path) -> str:
    """sha256 of a model folder (the same weight digest the embedding cache builds on) or
    of a single model file (e.g. a .gguf), streamed."""
    from ingest.embed import digest_dir

    if path.is_dir():
        return digest_dir(path)
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Source:
    """A validated source: what to store, plus the local files (if any) it resolves to."""

    source: str
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _packaged_embedding_path(ref: str) -> Path | None:
    from ingest.embed import PACKAGED_MODELS

    return PACKAGED_MODELS[ref]() if ref in PACKAGED_MODELS else None


def check_source(kind: str, source_type: str, source: str) -> Source:
    """Validate a source without fetching anything; local files are resolved."""
    if source_type not in SOURCE_TYPES:
        raise InvalidInput(
            f"unknown source_type {source_type!r}; choose one of {', '.join(SOURCE_TYPES)}"
        )
    source = source.strip()
    if not source:
        raise InvalidInput("source must not be empty")
    if source_type == "builtin":
        raise InvalidInput(
            "source_type 'builtin' is reserved for the models this service ships (they "
            "register themselves); use local_path, hub_id, endpoint or package"
        )
    if source_type == "local_path":
        return _check_local_path(kind, source)
    if source_type == "hub_id":
        if not HUB_ID_RE.match(source):
            raise InvalidInput(
                f"hub_id {source!r} is not a hub id like 'org/model-name'; use "
                "source_type local_path for a folder on disk"
            )
        # Never downloaded: only a copy shipped in an installed package is resolved.
        path = _packaged_embedding_path(source) if kind == "embedding" else None
        return Source(source=source, path=path)
    if source_type == "endpoint":
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"endpoint {source!r} must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise InvalidInput(
                "endpoint must not carry credentials; configure keys in the server "
                "settings (e.g. RAGOPS_OPENAI_API_KEY), not in the registry"
            )
        return Source(source=source.rstrip("/"))
    return _check_package(kind, source)


def _check_local_path(kind: str, source: str) -> Source:
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidInput(
            f"local_path {source!r} does not exist on the server; copy the model there "
            "first (paths are resolved on the machine that runs ragops)"
        )
    path = path.resolve()
    if kind == "embedding":
        from ingest.embed import resolve_model_path

        resolve_model_path(str(path))  # InvalidInput unless a sentence-transformers folder
    elif kind == "reranker":
        from retrieval.rerank import check_reranker_path

        check_reranker_path(str(path))
    return Source(source=str(path), path=path)


def _check_package(kind: str, source: str) -> Source:
    if kind == "embedding":
        from ingest.embed import PACKAGED_MODELS

        path = _packaged_embedding_path(source)
        if path is None:
            raise InvalidInput(
                f"package embedding model {source!r} is unknown; packaged models: "
                f"{', '.join(sorted(PACKAGED_MODELS))}"
            )
        return Source(source=source, path=path, extra={"path": str(path)})
    try:
        version = importlib.metadata.version(source)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None and importlib.util.find_spec(source.replace("-", "_")) is None:
        raise InvalidInput(
            f"package {source!r} is not installed on the server; install it "
            "(pip install ...) and register again"
        )
    return Source(source=source, extra={"version": version} if version else {})


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
    rt: Runtime,
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
    rt: Runtime,
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


def delete_model(rt: Runtime, *, kind: str, name: str) -> None:
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


# ------------------------------------------------------------------------------ usage


@dataclass
class Usage:
    """Where a model is used now. Retired index versions are history, not use."""

    # [{"kb": name, "role": "embedding_model" | "reranker" | "answer_generator"}]
    kbs: list[dict[str, Any]] = field(default_factory=list)
    # [{"kb": name, "number": 3, "status": "live"}]
    index_versions: list[dict[str, Any]] = field(default_factory=list)
    # Server settings that default to this model, e.g. ["RAGOPS_EMBEDDING_MODEL"].
    server_defaults: list[str] = field(default_factory=list)

    @property
    def in_use(self) -> bool:
        return bool(self.kbs or self.index_versions or self.server_defaults)

    def describe(self) -> str:
        parts = [f"knowledge base {u['kb']!r} ({u['role']})" for u in self.kbs]
        parts += [
            f"index version {v['number']} of {v['kb']!r} ({v['status']})"
            for v in self.index_versions
        ]
        parts += [f"the server default {d}" for d in self.server_defaults]
        return ", ".join(parts) or "nothing"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kbs": self.kbs,
            "index_versions": self.index_versions,
            "server_defaults": self.server_defaults,
            "in_use": self.in_use,
        }


def model_path(model: RegistryModel) -> Path | None:
    """The local files a registered model resolves to, if any (never fetched)."""
    if model.source_type == "local_path":
        return Path(model.source)
    if model.kind == "embedding" and model.source_type in ("package", "hub_id"):
        return _packaged_embedding_path(model.source)
    if model.kind == "generator" and model.source_type == "builtin" and model.name == "local":
        path = (model.metadata_ or {}).get("path")
        return Path(path) if path else None
    return None


def embedding_ref(model: RegistryModel) -> str:
    """What to put in a KB's `embedding_model` to use this model (a local folder or a
    packaged model's name)."""
    if model.source_type == "builtin":
        return model.name
    return model.source


def _resolve_embedding(ref: str) -> Path | None:
    from ingest.embed import resolve_model_path

    try:
        return resolve_model_path(ref)
    except InvalidInput:
        return None


def _resolve_file(ref: str) -> Path | None:
    path = Path(ref).expanduser()
    return path.resolve() if path.exists() else None


def _matcher(model: RegistryModel, settings: Settings) -> Callable[[str | None], bool]:
    """Does a reference found in the catalog or settings (a name, a path) denote this
    model? By name, by source, or by resolving both to the same local files."""
    names = {model.name, model.source}
    own = model_path(model)
    own = own.resolve() if own is not None and own.exists() else None
    resolve = _resolve_embedding if model.kind == "embedding" else _resolve_file
    if model.kind == "generator":
        names |= _generator_aliases(model, settings, own)
    seen: dict[str, bool] = {}

    def match(ref: str | None) -> bool:
        if not ref:
            return False
        if ref not in seen:
            seen[ref] = ref in names or (own is not None and resolve(ref) == own)
        return seen[ref]

    return match


def _generator_aliases(model: RegistryModel, settings: Settings, own: Path | None) -> set[str]:
    """A registered generator that *is* what a built-in generator runs: the local model
    file, or the configured OpenAI-compatible endpoint."""
    aliases: set[str] = set()
    if own is not None and model.source_type == "local_path":
        from retrieval.generators.local import packaged_model_path

        configured = settings.local_generator_path
        local = _resolve_file(configured) if configured else packaged_model_path()
        if local is not None and local.resolve() == own:
            aliases.add("local")
    base_url = (settings.openai_base_url or "").rstrip("/")
    if model.source_type == "endpoint" and base_url and base_url == model.source.rstrip("/"):
        aliases.add("openai")
    return aliases


def _is_server_judge(
    model: RegistryModel, settings: Settings, match: Callable[[str | None], bool]
) -> bool:
    """Is this the judge eval uses (RAGOPS_JUDGE): the local generator's model file
    in process, or the configured endpoint / judge model name?"""
    kind = settings.judge_kind
    if kind == "local":
        from retrieval.generators.local import packaged_model_path

        configured = settings.local_generator_path
        local = _resolve_file(configured) if configured else packaged_model_path()
        return local is not None and match(str(local))
    if kind == "openai":
        base_url = (settings.judge_base_url or "").rstrip("/")
        if model.source_type == "endpoint" and base_url and model.source.rstrip("/") == base_url:
            return True
        return bool(settings.judge_model) and settings.judge_model in (model.name, model.source)
    return False


def usage(*, session: Session, settings: Settings, model: RegistryModel) -> Usage:
    """Which knowledge bases, index versions and server defaults use `model`.

    Embedding models: index versions that are not retired, KB configs and
    RAGOPS_EMBEDDING_MODEL. Generators: KB answer settings and RAGOPS_ANSWER_GENERATOR.
    Rerankers: KB configs. Judges: the server's judge (RAGOPS_JUDGE)."""
    match = _matcher(model, settings)
    found = Usage()
    kbs = list(session.execute(select(KnowledgeBase).order_by(KnowledgeBase.name)).scalars())
    if model.kind in ("embedding", "reranker"):
        role = "embedding_model" if model.kind == "embedding" else "reranker"
        found.kbs = [{"kb": kb.name, "role": role} for kb in kbs if match(kb.config.get(role))]
    if model.kind == "embedding":
        names = {kb.id: kb.name for kb in kbs}
        versions = session.execute(
            select(IndexVersion)
            .where(IndexVersion.status != VersionStatus.RETIRED)
            .order_by(IndexVersion.kb_id, IndexVersion.number)
        ).scalars()
        found.index_versions = [
            {"kb": names.get(v.kb_id, v.kb_id), "number": v.number, "status": v.status}
            for v in versions
            if match(v.embedding_model)
        ]
        found.index_versions.sort(key=lambda v: (v["kb"], v["number"]))
        if match(settings.embedding_model):
            found.server_defaults.append("RAGOPS_EMBEDDING_MODEL")
    if model.kind == "judge" and _is_server_judge(model, settings, match):
        found.server_defaults.append("RAGOPS_JUDGE")
    if model.kind == "generator":
        names = {kb.id: kb.name for kb in kbs}
        rows = session.execute(select(AnswerSettings)).scalars()
        found.kbs = sorted(
            (
                {"kb": names.get(r.kb_id, r.kb_id), "role": "answer_generator"}
                for r in rows
                if match(r.generator)
            ),
            key=lambda u: u["kb"],
        )
        if match(settings.answer_generator):
            found.server_defaults.append("RAGOPS_ANSWER_GENERATOR")
    return found


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


def _check_move(model: RegistryModel, stage: str) -> None:
    allowed = TRANSITIONS[model.stage]
    if stage not in allowed:
        raise IllegalStageMove(
            f"{model.kind} model {model.name!r} is {model.stage}; it can move to "
            f"{', '.join(allowed)}, not {stage}",
            current=model.stage,
            requested=stage,
        )


def move_stage(
    rt: Runtime,
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
    _check_force(force, actor, reason)
    with rt.db.session() as s:
        model = get_model(session=s, kind=kind, name=name, lock=True)
        if model.stage == stage:
            return model
        _check_move(model, stage)
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


def _check_force(force: bool, actor: str | None, reason: str) -> None:
    if force and (not (actor or "").strip() or not (reason or "").strip()):
        raise InvalidInput(
            "force skips a safety check and is recorded: send actor (who) and reason (why) with it"
        )


def start_rollout(
    rt: Runtime,
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
    the stage changes in `on_rollout_decided`."""
    from core.kbs import get_kb

    _check_force(force, actor, reason)
    with rt.db.session() as s:
        model = get_model(session=s, kind=kind, name=name)
        if kind != "embedding":
            raise InvalidInput(
                f"kb applies only to embedding models (a rollout builds an index version); "
                f"move {kind} model {name!r} without kb, and choose a KB's generator with "
                "PUT /v1/kbs/{kb}/answer-settings"
            )
        if model.stage != "production":  # already production: rolling out to another KB
            _check_move(model, "production")
        if model_path(model) is None:
            raise InvalidInput(
                f"embedding model {name!r} ({model.source_type} {model.source!r}) has no "
                "local files on this server, so no index version can be built with it; "
                "register a local_path or a packaged model"
            )
        kb_row = get_kb(session=s, name_or_id=kb)
        pending = s.execute(
            select(PromotionDecision).where(
                PromotionDecision.subject_type == SUBJECT_TYPE,
                PromotionDecision.subject == subject(kind, name),
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
    from eval import gates

    return gates.start_model_rollout(
        rt,
        kb=kb_row,
        model_name=model.name,
        model_source=embedding_ref(model),
        actor=actor,
        force=force,
        reason=reason,
    )


def change_stage(
    rt: Runtime,
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
    check_kind(kind)
    check_stage(stage)
    if kb:
        if stage != "production":
            raise InvalidInput(
                f"kb applies only when promoting to production (it rolls the model out to "
                f"that knowledge base); leave it out to move to {stage}"
            )
        return start_rollout(
            rt, kind=kind, name=name, kb=kb, actor=actor, reason=reason, force=force
        )
    return move_stage(
        rt, kind=kind, name=name, stage=stage, actor=actor, reason=reason, force=force
    )


def on_rollout_decided(rt: Runtime, decision: PromotionDecision) -> None:
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

_SEEDED: weakref.WeakSet[Runtime] = weakref.WeakSet()


def ensure_builtin(rt: Runtime) -> None:
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
    from retrieval.generators.local import packaged_model_path

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


def _default_embedding(settings: Settings) -> dict[str, Any] | None:
    ref = settings.embedding_model
    path = _packaged_embedding_path(ref)
    if path is not None:
        return {
            "kind": "embedding",
            "name": ref,
            "source_type": "package",
            "source": ref,
            "description": "The default embedding model (RAGOPS_EMBEDDING_MODEL), shipped "
            "in a Python package.",
            "metadata_": {"path": str(path)},
            "digest_path": path,
        }
    path = _resolve_embedding(ref)
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
