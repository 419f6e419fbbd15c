"""Overload protection: what the API refuses, quickly, instead of queueing forever.

Every request outside the probes falls in one route class (`classify`): `retrieve`
(/v1/kbs/{kb}/retrieve, /v1/retrieve, Dify's /retrieval), `answer` (/v1/kbs/{kb}/answer,
OpenAI's /v1/chat/completions), `upload` (POST /v1/kbs/{kb}/documents) or `admin`
(everything else). Per class, in this order:

1. **Rate limit per key** (`limits`, moving window): a caller (its bearer key, else its
   address) over `RAGOPS_RATE_LIMIT_<CLASS>` gets 429 `rate_limited` with Retry-After
   (seconds until the window has room). A request is counted once it has a place (step
   2): one refused for capacity spends none of its caller's quota. The counters live in
   memory, or in Redis when `RAGOPS_RATE_LIMIT_STORAGE` is a `redis://` URL, so replicas
   share them.
2. **Concurrency limit**: at most `RAGOPS_CONCURRENCY_<CLASS>` requests of the class run
   at once; up to as many again wait in line, each at most `RAGOPS_QUEUE_WAIT_SECONDS`
   and half a service time (`Gate`). A request that finds the line full, or waits too
   long, gets 503 `over_capacity` with Retry-After: 1. Serving more at once would not
   serve more per second on a CPU-bound path (embedding, search): it would only make
   every request slower.
3. **Timeout**: a request whose response has not started after
   `RAGOPS_TIMEOUT_<CLASS>_SECONDS` gets 503 `timeout`. The work itself cannot be
   interrupted (it runs in a thread), so its place is given back only when it ends: a
   stuck dependency fills the class, and later requests are refused fast.

Refusals use the error shape of the route's family: ragops' `{"error": {...}}`,
OpenAI's on /v1/chat/completions and /v1/models, Dify's on /retrieval. The middleware
sits inside `api.middleware.RequestContext`, so refusals carry the request id and are
counted in `ragops_http_overload_responses`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Gauge
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.routes.dify import dify_error
from api.routes.openai_compat import oai_error
from core.config import Settings

log = logging.getLogger(__name__)

ROUTE_CLASSES = ("retrieve", "answer", "upload", "admin")
CONSOLE_BRIDGE = "/console/api/"
# Answered at once, never limited: probes, scrapes and the API's own documents.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/v1/kbs/[^/]+/retrieve/?$"), "retrieve"),
    ("POST", re.compile(r"^/v1/retrieve/?$"), "retrieve"),
    ("POST", re.compile(r"^/retrieval/?$"), "retrieve"),
    ("POST", re.compile(r"^/v1/kbs/[^/]+/answer/?$"), "answer"),
    ("POST", re.compile(r"^/v1/chat/completions/?$"), "answer"),
    ("POST", re.compile(r"^/v1/kbs/[^/]+/documents/?$"), "upload"),
]

ACTIVE = Gauge("ragops_overload_active", "Requests being served, per route class", ["route_class"])
WAITING = Gauge(
    "ragops_overload_waiting", "Requests waiting for a place, per route class", ["route_class"]
)


def classify(method: str, path: str) -> str | None:
    """The route class of a request; None for exempt paths."""
    if path in EXEMPT or path.startswith("/docs/"):
        return None
    if path.startswith(CONSOLE_BRIDGE):
        # the console's calls go to the router as /v1/<path>, past this middleware:
        # they are limited here, in the class of the route they reach
        path = "/v1/" + path[len(CONSOLE_BRIDGE) :]
    for m, pattern, name in _PATTERNS:
        if method == m and pattern.match(path):
            return name
    return "admin"


@dataclass(frozen=True)
class ClassPolicy:
    name: str
    concurrency: int  # 0: unlimited
    queue: int
    wait_s: float
    timeout_s: float  # 0: none
    rates: tuple[RateLimitItem, ...]


def policies(settings: Settings) -> dict[str, ClassPolicy]:
    out = {}
    for name in ROUTE_CLASSES:
        concurrency = getattr(settings, f"concurrency_{name}")
        rate = getattr(settings, f"rate_limit_{name}").strip()
        out[name] = ClassPolicy(
            name=name,
            concurrency=concurrency,
            queue=concurrency,
            wait_s=settings.queue_wait_seconds,
            timeout_s=getattr(settings, f"timeout_{name}_seconds"),
            rates=tuple(parse_many(rate)) if rate else (),
        )
    return out


class Gate:
    """At most `limit` holders; up to `queue` more wait in arrival order. A released place
    goes straight to the longest waiter (no barging).

    A waiter waits at most `wait_s`, and at most WAIT_FACTOR service times (a moving
    average of how long holders held their place): whoever would wait longer is
    refused at once, so an admitted request's latency stays near 1.5 service times
    however long the line outside is."""

    # Weight of the newest service time in the moving average.
    ALPHA = 0.1
    # How many service times a request may wait for a place.
    WAIT_FACTOR = 0.5

    def __init__(self, name: str, limit: int, queue: int, wait_s: float) -> None:
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self.active = 0
        self.service_s: float | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._active_gauge = ACTIVE.labels(name)
        self._waiting_gauge = WAITING.labels(name)

    def max_wait(self) -> float:
        if self.service_s is None:
            return self.wait_s
        return min(self.wait_s, max(0.005, self.WAIT_FACTOR * self.service_s))

    async def acquire(self) -> bool:
        if self.active < self.limit and not self._waiters:
            self._take()
            return True
        if len(self._waiters) >= self.queue:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._waiting_gauge.inc()
        try:
            await asyncio.wait_for(waiter, self.max_wait())
            return True  # the place was handed over by `release`
        except TimeoutError:
            return False
        finally:
            self._waiting_gauge.dec()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, held_s: float | None = None) -> None:
        """Give the place back; `held_s`, how long it was held, feeds the average."""
        if held_s is not None:
            prev = self.service_s
            self.service_s = held_s if prev is None else prev + self.ALPHA * (held_s - prev)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place moves on; `active` is unchanged
                return
        self.active -= 1
        self._active_gauge.dec()

    def _take(self) -> None:
        self.active += 1
        self._active_gauge.inc()


def caller_key(scope: Scope) -> str:
    """Who is counted: the bearer key (hashed, never kept), else the client address."""
    auth = Headers(scope=scope).get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:16]
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def refusal(path: str, status: int, code: str, message: str, retry_after: int) -> Response:
    """The refusal in the error shape of the route's family, with Retry-After."""
    openai = path.startswith("/v1/chat/") or (
        path.startswith("/v1/models") and not path.startswith("/v1/models/registry")
    )
    if openai:
        response = oai_error(status, message, code)
    elif path.rstrip("/") == "/retrieval":
        response = dify_error(status, status, message)
    else:
        return errors.envelope(status, code, message, headers={"Retry-After": str(retry_after)})
    response.headers["Retry-After"] = str(retry_after)
    return response


