"""Liveness and readiness probes.

`/healthz` answers 200 as soon as the port is open. `/readyz` answers 200 once models
are loaded, workers run, the catalog answers and can be written, the blob store can be
written (a probe file in the blob folder, or a probe object put and deleted in the
RAGOPS_BLOB_URL bucket) and the data directory has RAGOPS_MIN_FREE_DISK_MB free (only the
data directory: with S3 the blobs are not on this disk); before that, or when
any of these fails later, 503 with what is still warming (or why warm-up failed) and,
per failed check, the reason:

    {"status": "warming", "ready": false, "warming": ["parser", "redactor", "workers"],
     "since_s": 4.2, "error": null, "checks": {..., "catalog": null}, "reasons": {...}}

Both are `async` and read the runtime from the app, not through `RuntimeDep` (a sync
dependency): no threadpool hop, so a probe never queues behind requests that wait for
warm-up. The storage checks run in the threadpool, once warm-up has ended.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import insert, text

from api.runtime import Runtime, WarmingUp
from core.catalog.models import Lease, utcnow

router = APIRouter(tags=["health"])

# How long the catalog write probe waits for the write lock (SQLite) or a row lock
# (PostgreSQL): longer and the probe would outlast a load balancer's timeout.
WRITE_PROBE_TIMEOUT_S = 1.0
# Checks that touch storage, by name, in the order they appear in `checks`.
STORAGE_CHECKS = ("catalog", "catalog_writable", "blobs_writable")


class NotReady(Exception):
    """A check failed for a reason it states itself."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: models loaded, workers running, catalog reachable and writable,
    blob store writable, enough free disk."""
    rt: Runtime = request.app.state.runtime
    state = rt.readiness()
    reasons: dict[str, str] = {}
    checks: dict[str, bool | None] = {
        "models_loaded": state.ready,
        "workers": rt.workers.alive,
    }
    # Not asked (null) before warm-up ends: the answer is 503 anyway, and the checks
    # would wait for a thread behind requests that wait for warm-up.
    if state.ready:
        checks.update(await run_in_threadpool(_storage_checks, rt, reasons))
    else:
        checks.update(dict.fromkeys(STORAGE_CHECKS))
    checks["disk_space"] = _check(_disk_space, rt, "disk_space", reasons)
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
        "reasons": reasons,
        "warming": list(state.warming),
        "since_s": state.since_s,
        "error": state.error,
    }
    headers = {"Retry-After": str(WarmingUp.retry_after)} if status == "warming" else None
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


def _storage_checks(rt: Runtime, reasons: dict[str, str]) -> dict[str, bool | None]:
    """The checks that touch storage (blocking I/O: run in the threadpool)."""
    checks: dict[str, bool | None] = {"catalog": _check(_catalog_answers, rt, "catalog", reasons)}
    if checks["catalog"]:
        checks["catalog_writable"] = _check(_catalog_writable, rt, "catalog_writable", reasons)
    else:  # a catalog that does not answer cannot be written either: no second wait
        checks["catalog_writable"] = False
        reasons["catalog_writable"] = "the catalog does not answer"
    checks["blobs_writable"] = _check(_blobs_writable, rt, "blobs_writable", reasons)
    return checks


def _check(
    probe: Callable[[Runtime], None], rt: Runtime, name: str, reasons: dict[str, str]
) -> bool:
    """Run one probe: True, or False with its reason in `reasons[name]`."""
    try:
        probe(rt)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        if isinstance(exc, NotReady):
            reasons[name] = str(exc)
        else:  # a SQLAlchemy error: the database's own words, without the statement
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).strip().splitlines()[:1]
            reasons[name] = ": ".join([cause.__class__.__name__, *first])
        return False


def _catalog_answers(rt: Runtime) -> None:
    with rt.db.session() as s:
        s.execute(text("SELECT 1"))


def _catalog_writable(rt: Runtime) -> None:
    """Insert a row and roll it back: the catalog takes writes (not read-only, not
    locked for longer than WRITE_PROBE_TIMEOUT_S). Nothing is left behind."""
    probe = f"readyz-{uuid.uuid4().hex}"
    ms = int(WRITE_PROBE_TIMEOUT_S * 1000)
    with rt.db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            conn.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
            conn.commit()
        try:
            with conn.begin() as tx:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {2 * ms}")
                conn.execute(insert(Lease).values(name=probe, owner=probe, expires_at=utcnow()))
                tx.rollback()
        finally:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy)}")
                conn.commit()


def _blobs_writable(rt: Runtime) -> None:
    """A probe written and removed where blobs go: a file in the blob folder, or an object
    in the bucket (short timeouts, no retries; the reason names the bucket and the
    store's error code)."""
    rt.blobs.check_writable()


def _disk_space(rt: Runtime) -> None:
    """Free space on data_dir's file system is at least RAGOPS_MIN_FREE_DISK_MB. Only
    data_dir: the local blob folder is inside it, and blobs in S3 use no local disk."""
    need_mb = rt.settings.min_free_disk_mb
    if need_mb <= 0:
        return
    free_mb = shutil.disk_usage(rt.settings.data_dir).free // (1024 * 1024)
    if free_mb < need_mb:
        raise NotReady(
            f"{free_mb} MiB free on the data directory's file system, below "
            f"RAGOPS_MIN_FREE_DISK_MB ({need_mb}); free some space"
        )
