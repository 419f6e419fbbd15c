"""The long-running roles and their health check: `ragops serve`, `worker`, `scheduler`
and `check`."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from kombu import Connection
from pydantic import ValidationError
from sqlalchemy import text

from api.app import create_app
from api.cli.helpers import console, err, runtime, settings
from api.worker import run_worker
from core.db import Database
from core.logs import configure_logging
from core.memory import limit_malloc_arenas
from eval.scheduler import SchedulerService
from index.qdrant_index import close_client, make_client

LOG_LEVEL_HELP = "debug, info, warning or error"


def _configure_logging(log_level: str) -> None:
    """JSON lines or text as RAGOPS_LOG_FORMAT says (README "Observability")."""
    configure_logging(log_level, settings().log_style)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help=LOG_LEVEL_HELP)] = "info",
) -> None:
    """Start the HTTP API (and its in-process ingestion workers).

    Example: ragops serve --port 8000
    """
    # Only `serve` needs the ASGI server: keep it out of every other command's start-up.
    import uvicorn

    _configure_logging(log_level)
    deployment = settings()
    limit_malloc_arenas(deployment.malloc_arenas)
    # Presidio logs one line per recognizer (and warns about languages we don't load).
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    # log_config=None keeps the logging set up above (uvicorn's own would replace it);
    # the app writes one access line per request, with its request id, instead of uvicorn.
    uvicorn.run(
        create_app(deployment),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
    )


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="Jobs run at once (threads sharing the models)")
    ] = 1,
    log_level: Annotated[str, typer.Option(help=LOG_LEVEL_HELP)] = "info",
) -> None:
    """Run a Celery worker: load the models once, then run jobs sent through the broker.

    Needs RAGOPS_CELERY_BROKER_URL (redis://... or amqp://...). Run one process per GPU;
    give the API RAGOPS_WORKERS=0 so only these processes ingest.

    Example: RAGOPS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 ragops worker --concurrency 2
    """
    try:
        worker_settings = settings()
    except ValidationError as exc:
        err.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    if not worker_settings.celery_broker_url:
        err.print(
            "[red]error:[/red] RAGOPS_CELERY_BROKER_URL is not set; set "
            "RAGOPS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (or amqp://...) or run "
            "`ragops serve`, which has in-process workers"
        )
        raise typer.Exit(2)
    _configure_logging(log_level)
    limit_malloc_arenas(worker_settings.malloc_arenas)
    run_worker(worker_settings, concurrency=concurrency, log_level=log_level)


def scheduler(
    log_level: Annotated[str, typer.Option(help=LOG_LEVEL_HELP)] = "info",
) -> None:
    """Run the periodic jobs (GC of retired versions, reconciliation, Celery re-dispatch).

    Run one or several: a lease in the catalog makes exactly one act at a time.

    Example: ragops scheduler
    """
    _configure_logging(log_level)
    # Its jobs only queue work and move catalog rows: no model is loaded here.
    with runtime(models=False) as rt:
        service = SchedulerService(rt)
        sched = service.build(blocking=True)
        every = ", ".join(f"{k} every {v:g}s" for k, v in service.intervals.items())
        console.print(f"scheduler started: {every}")
        try:
            sched.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            service.lease.release()


def check() -> None:
    """Check that this deployment's services answer: catalog, and when configured the
    Celery broker and the Qdrant server. Exit 1 names what is down (for health checks).

    Example: ragops check
    """
    deployment = settings()
    problems: list[str] = []
    db = Database(deployment.catalog_url)
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash
        problems.append(f"catalog: {exc.__class__.__name__}: {exc}")
    finally:
        db.dispose()
    if deployment.celery_broker_url:
        try:
            with Connection(deployment.celery_broker_url, connect_timeout=5) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"broker: {exc.__class__.__name__}: {exc}")
    if deployment.qdrant_url:
        try:
            client = make_client(
                url=deployment.qdrant_url, api_key=deployment.qdrant_api_key or None
            )
            try:
                client.get_collections()
            finally:
                close_client(client)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"qdrant: {exc.__class__.__name__}: {exc}")
    for problem in problems:
        err.print(f"[red]down[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("ok")
