"""Registering a new index version of a KB: its ingestion config (the KB's, with changes
such as another embedding model) is validated against the real components, and a build
job is queued; `ingest.worker.build_version` then embeds the KB's current documents into
it. The version goes live only through `index.versions.promote`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from core.catalog.models import IndexVersion, KnowledgeBase, VersionStatus
from core.errors import InvalidInput
from index.versions import BACKENDS, BUILD_JOB, check_index_params
from ingest.config import IngestionConfig
from ingest.knowledge_bases import validated_config

if TYPE_CHECKING:
    from ingest.services import IngestServices


def create_version(
    rt: IngestServices,
    *,
    kb: KnowledgeBase,
    changes: dict[str, Any],
    backend: str | None = None,
    index_params: dict[str, Any] | None = None,
) -> IndexVersion:
    """Register a new version built from the KB's current documents, and queue its build.

    `changes` overrides the KB's ingestion config (embedding_model, chunking, cleaning).
    """
    backend = backend or rt.settings.index_backend
    if backend not in BACKENDS:
        raise InvalidInput(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    config = validated_config(rt, IngestionConfig.model_validate(kb.config), changes)
    embedder = rt.embedder(config.embedding_model)
    params = check_index_params(rt, backend, index_params, dimension=embedder.dimension)
    with rt.db.session() as s:
        number = (
            s.execute(
                select(func.max(IndexVersion.number)).where(IndexVersion.kb_id == kb.id)
            ).scalar()
            or 0
        ) + 1
        version = IndexVersion(
            kb_id=kb.id,
            number=number,
            status=VersionStatus.BUILDING,
            backend=backend,
            embedding_model=config.embedding_model,
            dimension=embedder.dimension,
            config=config.model_dump(),
            config_hash="",
            index_params=params,
        )
        s.add(version)
        s.flush()
        job = rt.jobs.submit(s, kind=BUILD_JOB, payload={"version_id": version.id}, kb_id=kb.id)
        s.flush()
        version.job_id = job.id
    return version
