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
from core.errors import InvalidInput
from core.kbs import kb_names

router = APIRouter(prefix="/audit", tags=["audit"])

# ISO 8601 only (a bare number is not taken for a Unix time), with every field in range.
ISO_TIME = (
    r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?$"
)
TIME_HELP = "ISO 8601, e.g. 2026-12-01T08:00:00Z (no zone: UTC)"


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
    since: Annotated[str | None, Query(pattern=ISO_TIME, description=TIME_HELP)] = None,
    until: Annotated[str | None, Query(pattern=ISO_TIME, description=TIME_HELP)] = None,
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
        since=_utc_time("since", since),
        until=_utc_time("until", until),
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


def _utc_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time as naive UTC (the catalog's); no zone means UTC. A day past the
    end of its month (02-30) is the month's last day: a bound, not a calendar entry."""
    if value is None:
        return None
    for overshoot in range(4):
        candidate = value
        if overshoot:
            day = int(value[8:10]) - overshoot
            candidate = f"{value[:8]}{day:02d}{value[10:]}"
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            try:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:  # past year 9999 in UTC
                parsed = datetime.max
        return parsed
    raise InvalidInput(f"{name}: {value!r} is not an ISO 8601 time")
