"""A small loopback load generator: raw HTTP/1.1 over asyncio streams, keep-alive
connections, open loop (requests leave on a schedule whatever the server does, as
independent clients would) or closed loop (N clients, each sending when its last answer
came back).

It is cheap per request (no HTTP library parsing on the hot path), so on a 2-core machine
it leaves the CPU to the server being measured, and a latency is the time from writing a
request to reading the last byte of its answer.

    results = asyncio.run(open_loop("127.0.0.1", port, raw_request, rate=400, seconds=5))
    summarize(results)  # {"n": ..., "by_status": {...}, "p50_ms": ..., "p99_ms": ...}
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    status: int  # 0: no answer (connection refused or closed, or the deadline passed)
    seconds: float
    retry_after: str | None = None


def post_json(host: str, port: int, path: str, body: dict, headers: dict[str, str]) -> bytes:
    """The bytes of one keep-alive POST with a JSON body."""
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Pool:
    """Idle keep-alive connections to one server; a request takes one or opens one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def send(self, raw: bytes, timeout: float) -> Result:
        t0 = time.perf_counter()
        # An idle keep-alive connection the server closed meanwhile (uvicorn closes them
        # after 5 s) fails at once with nothing read: like HTTP clients do, send again
        # once on a new connection. A new connection that fails counts as no answer.
        for reuse in (bool(self.idle), False):
            try:
                if reuse:
                    reader, writer = self.idle.pop()
                else:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    self.opened += 1
                writer.write(raw)
                status, retry_after, keep = await asyncio.wait_for(_read_response(reader), timeout)
                break
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                stale = isinstance(exc, ConnectionError) or not exc.partial
                if reuse and stale:
                    writer.close()
                    continue
                return Result(0, time.perf_counter() - t0)
            except (OSError, TimeoutError, ValueError):
                return Result(0, time.perf_counter() - t0)
        else:
            return Result(0, time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        if keep:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return Result(status, seconds, retry_after)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str | None, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    keep = headers.get("connection", "").lower() != "close"
    return status, headers.get("retry-after"), keep


async def open_loop(
    host: str, port: int, raw: bytes, *, rate: float, seconds: float, timeout: float = 30.0
) -> list[Result]:
    """`rate` requests per second for `seconds`, each on time whether or not earlier ones
    were answered; waits for every answer (or `timeout` per request)."""
    pool = Pool(host, port)
    n = max(1, int(rate * seconds))
    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pool.send(raw, timeout)))
    results = await asyncio.gather(*tasks)
    pool.close()
    return list(results)


async def closed_loop(
    host: str,
    port: int,
    raw: bytes,
    *,
    clients: int,
    seconds: float,
    timeout: float = 30.0,
    served: int | None = 200,
) -> tuple[list[Result], float]:
    """`clients` clients sending back to back for `seconds`; the results and the achieved
    requests per second with status `served` (None: any). Refusals (a per-key rate limit
    a fast server crosses with one client) come back at once and would otherwise count
    as the rate the server sustains."""
    pool = Pool(host, port)
    results: list[Result] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            results.append(await pool.send(raw, timeout))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    pool.close()
    counted = [r for r in results if served is None or r.status == served]
    return results, len(counted) / elapsed


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run the load on uvloop where installed, with the generator's garbage collector
    off: the generator's own overhead is part of every latency it measures, and a full
    collection over a big test process (torch and the whole suite imported) holds it
    for hundreds of milliseconds, which would be counted against the server."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        return uvloop.run(coro)
    finally:
        gc.enable()
        gc.unfreeze()


async def loop_lag(stop: asyncio.Event, every: float = 0.01) -> float:
    """The worst lateness (seconds) of a `every`-second timer on this event loop until
    `stop`: how long the load generator itself stalled, so that a slow answer can be told
    apart from a slow client."""
    worst = 0.0
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        worst = max(worst, time.perf_counter() - t0 - every)
    return worst


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(results: list[Result], status: int | None = None) -> dict:
    """Counts by status and latency percentiles (ms) of the results with `status` (all
    when None)."""
    chosen = [r.seconds for r in results if status is None or r.status == status]
    out: dict = {"n": len(results), "by_status": dict(Counter(r.status for r in results))}
    if chosen:
        out |= {
            "p50_ms": round(percentile(chosen, 50) * 1000, 1),
            "p99_ms": round(percentile(chosen, 99) * 1000, 1),
            "max_ms": round(max(chosen) * 1000, 1),
        }
    return out
