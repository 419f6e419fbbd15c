"""The template of the route a request matched (`/v1/kbs/{kb}/retrieve`), prefix
included: the label of HTTP metrics and the key of the access policy."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from typing import Any

from starlette.types import Scope

UNMATCHED = "<unmatched>"

_ROUTE_TABLES: weakref.WeakKeyDictionary[Any, list[tuple[re.Pattern[str], str]]] = (
    weakref.WeakKeyDictionary()
)


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


def prepare(app: Any) -> None:
    """Build the app's route table now, with FastAPI's per-router route contexts, instead
    of at the first request answered before routing (the first refusal under overload:
    ~100 routes, a 100-300 ms stall of the event loop while requests queue behind it)."""
    _ROUTE_TABLES[app] = _route_table(app)


def route_contexts(app: Any) -> Iterator[Any]:
    """Every route of the app with its full template (`path_format`, `path_regex`,
    `methods`): FastAPI (0.165) keeps an included router as one entry of `app.routes`
    and its routes, prefix included, as that entry's contexts."""
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def _route_table(app: Any) -> list[tuple[re.Pattern[str], str]]:
    table = []
    for c in route_contexts(app):
        regex, fmt = getattr(c, "path_regex", None), getattr(c, "path_format", None)
        if regex is not None and fmt:
            table.append((regex, fmt))
    return table
