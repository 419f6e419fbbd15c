"""`RequestContext`: the outermost of the app's own middleware. Per request it

- takes the caller's `X-Request-ID` (when short and made of safe characters, see
  `core.logs.accept_request_id`) or makes one, binds it to every log line of the request
  and of the jobs it queues (`core.logs`), and returns it in the `X-Request-ID` header
  and in error bodies (`api.errors`);
- counts the request in the HTTP metrics (`api.metrics`) by route template;
- writes one access line (`ragops.access`: method, path, route, status, duration_ms);
- answers an error nothing else handled with 500 `internal_error`, logging it once with
  its traceback (Starlette's ServerErrorMiddleware would log it through the server a
  second time and close the connection).

Middleware that answers on its own (concurrency limits, rate limits) belongs inside it,
so its 429/503 are counted and carry the request id: add it before this one
(`app.add_middleware` puts the latest addition outermost).

Example::

    app.add_middleware(RequestContext)
"""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.audit import write_audit
from api.metrics import IN_FLIGHT, observe
from core.logs import accept_request_id, bind

HEADER = "X-Request-ID"
access_log = logging.getLogger("ragops.access")
log = logging.getLogger(__name__)

# Probes and scrapes arrive every few seconds: their successful answers log at DEBUG.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get(HEADER))
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        IN_FLIGHT.inc()
        t0 = time.perf_counter()
        with bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # noqa: BLE001 - answered here, never re-raised
                if started:
                    # Too late for an error response: the client sees the connection close.
                    log.error(
                        "unhandled error after the response started: %s: %s",
                        exc.__class__.__name__,
                        exc,
                        exc_info=exc,
                    )
                else:
                    await errors.unhandled(exc)(scope, receive, send_with_id)
            except BaseException:
                if not started:
                    status = 499  # the client went away (nginx's "client closed request")
                raise
            finally:
                IN_FLIGHT.dec()
                seconds = time.perf_counter() - t0
                route = observe(scope, status, seconds)
                path = scope.get("path", "")
                quiet = path in _QUIET_PATHS and status < 400
                access_log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    "%s %s %s %.1fms",
                    scope.get("method", ""),
                    path,
                    status,
                    seconds * 1000,
                    extra={
                        "method": scope.get("method", ""),
                        "path": path,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
            audit = scope.get("state", {}).get("audit")
            if audit is not None:
                await run_in_threadpool(write_audit, scope, audit, status, request_id)
