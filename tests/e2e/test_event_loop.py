"""No request stalls the others: while clients keep sending oversized or hostile chat
completions (2 MB with and without Content-Length, a body under the byte cap but over
the character cap, 100,000-deep nesting), `/healthz` and a small retrieval still answer
within a second; while they keep asking questions at the size limit (real retrieval and
generation, in worker threads), `/healthz` does.

The server is `ragops serve` in a subprocess: its event loop is the one production runs
(unlike TestClient's), and the flooding clients here do not share its GIL. Worst
latencies are printed: run with -s to see them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from api.limits import MAX_JSON_BODY_BYTES, MAX_QUERY_CHARS
from tests.utils.samples import QUERIES
from tests.utils.servers import sample_corpus_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

KEY = "event-loop-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
FLOOD_SECONDS = 6.0
WITHIN_S = 1.0


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    # The subject is the event loop, not overload (tests/e2e/test_overload_load.py): the
    # flooding clients must reach the routes, not be refused at the door.
    no_limits = {
        "RAGOPS_RATE_LIMIT_ANSWER": "",
        "RAGOPS_RATE_LIMIT_RETRIEVE": "",
        "RAGOPS_CONCURRENCY_ANSWER": "16",
        "RAGOPS_CONCURRENCY_RETRIEVE": "16",
    }
    tmp = tmp_path_factory.mktemp("event-loop")
    with sample_corpus_server(tmp, KEY, **no_limits) as (_, url):
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
            # The first query loads the index: warm up, so probes measure steady state.
            body = {"query": QUERIES[3][0], "top_k": 1}
            assert http.post("/v1/kbs/docs/retrieve", json=body).status_code == 200
            assert http.post("/v1/chat/completions", content=_chat(ASK)).status_code == 200
        yield url


ASK = {"role": "user", "content": QUERIES[0][0]}


def _chat(*messages: dict) -> bytes:
    return json.dumps({"model": "docs", "messages": list(messages)}).encode()


def _words(n: int) -> str:
    text = "lava flows downhill while pyroclastic clouds race ahead " * (n // 50 + 1)
    return text[:n]


TWO_MB = _chat({"role": "user", "content": _words(2_000_000)})
# Just under the byte cap, far over the character cap (a long "history").
UNDER_CAP = _chat(
    *[{"role": "assistant", "content": _words(100_000)}] * (MAX_JSON_BODY_BYTES // 100_100),
    ASK,
)
DEEP = b'{"model": "docs", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
# Legal, at the limit: real retrieval and generation work in worker threads.
AT_LIMIT = _chat({"role": "user", "content": QUERIES[0][0] + " " + _words(MAX_QUERY_CHARS - 60)})


def _chunked(body: bytes) -> Callable[[], Iterator[bytes]]:
    def stream() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    return stream


Flood = dict[str, tuple[Callable[[], bytes | Iterator[bytes]], set[int]]]

OVERSIZED: Flood = {
    "2 MB": (lambda: TWO_MB, {413}),
    "2 MB chunked": (_chunked(TWO_MB), {413}),
    "1 MB over the character cap": (lambda: UNDER_CAP, {400}),
    "100,000-deep": (lambda: DEEP, {400}),
}
LEGAL: Flood = {f"question at the limit {i}": (lambda: AT_LIMIT, {200}) for i in range(2)}


def flood_and_probe(base_url: str, requests: Flood) -> dict[str, float]:
    """Send `requests` over and over, one client each, while probing `/healthz` and a
    retrieval for FLOOD_SECONDS; the worst probe latencies, in seconds."""
    stop = threading.Event()
    answered: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []

    def flood(kind: str) -> None:
        body, _ = requests[kind]
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=120) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/chat/completions", content=body())
                except httpx.HTTPError as exc:
                    failures.append(f"{kind}: {exc!r}")
                    continue
                answered[kind, r.status_code] += 1

    threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in requests]
    for t in threads:
        t.start()
    worst = {"healthz": 0.0, "retrieve": 0.0}
    probes = 0
    try:
        time.sleep(0.5)  # every flood has a request in flight
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as probe:
            deadline = time.monotonic() + FLOOD_SECONDS
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert probe.get("/healthz").status_code == 200
                worst["healthz"] = max(worst["healthz"], time.monotonic() - started)
                started = time.monotonic()
                r = probe.post("/v1/kbs/docs/retrieve", json={"query": QUERIES[3][0], "top_k": 1})
                assert r.status_code == 200 and r.json()["results"][0]["filename"] == QUERIES[3][1]
                worst["retrieve"] = max(worst["retrieve"], time.monotonic() - started)
                probes += 1
                time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    print(
        f"\nevent loop: {probes} probes during the flood, worst /healthz "
        f"{worst['healthz'] * 1000:.0f} ms, worst retrieve {worst['retrieve'] * 1000:.0f} ms; "
        f"answered {dict(answered)}"
    )
    assert not failures, failures[:3]
    for kind, (_, statuses) in requests.items():
        got = {status for (k, status) in answered if k == kind}
        assert got and got <= statuses, (kind, got)
    return worst


def test_oversized_chat_requests_do_not_stall_other_requests(base_url):
    assert len(TWO_MB) > 2_000_000 and len(UNDER_CAP) < MAX_JSON_BODY_BYTES
    worst = flood_and_probe(base_url, OVERSIZED)
    assert worst["healthz"] < WITHIN_S and worst["retrieve"] < WITHIN_S, worst


def test_questions_at_the_limit_keep_the_event_loop_free(base_url):
    # Retrieval shares the CPU and the embedding model with these, so only the probe
    # that needs neither is held to the second.
    worst = flood_and_probe(base_url, LEGAL)
    assert worst["healthz"] < WITHIN_S, worst
