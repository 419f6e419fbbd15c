"""The audit log: append-only rows in the catalog (`audit_events`).

Nothing here deletes a row, and only `scrub` updates one: an erase (GDPR Art. 17)
replaces a data subject's values where an event quoted them (a KB or key named after a
person), keeping the event itself. Events name the key by id (`bootstrap` for
`RAGOPS_ADMIN_KEY`, `anonymous` in open mode), never by secret, and carry no document
text: targets are paths and ids, details are counts, names and flags.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog.models import AuditEvent
from core.erasure import Needles

OUTCOMES = ("ok", "denied", "error")


@dataclass(frozen=True)
class AuditFilter:
    kb_id: str | None = None
    key_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def record(
    *,
    session: Session,
    action: str,
    outcome: str,
    key_id: str | None = None,
    kb_id: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    status: int | None = None,
    method: str | None = None,
    path: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        action=action,
        outcome=outcome,
        key_id=key_id,
        kb_id=kb_id,
        target=target[:512] if target else target,
        request_id=request_id,
        status=status,
        method=method,
        path=path[:1024] if path else path,
        detail=detail or {},
    )
    session.add(event)
    session.flush()
    return event


def outcome_of(status: int, denied: bool) -> str:
    if denied or status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "error"


def list_events(
    *,
    session: Session,
    filters: AuditFilter,
    after_id: int | None = None,
    limit: int = 100,
    kb_ids: frozenset[str] | None = None,
) -> list[AuditEvent]:
    """Events oldest first, after `after_id` (the paging cursor). `kb_ids` limits them to
    those KBs (a key scoped to some KBs sees only their events)."""
    query = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    if kb_ids is not None:
        query = query.where(AuditEvent.kb_id.in_(sorted(kb_ids)))
    for column, value in (
        (AuditEvent.kb_id, filters.kb_id),
        (AuditEvent.key_id, filters.key_id),
        (AuditEvent.action, filters.action),
        (AuditEvent.outcome, filters.outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at < filters.until)
    return list(session.execute(query).scalars())


def as_dict(event: AuditEvent, kb_name: str | None = None) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat() + "Z",
        "key_id": event.key_id,
        "action": event.action,
        "kb_id": event.kb_id,
        "kb": kb_name,
        "target": event.target,
        "request_id": event.request_id,
        "outcome": event.outcome,
        "status": event.status,
        "method": event.method,
        "path": event.path,
        "detail": event.detail,
    }


def json_lines(events: list[AuditEvent], names: dict[str, str]) -> Iterator[str]:
    for event in events:
        yield json.dumps(as_dict(event, names.get(event.kb_id or "")), sort_keys=True) + "\n"


def scrub(*, session: Session, needles: Needles) -> list[int]:
    """Replace the needles in every event's target, path and detail; the ids changed."""
    if not needles:
        return []
    changed = []
    for event in session.execute(select(AuditEvent)).scalars():
        if not (
            needles.in_text(event.target)
            or needles.in_text(event.path)
            or needles.in_json(event.detail)
        ):
            continue
        event.target = needles.scrub_text(event.target) if event.target else event.target
        event.path = needles.scrub_text(event.path) if event.path else event.path
        event.detail = needles.scrub_json(event.detail)
        changed.append(event.id)
    return changed
