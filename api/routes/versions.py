from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse

from api.access import note_detail
from api.deps import KbDep, RuntimeDep, SessionDep, VersionDep
from api.gate_schemas import DecisionPublic, PromoteRequest
from api.limits import MAX_DB_INT
from api.schemas import JobAccepted, VersionCreate, VersionList, VersionPublic
from core.catalog.models import IndexVersion, VersionStatus
from core.config import Settings
from core.errors import Conflict
from eval import gates
from index import versions as lifecycle
from ingest.builds import create_version as build_new_version

router = APIRouter(prefix="/kbs/{kb}", tags=["index versions"])


def to_public(v: IndexVersion, settings: Settings) -> VersionPublic:
    return VersionPublic.from_row(v, engine=lifecycle.engine_of(v, settings))


@router.get("/versions", response_model=VersionList)
def list_versions(kb: KbDep, session: SessionDep, rt: RuntimeDep) -> VersionList:
    rows = lifecycle.list_versions(session=session, kb=kb)
    live = next((v.number for v in rows if v.status == VersionStatus.LIVE), None)
    return VersionList(live_version=live, versions=[to_public(v, rt.settings) for v in rows])


@router.post("/versions", status_code=202, response_model=VersionPublic)
def create_version(kb: KbDep, body: VersionCreate, rt: RuntimeDep) -> VersionPublic:
    """Build a new version from the KB's current documents in the background; the live
    version keeps serving. Poll GET .../versions/{v} for progress, then promote it."""
    # Only what the client sent: an explicit null inside a section clears that field.
    changes = body.model_dump(
        include={"embedding_model", "chunking", "cleaning", "redaction"}, exclude_unset=True
    )
    version = build_new_version(
        rt, kb=kb, changes=changes, backend=body.backend, index_params=body.index_params
    )
    return to_public(version, rt.settings)


@router.get("/versions/{number:int}", response_model=VersionPublic)
def get_version(version: VersionDep, rt: RuntimeDep) -> VersionPublic:
    return to_public(version, rt.settings)


@router.post(
    "/versions/{number:int}/promote",
    response_model=VersionPublic,
    responses={
        202: {"description": "gate eval runs queued; the decision is pending"},
        409: {"description": "the quality gate refused it (details: the evidence)"},
    },
)
def promote(
    version: VersionDep,
    kb: KbDep,
    rt: RuntimeDep,
    session: SessionDep,
    request: Request,
    body: PromoteRequest | None = Body(None),
) -> Any:
    """Make a ready version live, atomically; the previous live version stays ready.

    With a quality gate on the KB the version goes live only when it passes: 200 when
    finished eval runs decide it now, 202 with the `pending` decision while its eval runs
    are queued (it goes live by itself if it passes; poll GET /v1/decisions/{id}), 409
    with every check when it fails. `force` (with `actor` and `reason`) overrides the
    gate; every attempt is recorded (GET /v1/kbs/{kb}/decisions)."""
    body = body or PromoteRequest()
    # A forced promotion overrides the quality gate: the audit log names it so.
    note_detail(
        request,
        target=f"version {version.number}",
        version=version.number,
        force=body.force,
        **({"gate_override": True, "reason": body.reason or ""} if body.force else {}),
    )
    if version.status == VersionStatus.LIVE:
        return to_public(version, rt.settings)
    number = version.number
    decision = gates.request_promotion(
        rt,
        kb=kb,
        number=number,
        actor=body.actor,
        force=body.force,
        reason=body.reason or "",
    )
    # The session is first used here, so it reads what request_promotion wrote.
    public = to_public(lifecycle.get_version(session=session, kb=kb, number=number), rt.settings)
    # Through its public model: timestamps in UTC with `Z`, like every response's.
    public.decision = DecisionPublic(**gates.decision_dict(decision, kb_name=kb.name)).model_dump(
        mode="json"
    )
    if decision.outcome == gates.PENDING:
        return JSONResponse(public.model_dump(mode="json"), status_code=202)
    if decision.outcome == gates.FAILED:
        raise Conflict(
            f"promotion of version {number} failed: "
            f"{decision.evidence.get('note', 'see the decision')} (decision {decision.id})"
        )
    return public


@router.post("/rollback", response_model=VersionPublic)
def rollback(kb: KbDep, rt: RuntimeDep) -> VersionPublic:
    """Make the previously live version live again."""
    return to_public(lifecycle.rollback(rt, kb=kb), rt.settings)


@router.delete("/versions/{number:int}", response_model=VersionPublic)
def retire(
    kb: KbDep, number: Annotated[int, Path(ge=1, le=MAX_DB_INT)], rt: RuntimeDep
) -> VersionPublic:
    """Retire a version (409 for the live one); its data goes at the next GC."""
    return to_public(lifecycle.retire(rt, kb=kb, number=number), rt.settings)


@router.post("/versions/gc", status_code=202, response_model=JobAccepted)
def garbage_collect(kb: KbDep, rt: RuntimeDep) -> JobAccepted:
    """Queue garbage collection of this KB's retired versions (keep the newest
    RAGOPS_KEEP_RETIRED_VERSIONS)."""
    return JobAccepted(job_id=lifecycle.submit_gc(rt, kb=kb))
