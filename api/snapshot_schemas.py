"""Request and response bodies of the snapshot routes (`api/routes/snapshots.py`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas import PublicModel, RequestModel, UtcDateTime


class SnapshotPublic(PublicModel):
    """An index version exported as a Qdrant shard snapshot (`index.snapshots`)."""

    id: str
    kb: str | None = Field(None, description="The knowledge base it was taken of")
    kb_id: str
    version: int | None = Field(
        None, validation_alias="version_number", description="The version it was taken of"
    )
    version_id: str | None
    engine: str = Field(
        description="What held the version: qdrant-edge or qdrant-server (file: imported)"
    )
    format: str = Field(description="qdrant-shard: a Qdrant shard snapshot (tar)")
    blob_key: str = Field(description="Where the archive sits in the blob store")
    sha256: str
    size_bytes: int
    point_count: int
    dimension: int
    embedding_model: str
    lexical: bool = Field(description="Its points hold BM25 sparse vectors (hybrid in engine)")
    config_hash: str
    restored_into: list[dict[str, Any]] = Field(
        description="Versions restored from it: kb_id, version_id, version_number, at"
    )
    created_by: str | None
    created_at: UtcDateTime
    erased_at: UtcDateTime | None = Field(
        None, description="When an erasure deleted the archive (it could hold the document)"
    )


class SnapshotList(BaseModel):
    snapshots: list[SnapshotPublic]


class RestoreRequest(RequestModel):
    snapshot_id: str = Field(
        ...,
        min_length=1,
        max_length=32,
        description="A snapshot of this or another knowledge base with the same embedding "
        "model (GET /v1/kbs/{kb}/snapshots)",
    )
