"""`GET /metrics` in the Prometheus text format, and the HTTP series the request
middleware (`api.middleware`) updates.

HTTP series are labelled by the matched route's template (`/v1/kbs/{kb}/retrieve`),
never the raw path, so no KB name or id becomes a label value; a path no route matches
is `<unmatched>` and an unknown method `OTHER`.

Access: like `/healthz` and `/readyz`, `/metrics` needs no API key, but without one
(when `RAGOPS_ADMIN_KEY` is set) it leaves out the per-KB gauges, which name knowledge
bases. A scraper that sends `Authorization: Bearer <key>` gets them too; a wrong key is
a 401. Serve the port only to the monitoring network either way.

Example::

    curl -s -H "Authorization: Bearer $RAGOPS_ADMIN_KEY" http://127.0.0.1:8000/metrics
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import Scope

from api.deps import require_key
from api.runtime import Runtime
from core.metrics import CatalogCollector

# Seconds; the long tail is uploads and answers from a local generator.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
# A probe's 503 reports a state (warming up), not a request refused for load.
PROBES = frozenset({"/healthz", "/readyz"})
# Per app: (path regex, template) of every route, for requests answered before routing.
_ROUTE_TABLES: weakref.WeakKeyDictionary[Any, list[tuple[re.Pattern[str], str]]] = (
    weakref.WeakKeyDictionary()
)

REQUEST_SECONDS = Histogram(
    "ragops_http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its response",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
IN_FLIGHT = Gauge("ragops_http_requests_in_flight", "Requests being served right now")
RESPONSES = Counter(
    "ragops_http_responses", "Responses by route and status code", ["method", "route", "status"]
)
OVERLOAD = Counter(
    "ragops_http_overload_responses",
    "Requests refused for load: 429 (rate limit, full queue) and 503 (unavailable, "
    "warming up, over capacity)",
    ["route", "status"],
)

router = APIRouter(tags=["metrics"])


def route_label(scope: Scope) -> str:
    """The template of the route that handled the request, prefix included."""
    # FastAPI (0.165) keeps the full template of a route in an included router in its
    # own scope entry; `scope["route"]` is then the route as declared, without prefix.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path_format", None)
    if isinstance(path, str) and path:
        return path
    # Answered before routing (a limit in a middleware, a body too large): match it now.
    app = scope.get("app")
    if app is None:
        return UNMATCHED
    table = _ROUTE_TABLES.get(app)
    if table is None:
        table = _ROUTE_TABLES[app] = _route_table(app)
    request_path = scope.get("path", "")
    return next((fmt for regex, fmt in table if regex.match(request_path)), UNMATCHED)


def _route_table(app: Any) -> list[tuple[re.Pattern[str], str]]:
    table = []
    for route in app.routes:
        contexts = (
            route.effective_route_contexts()
            if hasattr(route, "effective_route_contexts")
            else [route]
        )
        for c in contexts:
            regex, fmt = getattr(c, "path_regex", None), getattr(c, "path_format", None)
            if regex is not None and fmt:
                table.append((regex, fmt))
    return table


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def observe(scope: Scope, status: int, seconds: float) -> str:
    """Record one finished request; returns its route label."""
    route = route_label(scope)
    method = method_label(scope.get("method", ""))
    REQUEST_SECONDS.labels(method, route).observe(seconds)
    RESPONSES.labels(method, route, str(status)).inc()
    if status in (429, 503) and route not in PROBES:
        OVERLOAD.labels(route, str(status)).inc()
    return route


def _sees_kbs(request: Request, rt: Runtime) -> bool:
    """Per-KB gauges: for every caller when no admin key is set, else for a caller with
    the key. A caller that sends a wrong key gets 401, not a silently smaller answer."""
    if not rt.settings.admin_key:
        return True
    if not request.headers.get("authorization"):
        return False
    require_key(request, rt)  # raises 401
    return True


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: {"description": "An Authorization header with a wrong key"},
    },
)
def metrics(request: Request) -> Response:
    """This process's metrics and the catalog's gauges (see README "Observability")."""
    rt: Runtime = request.app.state.runtime
    per_kb = _sees_kbs(request, rt)
    catalog = CollectorRegistry(auto_describe=False)
    catalog.register(CatalogCollector(rt.db, kinds=rt.workers.handlers, per_kb=per_kb))
    body = generate_latest(REGISTRY) + generate_latest(catalog)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
