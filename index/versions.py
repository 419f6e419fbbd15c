"""Index version lifecycle: build → ready → live → retired, one live version per KB.

Promotion and rollback are one catalog transaction (a partial unique index makes a
second live version impossible), so a reader resolves either the old or the new live
version, never neither. Readers hold the snapshot they resolved, so in-flight queries
finish on the version they started on. Retired versions keep their index data until
garbage collection (keep the newest `keep_retired_versions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import ABTest, IndexVersion, KnowledgeBase, VersionStatus, utcnow
from core.errors import Conflict, InvalidInput, NotFound
from index.faiss_index import INDEX_TYPES, resolve_params
from index.qdrant_index import EDGE_ENGINE, SERVER_ENGINE

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings
    from index.services import IndexServices

BUILD_JOB = "build_version"
GC_JOB = "gc_versions"
BACKENDS = ("faiss", "qdrant")


def get_version(*, session: Session, kb: KnowledgeBase, number: int) -> IndexVersion:
    version = session.execute(
        select(IndexVersion).where(IndexVersion.kb_id == kb.id, IndexVersion.number == number)
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"index version {number} not found in knowledge base {kb.name!r}")
    return version


def list_versions(*, session: Session, kb: KnowledgeBase) -> list[IndexVersion]:
    return list(
        session.execute(
            select(IndexVersion).where(IndexVersion.kb_id == kb.id).order_by(IndexVersion.number)
        ).scalars()
    )


def active_versions(*, session: Session, kb_id: str) -> list[IndexVersion]:
    """Versions that receive document changes: everything not retired."""
    return list(
        session.execute(
            select(IndexVersion)
            .where(IndexVersion.kb_id == kb_id, IndexVersion.status != VersionStatus.RETIRED)
            .order_by(IndexVersion.number)
        ).scalars()
    )


def queryable_version(
    *, session: Session, kb: KnowledgeBase, number: int | None
) -> IndexVersion | None:
    """The live version, or a pinned one that is ready or live."""
    if number is None:
        return session.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == kb.id, IndexVersion.status == VersionStatus.LIVE
            )
        ).scalar_one_or_none()
    version = get_version(session=session, kb=kb, number=number)
    if version.status not in (VersionStatus.READY, VersionStatus.LIVE):
        raise Conflict(
            f"index version {number} of {kb.name!r} is {version.status}"
            + (
                f" ({version.progress:.0%} built)"
                if version.status == VersionStatus.BUILDING
                else ""
            )
            + "; only ready or live versions can be queried"
        )
    return version


def queryable_numbers(*, session: Session) -> list[tuple[str, int]]:
    """(kb_id, number) of every ready or live version of every KB, by number."""
    return list(
        session.execute(
            select(IndexVersion.kb_id, IndexVersion.number)
            .where(IndexVersion.status.in_([VersionStatus.READY, VersionStatus.LIVE]))
            .order_by(IndexVersion.number)
        ).tuples()
    )


def qdrant_engine(settings: Settings) -> str:
    """The Qdrant engine these settings run: a server by RAGOPS_QDRANT_URL, else Qdrant Edge
    shards under the data dir."""
    return SERVER_ENGINE if settings.qdrant_url else EDGE_ENGINE


def engine_of(version: IndexVersion, settings: Settings) -> str:
    """Which engine holds `version`: `faiss`, `qdrant-edge` or `qdrant-server`. Qdrant
    versions record it when created (`index_params["engine"]`), so it stays true when the
    settings change later; versions from before that are read with the engine configured
    now (the only one the store opens them with)."""
    if version.backend != "qdrant":
        return str(version.backend)
    return str((version.index_params or {}).get("engine") or qdrant_engine(settings))


def new_index_params(settings: Settings, backend: str) -> dict[str, Any]:
    """The index params of a version created with the deployment's defaults: FAISS's
    index type, or the Qdrant engine it is built on."""
    if backend == "qdrant":
        return {"engine": qdrant_engine(settings)}
    return {"index_type": settings.faiss_index_type}


def check_index_params(
    rt: IndexServices, backend: str, index_params: dict[str, Any] | None, *, dimension: int
) -> dict[str, Any]:
    """Validated index params, stored on the version (FAISS: index_type + its knobs;
    Qdrant: only the engine it is built on, recorded here, see `engine_of`)."""
    params = dict(index_params or {})
    if backend == "qdrant":
        if params:
            raise InvalidInput(
                "index_params are not supported for the qdrant backend "
                "(HNSW settings are the engine's); remove them"
            )
        return new_index_params(rt.settings, backend)
    index_type = params.pop("index_type", rt.settings.faiss_index_type)
    if index_type not in INDEX_TYPES:
        raise InvalidInput(
            f"index_params.index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}"
        )
    try:
        resolve_params(index_type, dimension, params)
    except ValueError as exc:
        raise InvalidInput(f"index_params: {exc}") from exc
    return {"index_type": index_type, **params}


def promote(rt: IndexServices, *, kb: KnowledgeBase, number: int) -> IndexVersion:
    """Make a ready version live in one transaction; the old live one becomes ready
    (still maintained, so rollback is instant)."""
    with rt.db.session() as s:
        version = get_version(session=s, kb=kb, number=number)
        if version.status == VersionStatus.LIVE:
            return version
        check_promotable(version, number)
        _switch_live(s, kb_id=kb.id, to=version)
    _sync_alias(rt, kb, version)
    return version


def check_promotable(version: IndexVersion, number: int) -> None:
    if version.status != VersionStatus.READY:
        detail = (
            f" ({version.progress:.0%} built)" if version.status == VersionStatus.BUILDING else ""
        )
        raise Conflict(
            f"index version {number} is {version.status}{detail}; only a "
            "ready version can be promoted"
        )


def rollback(rt: IndexServices, *, kb: KnowledgeBase) -> IndexVersion:
    """Re-point live at the version that was live before the current one."""
    with rt.db.session() as s:
        current = s.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == kb.id, IndexVersion.status == VersionStatus.LIVE
            )
        ).scalar_one_or_none()
        previous = s.execute(
            select(IndexVersion)
            .where(
                IndexVersion.kb_id == kb.id,
                IndexVersion.status == VersionStatus.READY,
                IndexVersion.promoted_at.is_not(None),
            )
            .order_by(IndexVersion.promoted_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        if previous is None:
            raise Conflict(
                f"knowledge base {kb.name!r} has no earlier live version that is "
                "still maintained; nothing to roll back to"
            )
        _switch_live(s, kb_id=kb.id, to=previous, demote_promoted_at=current)
    _sync_alias(rt, kb, previous)
    return previous


def _switch_live(
    s: Session, *, kb_id: str, to: IndexVersion, demote_promoted_at: IndexVersion | None = None
) -> None:
    now = utcnow()
    live = s.execute(
        select(IndexVersion).where(
            IndexVersion.kb_id == kb_id, IndexVersion.status == VersionStatus.LIVE
        )
    ).scalar_one_or_none()
    if live is not None:
        live.status = VersionStatus.READY
        if demote_promoted_at is not None and live.id == demote_promoted_at.id:
            # Rolled back: it should not be the target of the next rollback.
            live.promoted_at = None
        s.flush()  # the partial unique index allows one live row at a time
    to.status = VersionStatus.LIVE
    to.promoted_at = now
    kb = s.get(KnowledgeBase, kb_id)
    if kb is not None:
        # New documents and the next build start from what is live (its redaction
        # policy too: chunks of one version share one policy).
        kb.config = {
            **kb.config,
            **{
                k: v
                for k, v in to.config.items()
                if k in ("chunking", "embedding_model", "cleaning", "redaction")
            },
        }


def _sync_alias(rt: IndexServices, kb: KnowledgeBase, version: IndexVersion) -> None:
    """Qdrant: point the KB's collection alias at the live version's collection, so
    clients that query Qdrant directly follow promotions too."""
    if version.backend == "qdrant":
        rt.indexes.point_alias(kb, version)


def retire(rt: IndexServices, *, kb: KnowledgeBase, number: int) -> IndexVersion:
    with rt.db.session() as s:
        version = get_version(session=s, kb=kb, number=number)
        if version.status == VersionStatus.LIVE:
            raise Conflict(
                f"index version {number} is live; promote another version or "
                "roll back before retiring it"
            )
        for test in s.execute(
            select(ABTest).where(ABTest.kb_id == kb.id, ABTest.status == "running")
        ).scalars():
            if any(arm.get("index_version") == number for arm in test.arms or []):
                raise Conflict(
                    f"index version {number} serves an arm of the running A/B test "
                    f"{test.name!r}; stop the test (POST /v1/kbs/{kb.name}/ab-tests/"
                    f"{test.name}/stop) before retiring it"
                )
        if version.status != VersionStatus.RETIRED:
            version.status = VersionStatus.RETIRED
            version.retired_at = utcnow()
    return version


def submit_gc(rt: IndexServices, *, kb: KnowledgeBase | None = None) -> str:
    with rt.db.session() as s:
        job = rt.jobs.submit(
            s, kind=GC_JOB, payload={"kb_id": kb.id if kb else None}, kb_id=kb.id if kb else None
        )
        s.flush()
        return job.id
