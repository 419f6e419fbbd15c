"""The audit log (`admin` role), oldest first, with filters and cursor paging; as JSON
lines with `format=jsonl` for export. A key limited to some KBs sees their events only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.access import PrincipalDep, visible_kb
from api.deps import RuntimeDep
from api.key_schemas import AuditPage
from api.limits import MAX_DB_INT
from core import audit
from core.kbs import kb_names

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditPage,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def list_audit(
    rt: RuntimeDep,
    viewer: PrincipalDep,
    kb: Annotated[str | None, Query(max_length=128)] = None,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Literal["ok", "denied", "error"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_DB_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "jsonl"] = "json",
) -> dict | StreamingResponse:
    kb_id = visible_kb(rt, viewer, kb).id if kb else None
    filters = audit.AuditFilter(
        kb_id=kb_id,
        key_id=key_id,
        action=action,
        outcome=outcome,
        since=_naive_utc(since),
        until=_naive_utc(until),
    )
    with rt.db.session() as session:
        events = audit.list_events(
            session=session, filters=filters, after_id=after, limit=limit, kb_ids=viewer.kb_ids
        )
        names = kb_names(session=session)
    if format == "jsonl":
        return StreamingResponse(audit.json_lines(events, names), media_type="application/x-ndjson")
    return {
        "events": [audit.as_dict(e, names.get(e.kb_id or "")) for e in events],
        "next_after": events[-1].id if len(events) == limit else None,
    }


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
