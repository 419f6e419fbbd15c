"""Index versions as Qdrant shard snapshots: export one, list and download them, restore
one as a new version of this or another knowledge base (`index.snapshots` does the work;
README "Moving a version between engines (snapshots)")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.access import PrincipalDep, check_visible, note_detail
from api.deps import KbDep, RuntimeDep, SessionDep
from api.limits import MAX_DB_INT
from api.routes.versions import to_public
from api.schemas import VersionPublic
from api.snapshot_schemas import RestoreRequest, SnapshotList, SnapshotPublic
from core.catalog.models import IndexSnapshot, KnowledgeBase
from index import snapshots

router = APIRouter(prefix="/kbs/{kb}", tags=["index versions"])


def _public(row: IndexSnapshot, kb_name: str | None) -> SnapshotPublic:
    return SnapshotPublic.from_row(row, kb=kb_name)


@router.post("/versions/{number:int}/snapshots", status_code=201, response_model=SnapshotPublic)
def create_snapshot(
    kb: KbDep,
    number: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    rt: RuntimeDep,
    principal: PrincipalDep,
    request: Request,
) -> SnapshotPublic:
    """Export a ready, live or retired Qdrant version as a Qdrant shard snapshot into the
    blob store, with its sha256 and size; synchronous (201). FAISS versions are refused
    (409): build a Qdrant version and export that."""
    row = snapshots.create_snapshot(rt, kb=kb, number=number, created_by=principal.key_id)
    note_detail(
        request,
        target=f"version {number}",
        snapshot_id=row.id,
        version=number,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
    )
    return _public(row, kb.name)


@router.get("/snapshots", response_model=SnapshotList)
def list_snapshots(kb: KbDep, session: SessionDep) -> SnapshotList:
    rows = snapshots.list_snapshots(session=session, kb=kb)
    return SnapshotList(snapshots=[_public(r, kb.name) for r in rows])


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotPublic)
def get_snapshot(kb: KbDep, snapshot_id: str, session: SessionDep) -> SnapshotPublic:
    return _public(snapshots.get_snapshot(session=session, snapshot_id=snapshot_id, kb=kb), kb.name)


@router.get(
    "/snapshots/{snapshot_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": {}}, "description": "the archive"}},
)
def download_snapshot(kb: KbDep, snapshot_id: str, rt: RuntimeDep) -> Response:
    """The archive (a tar a Qdrant server recovers with POST /collections/{name}/shards/0/
    snapshots/upload), checked against its sha256 before it is sent."""
    with rt.db.session() as s:
        row = snapshots.get_snapshot(session=s, snapshot_id=snapshot_id, kb=kb)
        s.expunge(row)
    data = snapshots.snapshot_bytes(rt, row)
    name = f"{kb.name}-v{row.version_number or 0}-{row.id[:8]}.snapshot"
    return Response(
        data,
        media_type="application/x-tar",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Checksum-Sha256": row.sha256,
            "ETag": f'"{row.sha256}"',
        },
    )


@router.post("/versions/restore", status_code=201, response_model=VersionPublic)
def restore(
    kb: KbDep, body: RestoreRequest, rt: RuntimeDep, principal: PrincipalDep, request: Request
) -> VersionPublic:
    """Restore a snapshot of this KB (another KB's: 422, its points cite that KB's
    documents; another embedding model: 422) as a new version: synchronous (201), `ready`, not live;
    promote it through POST .../versions/{number}/promote (the quality gate applies).
    Points whose chunks were erased or deleted since the export are left out."""
    with rt.db.session() as s:
        row = s.get(IndexSnapshot, body.snapshot_id)
        source = s.get(KnowledgeBase, row.kb_id) if row is not None else None
    missing = (
        f"snapshot {body.snapshot_id!r} not found; list them with GET /v1/kbs/{{kb}}/snapshots"
    )
    check_visible(principal, row.kb_id if row is not None else None, missing)
    version = snapshots.restore_snapshot(rt, kb=kb, snapshot_id=body.snapshot_id)
    note_detail(
        request,
        target=f"version {version.number}",
        version=version.number,
        snapshot_id=body.snapshot_id,
        source_kb=source.name if source is not None else None,
    )
    return to_public(version, rt.settings)
