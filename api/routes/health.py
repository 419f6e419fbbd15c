"""Liveness and readiness probes.

`/healthz` answers 200 as soon as the port is open. `/readyz` answers 200 once models
are loaded, workers run and the catalog answers; before that 503 with what is still
warming (or why warm-up failed):

    {"status": "warming", "ready": false, "warming": ["parser", "redactor", "workers"],
     "since_s": 4.2, "error": null, "checks": {..., "catalog": null}}

Both are `async` and read the runtime from the app, not through `RuntimeDep` (a sync
dependency): no threadpool hop, so a probe never queues behind requests that wait for
warm-up.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.runtime import Runtime, WarmingUp

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: catalog reachable, models loaded, workers running."""
    rt: Runtime = request.app.state.runtime
    state = rt.readiness()
    checks: dict[str, bool | None] = {
        "models_loaded": state.ready,
        "workers": rt.workers.alive,
        # Not asked (null) before warm-up ends: the answer is 503 anyway, and the query
        # would wait for a thread behind requests that wait for warm-up.
        "catalog": await run_in_threadpool(_catalog_answers, rt) if state.ready else None,
    }
    ok = all(checks.values())
    if ok:
        status = "ready"
    elif state.error:
        status = "failed"
    elif state.warming:
        status = "warming"
    else:
        status = "not_ready"
    body = {
        "status": status,
        "ready": ok,
        "checks": checks,
        "warming": list(state.warming),
        "since_s": state.since_s,
        "error": state.error,
    }
    headers = {"Retry-After": str(WarmingUp.retry_after)} if status == "warming" else None
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


def _catalog_answers(rt: Runtime) -> bool:
    try:
        with rt.db.session() as s:
            s.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
