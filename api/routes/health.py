from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(rt: RuntimeDep) -> JSONResponse:
    """Ready to serve: catalog reachable, models loaded, workers running."""
    checks: dict[str, bool] = {"models_loaded": rt.ready, "workers": rt.workers.alive}
    try:
        with rt.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["catalog"] = True
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["catalog"] = False
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503
    )
