"""A loopback load test of `/retrieve` at 10× the rate the server sustains, on its default
overload settings (`api.overload`): the server stays up and answers probes, the requests
it admits keep a bounded p99, and the rest are refused with 429 or 503 and Retry-After,
quickly; no request goes unanswered. The issue's goal for admitted requests is a p99
within 2× the unloaded p99, measured 1.29-1.80× on 2 cores shared with the load
generator; this test bounds the ratio at ADMITTED_P99_BOUND (some room for a noisy
machine) and prints it. The server must also keep serving: the admitted rate under
overload is at least ADMITTED_SHARE of the sustainable rate (measured 0.79-0.95).

`ragops serve` runs in a subprocess; the load comes from `tests.utils.loadgen` (raw
HTTP/1.1 on asyncio, open loop). Three phases against the same KB and query:

1. unloaded: one client, back to back: p50/p99;
2. sustainable: as many clients as the retrieve class serves at once, back to back: the
   achieved requests/s is the sustainable rate;
3. overload: 10× that rate, open loop, while a probe asks /healthz every 100 ms.

The figures are printed (run with -s) and written to $RAGOPS_LOAD_REPORT when set."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from core.config import Settings
from tests.utils.loadgen import (
    Pool,
    closed_loop,
    loop_lag,
    open_loop,
    post_json,
    run,
    summarize,
)
from tests.utils.samples import QUERIES
from tests.utils.servers import sample_corpus_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

KEY = "load-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
UNLOADED_REQUESTS = 120
SUSTAIN_SECONDS = 4.0
OVERLOAD_SECONDS = 6.0
OVERLOAD_FACTOR = 10
ADMITTED_P99_BOUND = 2.5
ADMITTED_SHARE = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with sample_corpus_server(tmp_path_factory.mktemp("load"), KEY) as (proc, url):
        yield proc, int(url.rsplit(":", 1)[1])


async def _probe(port: int, stop: asyncio.Event) -> list[float]:
    """Seconds each /healthz took while the load ran (inf: no answer within 10 s)."""
    raw = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    pool, seconds = Pool("127.0.0.1", port), []
    while not stop.is_set():
        r = await pool.send(raw, timeout=10)
        seconds.append(r.seconds if r.status == 200 else float("inf"))
        await asyncio.sleep(0.1)
    pool.close()
    return seconds


async def _measure(port: int) -> dict:
    body = {"query": QUERIES[3][0], "top_k": 5}
    raw = post_json("127.0.0.1", port, "/v1/kbs/docs/retrieve", body, AUTH)
    pool = Pool("127.0.0.1", port)
    for _ in range(10):  # load the index, warm the caches
        assert (await pool.send(raw, 30)).status == 200
    unloaded = []
    for _ in range(UNLOADED_REQUESTS):
        unloaded.append(await pool.send(raw, 30))
        # one client, well under the per-key rate limit (a fast server crosses it)
        await asyncio.sleep(0.01)
    pool.close()
    clients = Settings(_env_file=None).concurrency_retrieve
    sustained, rate = await closed_loop(
        "127.0.0.1", port, raw, clients=clients, seconds=SUSTAIN_SECONDS
    )
    await asyncio.sleep(1.1)  # let the per-key rate window of phase 2 pass
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(port, stop))
    lag = asyncio.create_task(loop_lag(stop))
    t0 = time.perf_counter()
    loaded = await open_loop(
        "127.0.0.1", port, raw, rate=OVERLOAD_FACTOR * rate, seconds=OVERLOAD_SECONDS
    )
    overload_wall = time.perf_counter() - t0
    stop.set()
    probes = await probe
    client_lag = await lag
    refused = [r for r in loaded if r.status in (429, 503)]
    return {
        "unloaded": summarize(unloaded, 200),
        "sustained": {**summarize(sustained, 200), "clients": clients, "rps": round(rate, 1)},
        "overload": {
            "offered_rps": round(OVERLOAD_FACTOR * rate, 1),
            "wall_s": round(overload_wall, 1),
            "admitted": summarize(loaded, 200),
            "refused": {
                **summarize(refused),
                "without_retry_after": sum(r.retry_after is None for r in refused),
            },
            "admitted_rps": round(sum(r.status == 200 for r in loaded) / OVERLOAD_SECONDS, 1),
        },
        "healthz_worst_ms": round(max(probes) * 1000, 1) if probes else None,
        "healthz_probes": len(probes),
        "load_generator_worst_lag_ms": round(client_lag * 1000, 1),
    }


def test_ten_times_the_sustainable_rate_is_refused_fast_and_the_admitted_stay_fast(server):
    proc, port = server
    report = run(_measure(port))
    print("\nload test /v1/kbs/{kb}/retrieve:", json.dumps(report, indent=1))
    if os.environ.get("RAGOPS_LOAD_REPORT"):
        Path(os.environ["RAGOPS_LOAD_REPORT"]).write_text(json.dumps(report, indent=1) + "\n")
    assert proc.poll() is None, "the server died under load"
    assert report["unloaded"]["by_status"] == {200: UNLOADED_REQUESTS}, report["unloaded"]
    overload = report["overload"]
    statuses = overload["admitted"]["by_status"]
    assert set(statuses) <= {200, 429, 503}, f"unexpected answers (0 = none): {statuses}"
    assert overload["refused"]["n"] > 0, "nothing was refused at 10x the sustainable rate"
    assert overload["refused"]["without_retry_after"] == 0
    assert overload["admitted"].get("p99_ms") is not None, "nothing was admitted"
    # The goal is 2x (issue 14), measured 1.29-1.80x (before the limits: p99 22.7 s at 200
    # clients; before quota was spent only on admitted requests: 8 of 99 requests/s served).
    ratio = overload["admitted"]["p99_ms"] / report["unloaded"]["p99_ms"]
    print(f"admitted p99 / unloaded p99 = {ratio:.2f} (goal 2)")
    assert ratio <= ADMITTED_P99_BOUND, report
    share = overload["admitted_rps"] / report["sustained"]["rps"]
    print(f"admitted rate / sustainable rate = {share:.2f}")
    assert share >= ADMITTED_SHARE, report
    # A refusal is at once, or after at most the line's wait (RAGOPS_QUEUE_WAIT_SECONDS).
    refused_bound_ms = Settings(_env_file=None).queue_wait_seconds * 1000 + 500
    assert overload["refused"]["p99_ms"] <= refused_bound_ms, report
    assert report["healthz_worst_ms"] is not None and report["healthz_worst_ms"] < 1000, report
    # The load generator is open loop: it waited for every answer, none hung.
    assert overload["wall_s"] < OVERLOAD_SECONDS + 30
