"""The composition root: one object that builds and owns everything a process (API
server, CLI command, Celery worker) uses: settings, the catalog, the blob store, the job
queue and its workers, the index store, and the heavy components (models, parsers,
clients; see `api.components`).

It satisfies every layer's services protocol (`core.services.CoreServices` up to
`eval.services.EvalServices`), so domain code never imports it.

Example::

    rt = Runtime(settings)
    rt.start(workers=False, models=False)   # catalog only: list versions, promote, ...
    try:
        ...
    finally:
        rt.close()

A server opens its port first and warms up behind it (see `api.app`)::

    rt.db.migrate()                 # fast; uploads can be stored and queued from here on
    rt.warm_up_in_background()      # models, then workers; `rt.readiness()` says where it is
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from api.components import Components
from core.access import KeyRing
from core.blobs import blob_store
from core.catalog.embedding_cache import CatalogEmbeddingCache
from core.config import Settings, apply_offline_defaults
from core.db import Database
from core.dispatch import make_dispatcher
from core.errors import Unavailable
from core.jobs import JobQueue, WorkerPool
from core.threads import limit_blas_threads
from eval.jobs import register_handlers as register_eval_handlers
from index.store import IndexStore
from ingest.archive import ArchiveLimits
from ingest.base import Parser
from ingest.config import RedactionConfig
from ingest.embed import Embedder
from ingest.redact import PresidioRedactor
from ingest.worker import register_handlers as register_ingest_handlers
from retrieval.bm25 import Bm25Store
from retrieval.generators import Generator
from retrieval.rerank import Reranker

log = logging.getLogger(__name__)

# How long a request that needs a model still being loaded by the background warm-up
# waits for it before answering 503 (with Retry-After): long enough to ride out the last
# seconds of a warm-up, well under common client timeouts (30 s and up).
WARM_UP_WAIT_SECONDS = 20.0
# How long `close()` waits for a warm-up step in progress: the parser's processes start in
# seconds; a slow model load is abandoned to the exiting process instead.
CLOSE_WAIT_SECONDS = 15.0

# Warm-up steps, in order, as `/readyz` names them.
EMBEDDING_MODEL, PARSER, REDACTOR, WORKERS = "embedding model", "parser", "redactor", "workers"


class WarmingUp(Unavailable):
    """A request needs a model the background warm-up is still loading: a 503 whose
    Retry-After is `retry_after` seconds (see `api.errors`); `GET /readyz` says what is
    still warming."""

    retry_after = 5


@dataclass(frozen=True)
class Readiness:
    """Where warm-up stands: `warming` lists the steps not done yet (in order), `since_s`
    the seconds since warm-up began (until now, or until it ended; None when no warm-up
    ran), `error` why it stopped, if it failed."""

    ready: bool
    warming: tuple[str, ...]
    since_s: float | None
    error: str | None


class Runtime:
    """Cheap to construct; `start()` migrates the catalog, loads models, starts workers
    (`warm_up()` is the last two, `warm_up_in_background()` the same in a thread).

    `components` shares already-loaded models with other runtimes in the process; by
    default the runtime builds its own and closes them in `close()`.
    """

    def __init__(self, settings: Settings, *, components: Components | None = None) -> None:
        apply_offline_defaults()
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._owns_components = components is None
        self.components = components if components is not None else Components()
        self.db = Database(settings.catalog_url)
        self.keys = KeyRing(self.db, settings.admin_key)
        self.blobs = blob_store(settings)  # S3 for RAGOPS_BLOB_URL, else data_dir/blobs
        self.jobs = JobQueue(
            self.db,
            lease_seconds=settings.job_lease_seconds,
            backoff_seconds=settings.job_backoff_seconds,
            max_attempts=settings.job_max_attempts,
        )
        # Celery mode: committed jobs are also announced to `ragops worker` processes.
        self.jobs.dispatcher = make_dispatcher(settings)
        self.indexes = IndexStore(settings.index_dir, self.db, qdrant=self.qdrant_client)
        self.embedding_cache = CatalogEmbeddingCache(self.db)
        # BM25 per index version for hybrid retrieval, rebuilt when a version's generation moves.
        self.bm25 = Bm25Store(self.db, background=settings.bm25_background_rebuild)
        self.workers = WorkerPool(
            self.jobs, threads=settings.workers, poll_seconds=settings.job_poll_seconds
        )
        self.ready = False
        # Warm-up progress, guarded by `_warm`: steps still to do, when it began, why it
        # failed; requests for a component being warmed wait on it (see `_await_step`).
        self._warm = threading.Condition()
        self._warming: list[str] = []
        self._warm_started: float | None = None
        self._warm_ended: float | None = None
        self._warm_error: str | None = None
        self._warm_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._step_lock = threading.Lock()  # held while a step runs; close() waits for it
        register_ingest_handlers(self)
        register_eval_handlers(self)

    # -- the heavy components, configured by this runtime's settings -------------------

    # While a background warm-up loads a component, a request for it waits (bounded, see
    # `_await_step`) instead of loading it a second time or queueing on its lock.

    def embedder(self, ref: str | None = None) -> Embedder:
        if ref in (None, self.settings.embedding_model):
            self._await_step(EMBEDDING_MODEL)
        return self.components.embedder(self.settings, ref)

    def redactor(self, policy: RedactionConfig | None = None) -> PresidioRedactor:
        self._await_step(REDACTOR)
        return self.components.redactor(self.settings, policy)

    def parser(self) -> Parser:
        self._await_step(PARSER)
        return self.components.parser(self.settings)

    def reranker(self, ref: str) -> Reranker:
        return self.components.reranker(ref)

    def generator(self, name: str, *, embedding_model: str | None = None) -> Generator:
        if name == "extractive" and embedding_model in (None, self.settings.embedding_model):
            self._await_step(EMBEDDING_MODEL)
        return self.components.generator(self.settings, name, embedding_model=embedding_model)

    def qdrant_client(self) -> object:
        return self.components.qdrant_client(self.settings)

    def archive_limits(self) -> ArchiveLimits:
        s = self.settings
        return ArchiveLimits(
            max_ratio=s.archive_max_ratio,
            max_total_bytes=s.archive_max_total_bytes,
            max_members=s.archive_max_members,
            max_depth=s.archive_max_depth,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, workers: bool = True, warm_ingest: bool = True, models: bool = True) -> None:
        """Migrate, load models, start workers. `warm_ingest=False` skips loading the
        parser and redactor (a query-only process needs just the embedding model);
        `models=False` only migrates the catalog (commands that read or write rows and
        load nothing: listing versions, promoting, the registry)."""
        self.db.migrate()
        self.warm_up(workers=workers, warm_ingest=warm_ingest, models=models)

    def warm_up(
        self, *, workers: bool = True, warm_ingest: bool = True, models: bool = True
    ) -> None:
        """Load the models, then start the workers (so queued jobs resume only once they
        can run), then mark the runtime ready: `start()` after the migration, same flags.
        Records progress for `readiness()`; a failing step is recorded, then re-raised.
        Stops between steps once `close()` has begun."""
        # Steps in one stage run side by side: the parser's forkserver is a child process
        # that imports unstructured and spaCy on its own core while this one loads the
        # embedding model (ready in 16 s instead of 31 s on 2 cores). The redactor loads in this
        # process (the GIL: nothing to gain beside the model), the workers last.
        stages: list[list[tuple[str, Callable[[], None]]]] = []
        if models:
            # Straight from the components: the runtime's getters wait for these steps.
            c, settings = self.components, self.settings
            first = [(EMBEDDING_MODEL, lambda: c.embedder(settings).warm_up())]
            stages.append(first)
            if warm_ingest:
                parser = (PARSER, lambda: c.parser(settings).warm_up())
                # In-process parsing imports in this process: one after the other.
                if self.settings.parser_isolation:
                    first.append(parser)
                else:
                    stages.append([parser])
            if warm_ingest and self.settings.redaction_enabled:
                stages.append([(REDACTOR, lambda: c.redactor(settings).warm_up())])
        if workers:
            stages.append([(WORKERS, self._start_workers)])
        with self._warm:
            self._warming = [name for stage in stages for name, _ in stage]
            if threading.current_thread() is not self._warm_thread:
                self._warm_started = time.monotonic()
            self._warm_ended = self._warm_error = None
        for stage in stages:
            with self._step_lock:
                if self._closing.is_set():
                    names = ", ".join(name for name, _ in stage)
                    log.info("warm-up stopped before the %s: shutting down", names)
                    return
                failure = _run_side_by_side(stage, self._step_done)
                if failure is not None:
                    name, exc = failure
                    with self._warm:
                        self._warm_error = f"{name}: {exc.__class__.__name__}: {exc}"
                        self._warm_ended = time.monotonic()
                        self._warm.notify_all()
                    raise exc
        with self._warm:
            self._warm_ended = time.monotonic()
            self.ready = True

    def _step_done(self, name: str, seconds: float) -> None:
        log.info("warm-up: %s in %.1fs", name, seconds)
        with self._warm:
            self._warming.remove(name)
            self._warm.notify_all()

    def _start_workers(self) -> None:
        # After the models: the BLAS libraries they load are capped too (core.threads).
        limit_blas_threads(self.settings.blas_threads)
        self.workers.start()

    def warm_up_in_background(
        self, *, workers: bool = True, warm_ingest: bool = True, models: bool = True
    ) -> threading.Thread:
        """`warm_up()` in a daemon thread. A failure is logged and reported by
        `readiness()` (so `/readyz`), never raised; `close()` waits at most
        CLOSE_WAIT_SECONDS for a step in progress."""

        def run() -> None:
            try:
                self.warm_up(workers=workers, warm_ingest=warm_ingest, models=models)
            except Exception:  # noqa: BLE001 - recorded for /readyz; the thread just ends
                if self._closing.is_set():
                    log.info("warm-up stopped: shutting down")
                else:
                    log.exception("warm-up failed; GET /readyz reports: %s", self._warm_error)
                return
            if self.ready:
                freeze_heap()
                log.info("ragops ready: warmed up in %.1fs", self.readiness().since_s)

        with self._warm:  # before the thread runs, so `readiness()` shows no idle gap
            self._warm_started = time.monotonic()
        thread = threading.Thread(target=run, name="ragops-warm-up", daemon=True)
        self._warm_thread = thread
        thread.start()
        return thread

    def readiness(self) -> Readiness:
        with self._warm:
            started, ended = self._warm_started, self._warm_ended
            since = None if started is None else (ended or time.monotonic()) - started
            return Readiness(
                ready=self.ready,
                warming=tuple(self._warming),
                since_s=None if since is None else round(since, 1),
                error=self._warm_error,
            )

    def _await_step(self, step: str) -> None:
        """While a background warm-up has `step` still to do, wait for it up to
        WARM_UP_WAIT_SECONDS, then raise WarmingUp. No wait after a failure (the caller's
        own load then reports it) or on the warm-up thread itself."""
        thread = self._warm_thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return
        deadline = time.monotonic() + WARM_UP_WAIT_SECONDS
        with self._warm:
            while step in self._warming and self._warm_error is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._closing.is_set():
                    since = time.monotonic() - (self._warm_started or time.monotonic())
                    raise WarmingUp(
                        f"the server is still warming up ({', '.join(self._warming)}; "
                        f"{since:.0f}s so far); retry shortly: GET /readyz says when ready"
                    )
                self._warm.wait(min(left, 1.0))

    def close(self) -> None:
        self._closing.set()
        self.ready = False
        # A warm-up step in progress finishes first (parser processes started under a
        # close would outlive it), unless it is a long model load.
        stepped = self._step_lock.acquire(timeout=CLOSE_WAIT_SECONDS)
        if not stepped:
            log.warning("closing while a warm-up step is still running: %s", self._warming)
        try:
            self.workers.stop()
            if self.jobs.dispatcher is not None:
                self.jobs.dispatcher.close()
            if self._owns_components:
                self.components.close()
            self.db.dispose()
        finally:
            if stepped:
                self._step_lock.release()


def _run_side_by_side(
    steps: list[tuple[str, Callable[[], None]]], done: Callable[[str, float], None]
) -> tuple[str, Exception] | None:
    """Run the steps at once (the first in this thread), calling `done(name, seconds)` as
    each ends; the first failure (name, exception), or None. Waits for all of them."""
    failures: list[tuple[str, Exception]] = []

    def run(name: str, step: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            failures.append((name, exc))
            return
        done(name, time.perf_counter() - t0)

    others = [
        threading.Thread(target=run, args=step, name=f"ragops-warm-up-{step[0]}", daemon=True)
        for step in steps[1:]
    ]
    for thread in others:
        thread.start()
    run(*steps[0])
    for thread in others:
        thread.join()
    return failures[0] if failures else None


def freeze_heap() -> None:
    """Move everything loaded so far (models, tokenizers, libraries: millions of objects)
    out of the garbage collector's reach. Otherwise each full collection walks all of
    them, holding the GIL for a few hundred milliseconds, and every request waits,
    however few objects it allocated (seen as 300-450 ms stalls under load)."""
    gc.collect()
    gc.freeze()


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (a FastAPI dependency; async: no thread hop for an attribute)."""
    return request.app.state.runtime
