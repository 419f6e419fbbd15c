"""`ragops worker`: a Celery worker process built on one Runtime (models load once).

See `core.celery_app` for the delivery guarantees and `core.dispatch` for how jobs are
announced and re-sent.
"""

from __future__ import annotations

import logging
import os
import threading

from prometheus_client import start_http_server

from api.runtime import Runtime
from core.celery_app import make_celery, register_tasks
from core.config import Settings
from core.dispatch import redispatch_forever

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, concurrency: int = 1, log_level: str = "info") -> None:
    """Load models once, then consume jobs until SIGTERM/SIGINT (warm shutdown: the job
    in hand finishes first). Concurrency above 1 runs jobs in threads sharing the models;
    use one process per GPU."""
    rt = Runtime(settings)
    stop = threading.Event()
    try:
        rt.start(workers=False)
        rt.workers.start_heartbeat()
        redispatch_forever(rt.jobs, every_seconds=settings.celery_redispatch_seconds, stop=stop)
        if settings.worker_metrics_port:
            # This process's job, stage and embedding metrics (the API serves the catalog's).
            start_http_server(settings.worker_metrics_port)
        app = make_celery(settings)
        # Keep the JSON/text logging `ragops worker` set up (Celery would replace it).
        app.conf.worker_hijack_root_logger = False
        register_tasks(app, rt.workers)
        log.info("worker %s consuming queue %r", rt.workers.owner_prefix, settings.celery_queue)
        app.worker_main(
            [
                "worker",
                f"--pool={'solo' if concurrency == 1 else 'threads'}",
                f"--concurrency={concurrency}",
                f"--loglevel={log_level.upper()}",
                f"--queues={settings.celery_queue}",
                f"--hostname=ragops-{os.getpid()}@%h",
                # No broadcast chatter: tasks are never revoked, rows are the state.
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        stop.set()
        rt.close()
