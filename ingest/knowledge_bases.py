"""Creating, changing and deleting knowledge bases (validated against the real model)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import Document, DocumentRevision, IndexVersion, KnowledgeBase
from core.errors import Conflict, Duplicate, InvalidInput
from core.kbs import get_kb
from ingest.config import IngestionConfig, check_reranker_path
from ingest.redact import SUPPORTED_ENTITIES

if TYPE_CHECKING:
    from ingest.services import IngestServices

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
# Names a fixed route segment shadows where a KB name goes: `GET /v1/models/registry` is
# the model registry, never the OpenAI façade's model `registry` (`/v1/models/{model}`);
# `/v1/models/finetune` starts fine-tuning jobs.
# tests/integration/api/test_openapi_contract.py derives the set from the routes.
RESERVED_NAMES = frozenset({"finetune", "registry"})
# Ids are uuid4 hex (core.catalog.models.new_id): a name shaped like one is refused, so a
# name can never shadow an id in lookups that take either.
ID_LIKE_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def _validated(rt: IngestServices, config: IngestionConfig) -> IngestionConfig:
    """Checks that need the real components: the model exists and fits the chunk size,
    and every redaction entity is one Presidio can detect."""
    embedder = rt.embedder(config.embedding_model)  # raises InvalidInput if not found
    embedder.warm_up()
    if config.chunking.chunk_size > embedder.max_tokens:
        raise InvalidInput(
            f"chunking.chunk_size {config.chunking.chunk_size} is over the {embedder.max_tokens}"
            f"-token limit of embedding model {config.embedding_model!r}; the rest of each "
            "chunk would be silently truncated"
        )
    if config.reranker is not None:
        check_reranker_path(config.reranker)
    for field, names in (
        ("entities", config.redaction.entities or []),
        ("entity_operators", config.redaction.entity_operators or {}),
    ):
        unknown = sorted(set(names) - set(SUPPORTED_ENTITIES))
        if unknown:
            raise InvalidInput(
                f"redaction.{field}: unknown {', '.join(unknown)}; supported: "
                f"{', '.join(SUPPORTED_ENTITIES)}"
            )
    return config


def _config_from(base: IngestionConfig, changes: dict[str, Any]) -> IngestionConfig:
    try:
        return base.merged(changes)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InvalidInput(detail) from exc


def validated_config(
    rt: IngestServices, base: IngestionConfig, changes: dict[str, Any]
) -> IngestionConfig:
    """`base` with `changes` applied, checked against the real model and Presidio."""
    return _validated(rt, _config_from(base, changes))


def create_kb(
    rt: IngestServices, *, name: str, description: str = "", changes: dict[str, Any] | None = None
) -> KnowledgeBase:
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid knowledge base name {name!r}: use 1-128 letters, digits, "
            "'_', '-' or '.', starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(
            f"knowledge base name {name!r} is reserved: /v1/models/{name} is a route of its "
            "own, so the OpenAI-compatible API could not reach the KB; choose another name"
        )
    if ID_LIKE_RE.fullmatch(name):
        raise InvalidInput(
            f"knowledge base name {name!r} looks like a knowledge base id (32 hex digits): "
            "lookups take a name or an id, so it could shadow another KB; choose another name"
        )
    config = _validated(rt, _config_from(IngestionConfig.defaults(rt.settings), changes or {}))
    try:
        with rt.db.session() as s:
            if s.get(KnowledgeBase, name) is not None:
                raise InvalidInput(
                    f"knowledge base name {name!r} is the id of another knowledge base; "
                    "choose another name"
                )
            if s.execute(select(exists().where(KnowledgeBase.name == name))).scalar():
                raise Duplicate(f"knowledge base {name!r} already exists")
            kb = KnowledgeBase(name=name, description=description, config=config.model_dump())
            s.add(kb)
        return kb
    except IntegrityError as exc:
        raise Duplicate(f"knowledge base {name!r} already exists") from exc


def update_kb(
    rt: IngestServices,
    *,
    name_or_id: str,
    description: str | None = None,
    changes: dict[str, Any] | None = None,
) -> KnowledgeBase:
    with rt.db.session() as s:
        kb = get_kb(session=s, name_or_id=name_or_id)
        current = IngestionConfig.model_validate(kb.config)
        has_index = s.execute(select(exists().where(IndexVersion.kb_id == kb.id))).scalar()
    config = validated_config(rt, current, changes or {})
    # The reranker is used at query time only, so it may change under an existing index.
    if has_index and config.model_copy(update={"reranker": current.reranker}) != current:
        raise Conflict(
            f"knowledge base {kb.name!r} already has an index; to change its embedding "
            "model, chunking, cleaning or redaction build a new index version "
            f"(POST /v1/kbs/{kb.name}/versions with the changes), then promote it"
        )
    with rt.db.session() as s:
        kb = get_kb(session=s, name_or_id=name_or_id)
        kb.config = config.model_dump()
        if description is not None:
            kb.description = description
    return kb


def delete_kb(rt: IngestServices, *, name_or_id: str) -> None:
    with rt.db.session() as s:
        kb = get_kb(session=s, name_or_id=name_or_id)
        kb_id = kb.id
        shas = set(
            s.execute(
                select(DocumentRevision.content_sha256)
                .join(Document)
                .where(Document.kb_id == kb_id)
            ).scalars()
        )
        versions = list(
            s.execute(select(IndexVersion).where(IndexVersion.kb_id == kb_id)).scalars()
        )
        s.delete(kb)
        s.flush()
        still_used = set(
            s.execute(
                select(DocumentRevision.content_sha256).where(
                    DocumentRevision.content_sha256.in_(shas)
                )
            ).scalars()
        )
    rt.indexes.drop_all(versions)
    for sha in shas - still_used:
        rt.blobs.delete(sha)
