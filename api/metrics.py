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

from api.access import principal_of
from api.route_labels import route_label
from api.runtime import Runtime
from core.access import Role
from core.metrics import CatalogCollector

# Seconds; the long tail is uploads and answers from a local generator.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A probe's 503 reports a state (warming up), not a request refused for load.
PROBES = frozenset({"/healthz", "/readyz"})
# Per app: (path regex, template) of every route, for requests answered before routing.
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
    if not request.headers.get("authorization") and not rt.keys.open_mode():
        return False
    principal = principal_of(request, rt)  # raises 401 for a wrong key
    return principal.all_kbs and principal.role.covers(Role.REVIEWER)


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
