"""The FastAPI application: `create_app()` wires settings → runtime → routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from api import errors
from api.deps import require_key
from api.routes import (
    answers,
    dify,
    documents,
    evals,
    health,
    kbs,
    openai_compat,
    prompts,
    retrieve,
    versions,
)
from core.config import Settings, get_settings
from core.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await run_in_threadpool(runtime.start)
        log.info(
            "ragops ready (data dir %s, catalog %s)",
            settings.data_dir,
            runtime.db.engine.url.render_as_string(hide_password=True),
        )
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="ragops",
        version="0.1.0",
        lifespan=lifespan,
        description="Versioned RAG indexes with measured answer quality.",
    )
    errors.install(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
    v1.include_router(kbs.router)
    v1.include_router(documents.router)
    v1.include_router(documents.status_router)
    v1.include_router(retrieve.router)
    v1.include_router(retrieve.multi_router)
    v1.include_router(versions.router)
    v1.include_router(answers.router)
    v1.include_router(prompts.router)
    v1.include_router(evals.router)
    app.include_router(v1)
    # Façades with their own auth and error shapes (OpenAI's, Dify's).
    app.include_router(openai_compat.router)
    app.include_router(dify.router)
    return app
