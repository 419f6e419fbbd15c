"""Move an index version between engines: export it as a Qdrant shard snapshot, restore a
snapshot as a new version (on Qdrant Edge, or on the Qdrant server of RAGOPS_QDRANT_URL).

- Export (`create_snapshot`): a ready, live or retired (not yet purged) Qdrant version. On
  Edge, a copy of its shard taken while no write runs (`EdgeIndex.copy_files`) is
  archived (`index.snapshot_archive`); on a server, the server snapshots the shard and
  the archive is downloaded. The archive goes to the blob store under its sha256 (the
  local folder, or S3 with RAGOPS_BLOB_URL), and an `IndexSnapshot` row records it:
  source version, engine, size, sha256, points, dimension, model, the version's
  ingestion config. FAISS versions are refused (422): their vectors are not kept exactly
  (IVF-PQ) and their payloads live in FAISS segment files, so a faithful snapshot would
  mean re-embedding; build a Qdrant version of the same documents and export that.
- Restore (`restore_snapshot`): into the snapshot's own KB, whose embedding model must
  still be the snapshot's (else 422 naming both). Another KB is refused (422): the points
  cite that KB's chunk rows, so a copy elsewhere would show its documents to keys of the
  other KB and escape its erasures; to copy documents, upload them there. The archive is
  checked against its sha256, restored into a new collection of the engine configured
  now, and points whose chunk has no catalog row of this KB any more (erased or deleted
  since the export, or a foreign file's points) are deleted, so an erase is never undone
  and no other KB's chunk can be reached. Only then is the version row inserted, `ready`
  and not live (promotion stays the gate path): a failure leaves no row and no
  collection. It keeps the source version's ingestion config and config hash (retrieval
  and in-process BM25 find its chunk rows by chunk id), and records
  `index_params["restored_from"]` (snapshot id, source KB and version); the snapshot
  row lists it in `restored_into`. Restores run synchronously (HTTP 201).
- Hybrid: the points keep their BM25 sparse vectors, so a restored version of a lexical
  version answers hybrid queries inside the engine as its source did.

Limits: the blob store takes whole byte strings, so an archive is held in memory once
while stored or read (archives hold data regions only, not Edge's preallocated holes).
Snapshots hold payloads and vectors of the documents they were taken of: erasing a
document deletes the archives of its KB's snapshots taken since its first upload
(`erase_snapshots`; the records stay, with `erased_at`).

Example::

    snap = create_snapshot(rt, kb=kb, number=3)
    version = restore_snapshot(rt, kb=kb, snapshot_id=snap.id)   # ready, not live
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    Chunk,
    IndexSnapshot,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
    new_id,
    utcnow,
)
from core.errors import Conflict, InvalidInput, NotFound, Unavailable
from index.edge_index import EdgeIndex, EdgeShards, inspect_unpacked, unpack_snapshot
from index.qdrant_index import (
    QdrantIndex,
    collection_name,
    download_shard_snapshot,
    drop_collection,
    engine_of,
    server_chunk_ids,
    upload_shard_snapshot,
)
from index.snapshot_archive import write_shard_archive
from index.versions import get_version

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from index.services import IndexServices

FORMAT = "qdrant-shard"
FILE_ENGINE = "file"
EXPORTABLE = (VersionStatus.READY, VersionStatus.LIVE, VersionStatus.RETIRED)
# Chunk ids looked up per catalog query when pruning a restored version.
LOOKUP_BATCH = 500


@dataclass(frozen=True)
class ArchiveFacts:
    sha256: str
    size: int
    dimension: int
    lexical: bool
    points: int


def get_snapshot(
    *, session: Session, snapshot_id: str, kb: KnowledgeBase | None = None
) -> IndexSnapshot:
    """The snapshot `snapshot_id` (of `kb` when given); NotFound otherwise."""
    row = session.get(IndexSnapshot, snapshot_id)
    if row is None or (kb is not None and row.kb_id != kb.id):
        where = f" in knowledge base {kb.name!r}" if kb is not None else ""
        raise NotFound(
            f"snapshot {snapshot_id!r} not found{where}; list them with GET "
            f"/v1/kbs/{{kb}}/snapshots"
        )
    return row


def erase_snapshots(rt: IndexServices, *, kb_ids: list[str], since: datetime) -> list[str]:
    """Delete the archives of the KBs' snapshots taken at or after `since` (the first
    upload of a document being erased: an older snapshot cannot hold it) and mark their
    records erased; returns their ids. An archive cannot be rewritten without the erased
    points, so the whole file goes; a blob another live record shares stays until that
    one goes too."""
    now = utcnow()
    with rt.db.session() as s:
        rows = list(
            s.execute(
                select(IndexSnapshot).where(
                    IndexSnapshot.kb_id.in_(kb_ids),
                    IndexSnapshot.erased_at.is_(None),
                    IndexSnapshot.created_at >= since,
                )
            ).scalars()
        )
        for row in rows:
            row.erased_at = now
        s.flush()
        keys = {row.blob_key for row in rows}
        shared = set(
            s.execute(
                select(IndexSnapshot.blob_key).where(
                    IndexSnapshot.blob_key.in_(keys), IndexSnapshot.erased_at.is_(None)
                )
            ).scalars()
        )
        erased = [row.id for row in rows]
    for key in sorted(keys - shared):
        rt.blobs.delete(key)
    return erased


def list_snapshots(*, session: Session, kb: KnowledgeBase) -> list[IndexSnapshot]:
    return list(
        session.execute(
            select(IndexSnapshot)
            .where(IndexSnapshot.kb_id == kb.id)
            .order_by(IndexSnapshot.created_at, IndexSnapshot.id)
        ).scalars()
    )


@contextmanager
def _scratch(rt: IndexServices) -> Iterator[Path]:
    """A private folder under the data dir (same file system as the shards, so a
    restored shard moves into place without a copy), removed afterwards."""
    root = Path(rt.settings.data_dir) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="snapshot-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def inspect_archive(archive: Path, work: Path, *, dimension: int | None = None) -> ArchiveFacts:
    """Unpack `archive` into `work` (a folder that must not exist; left for the caller
    to delete) and read what it holds. InvalidInput when it is not a readable shard
    snapshot of one unnamed dense vector (of `dimension`, when given)."""
    sha, size = _sha256(archive)
    dim, lexical, points = inspect_unpacked(unpack_snapshot(archive, work), dimension)
    return ArchiveFacts(sha256=sha, size=size, dimension=dim, lexical=lexical, points=points)


def _store(rt: IndexServices, archive: Path, sha: str) -> None:
    try:
        rt.blobs.put(sha, archive.read_bytes())
    except OSError as exc:
        raise Unavailable(
            f"could not store the snapshot in the blob store: {exc}; check RAGOPS_BLOB_URL "
            "or the data dir's free space"
        ) from exc


def create_snapshot(
    rt: IndexServices, *, kb: KnowledgeBase, number: int, created_by: str | None = None
) -> IndexSnapshot:
    """Export version `number` of `kb` (module docstring). Conflict (409) for a version
    that is building or purged, or a FAISS version (what the version is, not what the
    request says, stands in the way); Unavailable when its engine is not the one
    configured now or storage fails."""
    with rt.db.session() as s:
        version = get_version(session=s, kb=kb, number=number)
    if version.backend != "qdrant":
        raise Conflict(
            f"index version {number} of {kb.name!r} is a FAISS version; only Qdrant versions "
            "export as Qdrant snapshots (FAISS keeps no exact vectors for IVF-PQ and its "
            f"payloads in its own files). Build a Qdrant version (POST /v1/kbs/{kb.name}/"
            'versions {"backend": "qdrant"}) and snapshot that'
        )
    if version.status not in EXPORTABLE or version.purged_at is not None:
        state = "purged" if version.purged_at is not None else version.status
        raise Conflict(
            f"index version {number} of {kb.name!r} is {state}; only ready, live or retired "
            "(not yet purged) versions can be exported"
        )
    client = rt.indexes.qdrant_for(version)  # Unavailable when built on the other engine
    engine = engine_of(client)
    with _scratch(rt) as scratch:
        archive = scratch / "shard.snapshot"
        if isinstance(client, EdgeShards):
            index = rt.indexes.reader(version)
            assert isinstance(index, EdgeIndex)
            copy = scratch / "copy"
            index.copy_files(copy)
            try:
                with open(archive, "wb") as out:
                    write_shard_archive(copy, out)
            except OSError as exc:
                raise Unavailable(f"could not write the snapshot archive: {exc}") from exc
        else:
            name = collection_name(version.kb_id, version.number, version.id)
            download_shard_snapshot(client, name, archive)
        facts = inspect_archive(archive, scratch / "check", dimension=version.dimension)
        _store(rt, archive, facts.sha256)
    return _record(
        rt,
        facts,
        kb=kb,
        like=version,
        engine=engine,
        created_by=created_by,
        version_id=version.id,
        version_number=version.number,
    )


def _record(
    rt: IndexServices,
    facts: ArchiveFacts,
    *,
    kb: KnowledgeBase,
    like: IndexVersion,
    engine: str,
    created_by: str | None,
    **extra: Any,
) -> IndexSnapshot:
    """Inserts the catalog row of an archive stored under its sha256; model and ingestion
    config from the version `like` (its source, or the live version for a file)."""
    with rt.db.session() as s:
        row = IndexSnapshot(
            kb_id=kb.id,
            engine=engine,
            format=FORMAT,
            blob_key=facts.sha256,
            sha256=facts.sha256,
            size_bytes=facts.size,
            point_count=facts.points,
            dimension=facts.dimension,
            embedding_model=like.embedding_model,
            lexical=facts.lexical,
            config=dict(like.config or {}),
            config_hash=like.config_hash,
            restored_into=[],
            created_by=created_by,
            **extra,
        )
        s.add(row)
        s.flush()
        s.expunge(row)
    return row


def import_snapshot_file(
    rt: IndexServices, *, kb: KnowledgeBase, path: Path, created_by: str | None = None
) -> IndexSnapshot:
    """The snapshot record of the archive file at `path`: the existing one when the
    catalog knows its sha256 (a snapshot exported here, downloaded), else a new record
    (engine `file`, e.g. a shard snapshot downloaded from a Qdrant server) that borrows
    the model and ingestion config of `kb`'s live version, whose dimension it must have.
    Its points answer retrieval only where their chunk ids have catalog rows."""
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file; give a snapshot id or a snapshot file")
    sha, _ = _sha256(path)
    with rt.db.session() as s:
        known = s.execute(
            select(IndexSnapshot).where(IndexSnapshot.sha256 == sha).limit(1)
        ).scalar_one_or_none()
        if known is not None:
            s.expunge(known)
            return known
        live = s.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == kb.id, IndexVersion.status == VersionStatus.LIVE
            )
        ).scalar_one_or_none()
    if live is None:
        raise Conflict(
            f"{path.name} is not a snapshot this catalog knows, and {kb.name!r} has no live "
            "version to take its model and chunking from; promote a version first"
        )
    with _scratch(rt) as scratch:
        facts = inspect_archive(path, scratch / "check", dimension=live.dimension)
        _store(rt, path, facts.sha256)
    return _record(rt, facts, kb=kb, like=live, engine=FILE_ENGINE, created_by=created_by)


def snapshot_bytes(rt: IndexServices, snapshot: IndexSnapshot) -> bytes:
    """The archive, checked against its sha256. NotFound when the blob is gone (or an
    erasure deleted it), Unavailable when the store fails or the bytes do not match."""
    if snapshot.erased_at is not None:
        raise NotFound(
            f"snapshot {snapshot.id} was deleted by an erasure on "
            f"{snapshot.erased_at:%Y-%m-%d %H:%M} UTC (it could hold an erased document); "
            "export the version again"
        )
    try:
        data = rt.blobs.get(snapshot.blob_key)
    except FileNotFoundError as exc:
        raise NotFound(
            f"the archive of snapshot {snapshot.id} is gone from the blob store; export the "
            "version again"
        ) from exc
    except OSError as exc:
        raise Unavailable(
            f"could not read snapshot {snapshot.id} from the blob store: {exc}"
        ) from exc
    if hashlib.sha256(data).hexdigest() != snapshot.sha256:
        raise Unavailable(
            f"the archive of snapshot {snapshot.id} does not match its sha256 (damaged in the "
            "blob store); export the version again"
        )
    return data


def _target_model(rt: IndexServices, kb: KnowledgeBase) -> str:
    return str((kb.config or {}).get("embedding_model") or rt.settings.embedding_model)


def check_compatible(rt: IndexServices, snapshot: IndexSnapshot, kb: KnowledgeBase) -> None:
    """InvalidInput (422) unless `kb` embeds with the snapshot's model."""
    model = _target_model(rt, kb)
    if model != snapshot.embedding_model:
        raise InvalidInput(
            f"snapshot {snapshot.id} holds vectors of embedding model "
            f"{snapshot.embedding_model!r} (dimension {snapshot.dimension}), but knowledge "
            f"base {kb.name!r} embeds with {model!r}; restore it into a knowledge base "
            "that uses the same model"
        )


