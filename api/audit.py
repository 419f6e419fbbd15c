"""Writing the audit note a request left (`api.access.AuditNote`) once its status is
known; `api.middleware` calls `write_audit` after the response is sent."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Scope

from core import audit

if TYPE_CHECKING:
    from api.access import AuditNote

log = logging.getLogger(__name__)


def write_audit(scope: Scope, note: AuditNote, status: int, request_id: str) -> None:
    """One audit row; a catalog that cannot take it is logged, never raised: the
    response is gone already."""
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if runtime is None:
        return
    try:
        with runtime.db.session() as session:
            audit.record(
                session=session,
                action=note.action,
                outcome=audit.outcome_of(status, note.denied),
                key_id=note.key_id,
                kb_id=note.kb_id,
                target=note.target,
                request_id=request_id,
                status=status,
                method=scope.get("method"),
                path=scope.get("path"),
                detail=note.detail,
            )
    except Exception as exc:  # noqa: BLE001 - the request is answered; keep serving
        log.error("audit event %s could not be written: %s", note.action, exc, exc_info=exc)
