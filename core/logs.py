"""Log lines that say which request they belong to: a request id in a context variable,
a JSON formatter that adds it to every record, and the one logging set-up every process
(`ragops serve`, `worker`, `scheduler`) calls.

The API middleware (`api.middleware`) binds the id of each request; `JobQueue.submit`
copies it into the job's payload, and `WorkerPool` binds it again while that job runs, so
the worker's lines carry the id of the request that queued the work.

Example::

    configure_logging("info", "json")
    with bind(request_id="4bf92f3577b34da6"):
        log.info("stored %s", name)
    # {"timestamp": "2026-12-01T09:30:00.123Z", "level": "info", "logger": "api.routes",
    #  "message": "stored a.pdf", "request_id": "4bf92f3577b34da6"}
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

LogFormat = Literal["json", "text"]

# A caller's X-Request-ID is kept when it is this short and made of these characters
# (enough for UUIDs, W3C trace ids and most proxies' ids); anything else is replaced, so
# a header can never inject text or newlines into a log line.
REQUEST_ID_MAX_LENGTH = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{REQUEST_ID_MAX_LENGTH}}}")

# Fields bound to the current context (request_id, job_id): added to every log record.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "ragops_log_context", default=MappingProxyType({})
)

T = TypeVar("T")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The caller's id when it is safe to log and echo, else a new one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    return _context.get().get("request_id")


def context_fields() -> Mapping[str, Any]:
    return _context.get()


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` (None values are left out) to every record logged inside the block."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def run_bound(fields: Mapping[str, Any], fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` with `fields` bound: for work handed to a thread pool, which does not
    carry the submitting thread's context."""
    with bind(**fields):
        return fn(*args)


def utc_timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`: 2026-12-01T09:30:00.123Z."""
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Attributes every LogRecord has; anything else came in through `extra=` and is logged.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}  # uvicorn's ANSI-coloured copy of the message
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, `Z`), level, logger, message, the bound
    context (request_id, job_id), any `extra=` fields, and `exception` (the formatted
    traceback) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(context_fields())
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The development format, with the request id (when there is one) after the level."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = current_request_id()
        if request_id:
            head, sep, rest = text.partition(f" {record.name}: ")
            text = f"{head} [{request_id}]{sep}{rest}" if sep else f"[{request_id}] {text}"
        return text


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str, fmt: LogFormat) -> None:
    """One handler on the root logger, writing `fmt` lines to stderr; uvicorn's own
    loggers propagate to it (their access log is off: the API middleware writes one access
    line per request, with the request id)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