def _orphans(rt: IndexServices, kb_id: str, chunk_ids: list[str]) -> list[str]:
    """The chunk ids without a catalog row in KB `kb_id`."""
    missing: list[str] = []
    with rt.db.session() as s:
        for start in range(0, len(chunk_ids), LOOKUP_BATCH):
            batch = chunk_ids[start : start + LOOKUP_BATCH]
            query = select(Chunk.id).where(Chunk.kb_id == kb_id, Chunk.id.in_(batch))
            have = set(s.execute(query).scalars())
            missing += [c for c in batch if c not in have]
    return missing


def restore_snapshot(rt: IndexServices, *, kb: KnowledgeBase, snapshot_id: str) -> IndexVersion:
    """A new ready version of `kb` from snapshot `snapshot_id` (module docstring).
    NotFound for an unknown snapshot; InvalidInput for another model or a damaged
    archive; Conflict when a concurrent build took the version number (retry);
    Unavailable when the engine or the blob store fails."""
    with rt.db.session() as s:
        snapshot = get_snapshot(session=s, snapshot_id=snapshot_id)
        s.expunge(snapshot)
        source_kb = s.get(KnowledgeBase, snapshot.kb_id)
        number = (
            s.execute(
                select(func.max(IndexVersion.number)).where(IndexVersion.kb_id == kb.id)
            ).scalar()
            or 0
        ) + 1
    check_compatible(rt, snapshot, kb)
    if snapshot.kb_id != kb.id:
        source = source_kb.name if source_kb is not None else snapshot.kb_id
        raise InvalidInput(
            f"snapshot {snapshot.id} was taken of knowledge base {source!r} and restores "
            f"only into it, not into {kb.name!r}: its points cite {source!r}'s documents; "
            f"to copy documents into {kb.name!r}, upload them there"
        )
    data = snapshot_bytes(rt, snapshot)
    client = rt.indexes.qdrant_client()
    engine = engine_of(client)
    version_id = new_id()
    name = collection_name(kb.id, number, version_id)
    created = False
    try:
        with _scratch(rt) as scratch:
            archive = scratch / f"{snapshot.id}.snapshot"
            archive.write_bytes(data)
            del data
            index: Any
            if isinstance(client, EdgeShards):
                index = client.restore(name, archive, snapshot.dimension)  # all or nothing
                created = True
                chunk_ids = index.chunk_ids()
            else:
                facts = inspect_archive(archive, scratch / "check", dimension=snapshot.dimension)
                created = True
                index = upload_shard_snapshot(
                    client,
                    name,
                    archive,
                    snapshot.dimension,
                    lexical=facts.lexical,
                    sha256=snapshot.sha256,
                )
                assert isinstance(index, QdrantIndex)
                chunk_ids = server_chunk_ids(index)
        orphans = _orphans(rt, kb.id, chunk_ids)
        if orphans:
            index.delete(orphans)
        index.save()
        count = index.count()
        now = utcnow()
        provenance = {
            "snapshot_id": snapshot.id,
            "sha256": snapshot.sha256,
            "kb_id": snapshot.kb_id,
            "kb": source_kb.name if source_kb is not None else None,
            "version_id": snapshot.version_id,
            "version": snapshot.version_number,
            "engine": snapshot.engine,
        }
        with rt.db.session() as s:
            version = IndexVersion(
                id=version_id,
                kb_id=kb.id,
                number=number,
                status=VersionStatus.READY,
                backend="qdrant",
                embedding_model=snapshot.embedding_model,
                dimension=snapshot.dimension,
                config=dict(snapshot.config or {}),
                config_hash=snapshot.config_hash,
                vector_count=count,
                generation=1,
                index_params={"engine": engine, "restored_from": provenance},
                progress=1.0,
                stats={
                    "restored_points": len(chunk_ids),
                    "dropped_without_catalog_rows": len(orphans),
                },
                ready_at=now,
            )
            s.add(version)
            row = s.get(IndexSnapshot, snapshot.id)
            if row is not None:
                row.restored_into = [
                    *(row.restored_into or []),
                    {
                        "kb_id": kb.id,
                        "version_id": version_id,
                        "version_number": number,
                        "at": now.isoformat() + "Z",
                    },
                ]
            s.flush()
            s.expunge(version)
    except IntegrityError as exc:
        _drop_quietly(client, name)
        raise Conflict(
            f"version number {number} of {kb.name!r} was taken while restoring (a build "
            "started meanwhile); restore again"
        ) from exc
    except BaseException:
        if created:
            _drop_quietly(client, name)
        raise
    return version


def _drop_quietly(client: Any, name: str) -> None:
    # the restore's own error is the one to report
    with contextlib.suppress(Exception):
        drop_collection(client, name)


def snapshot_dict(row: IndexSnapshot, *, kb_name: str | None = None) -> dict[str, Any]:
    """The public shape of a snapshot record (API and CLI)."""
    return {
        "id": row.id,
        "kb": kb_name,
        "kb_id": row.kb_id,
        "version": row.version_number,
        "version_id": row.version_id,
        "engine": row.engine,
        "format": row.format,
        "blob_key": row.blob_key,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "point_count": row.point_count,
        "dimension": row.dimension,
        "embedding_model": row.embedding_model,
        "lexical": row.lexical,
        "config_hash": row.config_hash,
        "restored_into": list(row.restored_into or []),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "erased_at": row.erased_at,
    }
