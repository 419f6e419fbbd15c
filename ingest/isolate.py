"""The parse stage in child processes with a wall-clock timeout and a memory limit.

Parsers are C and Python code fed hostile bytes: a crafted file can make them run for
hours, allocate gigabytes or crash. `IsolatedParser` runs `UnstructuredParser.parse` in
a small pool of warm worker processes so that such a file fails alone, with a reason,
and the service stays up.

How it stays fast: a multiprocessing *forkserver* imports unstructured and loads spaCy
once (`ingest._parse_preload`); each worker is a fork of it, ready in tens of
milliseconds, and serves many documents. A worker that crashed, timed out or hit its
memory limit is killed and replaced by a new fork. The parent never imports
unstructured, which also keeps ~1 GB of parser state out of the API process.

Memory: each worker sets `RLIMIT_AS` to its warm size plus `memory_limit_mb` (a warm
worker already maps ~2 GB of libraries and models), so the limit is what one document
may allocate. Python turns an allocation over it into `MemoryError`; C code may crash
instead, which is reported as a crash.

Example::

    parser = IsolatedParser(timeout_s=60, memory_limit_mb=512, processes=2)
    parser.warm_up()  # starts the forkserver and the workers (~8 s, once)
    pieces = parser.parse(data, media_type="application/pdf", filename="a.pdf")
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from core.errors import RagopsError, StageFailed
from core.types import Piece
from ingest.parse import UnstructuredParser

logger = logging.getLogger(__name__)

PRELOAD_MODULE = "ingest._parse_preload"
DEFAULT_PARSE = "ingest._parse_preload:parse"


class IsolatedParser:
    """Same contract as `UnstructuredParser` (name, config, `parse`, `warm_up`), with each
    document parsed in a worker process.

    Raises, besides what `UnstructuredParser.parse` raises, `StageFailed("parse", ...,
    permanent=True)` with reason "parsing took longer than 60 s", "parser exceeded the
    512 MiB memory limit" or "parser crashed (signal 11)"; the worker is then replaced
    and the next document parses normally.

    Knobs: `timeout_s` wall-clock seconds per document; `memory_limit_mb` what one
    document may allocate; `processes` concurrent parses (callers beyond it wait);
    `max_tasks` documents per worker before it is recycled (bounds slow leaks);
    `parse_function` is a "module:function" with `UnstructuredParser.parse`'s signature
    to run instead of the default (tests use it to simulate a crashing parser).
    """

    name = "parse"

    def __init__(
        self,
        *,
        timeout_s: float = 60.0,
        memory_limit_mb: int = 512,
        processes: int = 1,
        max_tasks: int = 500,
        strategy: str = "fast",
        parse_function: str = DEFAULT_PARSE,
    ) -> None:

        if timeout_s <= 0 or memory_limit_mb <= 0 or processes < 1 or max_tasks < 1:
            raise ValueError(
                "IsolatedParser needs timeout_s > 0, memory_limit_mb > 0, processes >= 1 "
                f"and max_tasks >= 1; got {timeout_s}, {memory_limit_mb}, {processes}, "
                f"{max_tasks}"
            )
        self._config = UnstructuredParser(strategy=strategy).config
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.processes = processes
        self.max_tasks = max_tasks
        self._parse_function = parse_function
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(processes):
            self._idle.put(None)  # a slot; the worker starts on first use
        self._context: Any = None
        self._lock = threading.Lock()

    @property
    def config(self) -> dict[str, Any]:
        # Isolation does not change the output, so the cache key stays the parser's.
        return dict(self._config)

    def warm_up(self) -> None:
        """Start the forkserver (imports and models, several seconds) and every worker."""
        slots = [self._idle.get() for _ in range(self.processes)]
        try:
            slots = [slot if slot is not None else self._start() for slot in slots]
        finally:
            for slot in slots:
                self._idle.put(slot)

    def parse(self, data: bytes, *, media_type: str, filename: str) -> list[Piece]:
        """Return the document's text elements in reading order, parsed in a worker."""
        worker = self._idle.get()
        try:
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    worker.kill()
                worker = self._start()
            result = self._run(worker, data, media_type, filename)
            if not worker.process.is_alive() or worker.tasks >= self.max_tasks:
                worker.stop()
                worker = None
            return result
        except BaseException:
            if worker is not None and not worker.process.is_alive():
                worker = None
            raise
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker (idle ones at once; call when no parse is running)."""
        for _ in range(self.processes):
            worker = self._idle.get()
            if worker is not None:
                worker.stop()
        for _ in range(self.processes):
            self._idle.put(None)

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            while True:
                worker = self._idle.get_nowait()
                if worker is not None:
                    worker.kill()
        except Exception:  # noqa: BLE001
            pass

    # -- internals ------------------------------------------------------------------

    def _start(self) -> _Worker:
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                # Applies when this call starts the forkserver; a worker forked from a
                # server without the preload warms itself up (slower, same result).
                context.set_forkserver_preload([PRELOAD_MODULE])
                self._context = context
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(theirs, self._parse_function, self.memory_limit_mb),
            name="ragops-parser",
            daemon=True,
        )
        started = time.perf_counter()
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        # The worker says "ready" once it is warm and limited.
        if not ours.poll(max(120.0, self.timeout_s)):
            worker.kill()
            raise StageFailed("parse", "parser worker did not start within 120 s", permanent=False)
        try:
            ours.recv()
        except EOFError:
            code = worker.kill()
            raise StageFailed(
                "parse", f"parser worker died while starting (exit code {code})", permanent=False
            ) from None
        logger.info(
            "parser worker %s ready in %.0f ms", process.pid, (time.perf_counter() - started) * 1e3
        )
        return worker

    def _run(self, worker: _Worker, data: bytes, media_type: str, filename: str) -> list[Piece]:
        worker.tasks += 1
        try:
            worker.conn.send((data, media_type, filename))
        except (BrokenPipeError, ConnectionError, OSError):
            code = worker.kill()
            raise self._died(code, filename) from None
        if not worker.conn.poll(self.timeout_s):
            worker.kill()
            raise StageFailed(
                "parse", f"parsing took longer than {self.timeout_s:g} s", document=filename
            )
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            code = worker.kill()
            raise self._died(code, filename) from None
        if kind == "ok":
            return value
        if kind == "memory":
            worker.kill()  # state after a MemoryError is not to be trusted
            raise self._memory(filename)
        if kind == "error":
            raise value
        raise StageFailed("parse", f"parser failed ({value})", document=filename)

    def _memory(self, filename: str) -> StageFailed:
        return StageFailed(
            "parse",
            f"parser exceeded the {self.memory_limit_mb} MiB memory limit",
            document=filename,
        )

    def _died(self, code: int | None, filename: str) -> StageFailed:
        if code is not None and code < 0:
            if -code == signal.SIGKILL:  # not ours: the kernel's OOM killer, most likely
                return self._memory(filename)
            return StageFailed("parse", f"parser crashed (signal {-code})", document=filename)
        return StageFailed(
            "parse", f"parser exited unexpectedly (exit code {code})", document=filename
        )


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.tasks = 0

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(2)
        self.kill()

    def kill(self) -> int | None:
        """Kill (if still running), reap, and return the exit code."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()
        return self.process.exitcode


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _resolve(spec: str) -> Callable[..., list[Piece]]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def _serve(conn: Connection, parse_function: str, memory_limit_mb: int) -> None:
    """Worker loop: warm up, limit memory, then parse until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    parse = _resolve(parse_function)
    preload = importlib.import_module(PRELOAD_MODULE)
    preload.warm_up()  # a no-op when the forkserver preloaded it
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = _address_space_bytes() + memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        data, media_type, filename = message
        try:
            reply: tuple[str, Any] = ("ok", parse(data, media_type=media_type, filename=filename))
        except MemoryError:
            reply = ("memory", None)
        except RagopsError as exc:
            exc.__cause__ = exc.__context__ = None  # tracebacks of the cause don't pickle
            exc.__traceback__ = None
            reply = ("error", exc)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, worker lives on
            reply = ("crash", f"{type(exc).__name__}: {exc}")
        del data
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))
        if reply[0] == "memory":
            return