def _storage_uri(uri: str) -> tuple[str, dict[str, str]]:
    if uri.startswith(("redis://", "rediss://")):
        return "async+" + uri, {"implementation": "redispy"}
    if uri.startswith("memory://"):
        return "async+memory://", {}
    return uri, {}


class OverloadGuard:
    """ASGI middleware applying `ClassPolicy` per request (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.policies = policies(settings)
        self.gates = {
            name: Gate(name, p.concurrency, p.queue, p.wait_s)
            for name, p in self.policies.items()
            if p.concurrency > 0
        }
        self._storage_uri = settings.rate_limit_storage
        self._limiter: MovingWindowRateLimiter | None = None

    def limiter(self) -> MovingWindowRateLimiter:
        if self._limiter is None:  # built in the event loop: async storages bind to it
            uri, options = _storage_uri(self._storage_uri)
            self._limiter = MovingWindowRateLimiter(storage_from_string(uri, **options))
        return self._limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        name = classify(scope.get("method", ""), path)
        if name is None:
            await self.app(scope, receive, send)
            return
        policy = self.policies[name]
        # The key's quota is looked at first (a caller over it waits for nothing) but
        # spent only once the request has a place: a request refused for capacity costs
        # its caller no quota, so a busy key is not starved by its own 503s.
        limited = await self._rate_limited(policy, scope, spend=False)
        if limited is None:
            gate = self.gates.get(name)
            if gate is not None and not await gate.acquire():
                message = (
                    f"the server is at capacity for {name} requests "
                    f"({gate.limit} running, {gate.queue} waiting); retry shortly"
                )
                await refusal(path, 503, "over_capacity", message, 1)(scope, receive, send)
                return
            limited = await self._rate_limited(policy, scope, spend=True)
            if limited is None:
                await self._serve(scope, receive, send, policy, gate)
                return
            if gate is not None:
                gate.release()  # lost the quota to a concurrent request meanwhile
        message = (
            f"rate limit for {name} requests ({limited[0]}) reached for this key; "
            f"retry after {limited[1]} s"
        )
        await refusal(path, 429, "rate_limited", message, limited[1])(scope, receive, send)

    async def _rate_limited(
        self, policy: ClassPolicy, scope: Scope, *, spend: bool
    ) -> tuple[str, int] | None:
        """The limit (and seconds until it has room) the caller is over, or None; with
        `spend`, a request within every limit is counted against them."""
        if not policy.rates:
            return None
        limiter = self.limiter()
        key = caller_key(scope)
        for item in policy.rates:
            allowed = await (limiter.hit if spend else limiter.test)(item, policy.name, key)
            if not allowed:
                stats = await limiter.get_window_stats(item, policy.name, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                return str(item), retry
        return None

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, policy: ClassPolicy, gate: Gate | None
    ) -> None:
        started = False
        timed_out = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        if gate is not None:
            t0 = time.perf_counter()
            task.add_done_callback(lambda _: gate.release(time.perf_counter() - t0))
        if policy.timeout_s > 0:
            try:
                done, _ = await asyncio.wait({task}, timeout=policy.timeout_s)
            except asyncio.CancelledError:
                task.cancel()  # the client went away
                raise
            if not done and not started:
                timed_out = True
                task.add_done_callback(_consume)
                task.cancel()  # a thread it waits on runs on; its place frees when it ends
                message = (
                    f"the request took longer than {policy.timeout_s:g} s "
                    f"(RAGOPS_TIMEOUT_{policy.name.upper()}_SECONDS) and was abandoned"
                )
                path = scope.get("path", "")
                await refusal(path, 503, "timeout", message, 1)(scope, receive, send)
                return
        await task


def _consume(task: asyncio.Future[None]) -> None:
    """Log how an abandoned request ended, once (asyncio would call it lost)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("a timed-out request failed later: %s: %s", type(exc).__name__, exc, exc_info=exc)
