"""Where a registered model is used now: knowledge bases (embedding model, reranker,
answer generator), index versions that are not retired, and server settings that default
to it. A reference matches a model by name, by source, or by resolving to the same files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import (
    AnswerSettings,
    IndexVersion,
    KnowledgeBase,
    RegistryModel,
    VersionStatus,
)
from eval.model_sources import model_path, resolve_embedding, resolve_file
from retrieval.generators.local import packaged_model_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings


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


def _matcher(model: RegistryModel, settings: Settings) -> Callable[[str | None], bool]:
    """Does a reference found in the catalog or settings (a name, a path) denote this
    model? By name, by source, or by resolving both to the same local files."""
    names = {model.name, model.source}
    own = model_path(model)
    own = own.resolve() if own is not None and own.exists() else None
    resolve = resolve_embedding if model.kind == "embedding" else resolve_file
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
        configured = settings.local_generator_path
        local = resolve_file(configured) if configured else packaged_model_path()
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
        configured = settings.local_generator_path
        local = resolve_file(configured) if configured else packaged_model_path()
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
