"""The FastAPI application: `create_app()` wires settings → runtime → routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from api import console, errors, openapi, route_labels
from api.access import authorize
from api.components import Components
from api.metrics import router as metrics_router
from api.middleware import RequestContext
from api.overload import OverloadGuard
from api.routes import (
    ab_tests,
    answers,
    audit,
    dify,
    documents,
    erasure,
    evals,
    gates,
    health,
    jobs,
    kbs,
    keys,
    models,
    openai_compat,
    prompts,
    reports,
    retrieve,
    snapshots,
    versions,
)
from api.runtime import Runtime
from core.config import Settings, get_settings
from eval.scheduler import SchedulerService

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    components: Components | None = None,
    background_warm_up: bool | None = None,
) -> FastAPI:
    """`components` shares loaded models with other apps in the process (tests); by
    default the app's runtime builds and closes its own.

    Start-up migrates the catalog (a fraction of a second), then serves at once while
    models load and workers start in the background (`background_warm_up=True`, the
    default for an app that owns its components, as `ragops serve`'s does): `/healthz`
    answers from the first moment, `/readyz` says 503 and what is still warming until
    all is ready, uploads are stored and queued (workers pick them up after warm-up), and
    a request that needs a model still loading waits up to `WARM_UP_WAIT_SECONDS`, then
    answers 503 `unavailable` with Retry-After. An app given shared `components` warms
    up before serving unless asked otherwise: their models are usually loaded already,
    and its callers (tests, other apps in the process) expect a ready app."""
    settings = settings or get_settings()
    background = components is None if background_warm_up is None else background_warm_up

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, components=components)
        app.state.runtime = runtime
        await run_in_threadpool(runtime.db.migrate)
        if background:
            runtime.warm_up_in_background()
        else:
            await run_in_threadpool(runtime.warm_up)
        scheduler = None
        if settings.scheduler_embedded:
            scheduler = SchedulerService(runtime).build(blocking=False)
            scheduler.start()
        log.info(
            "ragops serving%s (data dir %s, catalog %s)",
            ", warming up in the background (GET /readyz)" if background else "",
            settings.data_dir,
            runtime.db.engine.url.render_as_string(hide_password=True),
        )
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="ragops",
        version="0.1.0",
        lifespan=lifespan,
        description="Versioned RAG indexes with measured answer quality.",
    )
    errors.install(app)
    openapi.install(app)
    # Request ids, HTTP metrics, access lines and the one log of an unhandled error.
    # Add middleware that answers by itself (limits) before this line: it then runs
    # inside, and its responses are counted and carry the request id.
    app.add_middleware(OverloadGuard, settings=settings)
    app.add_middleware(RequestContext)
    app.include_router(health.router)
    app.include_router(metrics_router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])
    v1.include_router(kbs.router)
    v1.include_router(documents.router)
    v1.include_router(documents.status_router)
    v1.include_router(retrieve.router)
    v1.include_router(retrieve.multi_router)
    v1.include_router(versions.router)
    v1.include_router(snapshots.router)
    v1.include_router(answers.router)
    v1.include_router(prompts.router)
    v1.include_router(evals.router)
    v1.include_router(reports.router)
    v1.include_router(models.router)
    v1.include_router(models.finetune_router)
    v1.include_router(ab_tests.router)
    v1.include_router(gates.router)
    v1.include_router(jobs.router)
    v1.include_router(gates.schedules_router)
    v1.include_router(keys.router)
    v1.include_router(audit.router)
    v1.include_router(erasure.router)
    app.include_router(v1)
    # Façades with their own auth and error shapes (OpenAI's, Dify's).
    app.include_router(openai_compat.router)
    app.include_router(dify.router)
    app.include_router(console.router)
    route_labels.prepare(app)
    return app
