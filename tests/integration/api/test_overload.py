"""Overload is answered, not queued: per-key rate limits (429 + Retry-After, in each
façade's own error shape), the per-class concurrency limit (503 + Retry-After once the
line is full) and request timeouts (503), all through the real app and a real server."""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.servers import serve

pytestmark = pytest.mark.integration

KEY_A = {"Authorization": "Bearer caller-a"}
KEY_B = {"Authorization": "Bearer caller-b"}
ASK = {"query": "How do bees tell each other where flowers are?", "top_k": 2}


def _app(tmp_path_factory, name: str, **overrides):
    settings = make_settings(
        tmp_path_factory.mktemp(name) / "data", redaction_enabled=False, **overrides
    )
    return create_app(settings, components=SHARED_COMPONENTS)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    app = _app(
        tmp_path_factory,
        "rate",
        rate_limit_retrieve="3/minute",
        rate_limit_answer="1/minute",
        rate_limit_admin="",
    )
    with TestClient(app) as client:
        assert client.post("/v1/kbs", json={"name": "docs"}).status_code == 201
        yield client


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(limited):
    statuses = [limited.post("/v1/kbs/docs/retrieve", json=ASK, headers=KEY_A) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert "3 per 1 minute" in error["message"]
    assert error["request_id"] == refused.headers["X-Request-ID"]
    # Another key has its own window; probes and other classes are not limited.
    assert limited.post("/v1/kbs/docs/retrieve", json=ASK, headers=KEY_B).status_code == 200
    assert limited.get("/healthz", headers=KEY_A).status_code == 200
    assert limited.get("/v1/kbs/docs", headers=KEY_A).status_code == 200
    # Dify's /retrieval is a retrieval: the same key's window is spent, in Dify's shape.
    dify = limited.post(
        "/retrieval",
        json={"knowledge_id": "docs", "query": "bees", "retrieval_setting": {"top_k": 1}},
        headers=KEY_A,
    )
    assert dify.status_code == 429, dify.text
    assert dify.json()["error_code"] == 429 and dify.json()["error_msg"]
    assert "Retry-After" in dify.headers
    metrics = limited.get("/metrics").text
    assert 'ragops_http_overload_responses_total{route="/v1/kbs/{kb}/retrieve",status="429"}' in (
        metrics
    )


def test_the_openai_facade_refuses_in_openais_shape(limited):
    body = {"model": "docs", "messages": [{"role": "user", "content": "bees?"}]}
    first = limited.post("/v1/chat/completions", json=body, headers=KEY_A)
    assert first.status_code == 200, first.text
    second = limited.post("/v1/chat/completions", json=body, headers=KEY_A)
    assert second.status_code == 429
    error = second.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limited"
    assert int(second.headers["Retry-After"]) >= 1


def test_a_request_past_its_timeout_gets_503_and_the_server_goes_on(tmp_path_factory):
    app = _app(tmp_path_factory, "timeout", timeout_retrieve_seconds=0.001)
    with TestClient(app) as client:
        assert client.post("/v1/kbs", json={"name": "docs"}).status_code == 201
        r = client.post("/v1/kbs/docs/retrieve", json=ASK)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "timeout"
        assert "RAGOPS_TIMEOUT_RETRIEVE_SECONDS" in r.json()["error"]["message"]
        assert r.headers["Retry-After"] == "1"
        assert client.get("/v1/kbs/docs").status_code == 200


def test_past_the_concurrency_limit_and_its_line_requests_get_503(tmp_path_factory):
    app = _app(
        tmp_path_factory,
        "gate",
        concurrency_retrieve=1,
        queue_wait_seconds=0.001,
        rate_limit_retrieve="",
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/kbs", json={"name": "docs"}).status_code == 201
        assert http.post("/v1/kbs/docs/retrieve", json=ASK).status_code == 200  # warm
        start = threading.Barrier(12)
        answers: list[httpx.Response] = []

        def ask() -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                start.wait()
                answers.append(own.post("/v1/kbs/docs/retrieve", json=ASK))

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        statuses = sorted(r.status_code for r in answers)
        assert len(statuses) == 12 and set(statuses) <= {200, 503}, statuses
        assert 200 in statuses and 503 in statuses, statuses
        refused = next(r for r in answers if r.status_code == 503)
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "over_capacity"
        # Once the burst is over the class serves again.
        assert http.post("/v1/kbs/docs/retrieve", json=ASK).status_code == 200


def test_a_request_refused_for_capacity_spends_none_of_its_callers_quota(tmp_path_factory):
    """A busy key is not starved by its own 503s: only requests that got a place count
    against its rate limit."""
    app = _app(
        tmp_path_factory,
        "quota",
        concurrency_retrieve=1,
        queue_wait_seconds=0.001,
        rate_limit_retrieve="6/minute",
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/kbs", json={"name": "docs"}).status_code == 201
        assert http.post("/v1/kbs/docs/retrieve", json=ASK, headers=KEY_B).status_code == 200
        start = threading.Barrier(12)
        answers: list[httpx.Response] = []

        def ask() -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                start.wait()
                answers.append(own.post("/v1/kbs/docs/retrieve", json=ASK, headers=KEY_A))

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        statuses = sorted(r.status_code for r in answers)
        served = statuses.count(200)
        assert len(statuses) == 12 and 503 in statuses and 429 not in statuses, statuses
        assert 1 <= served < 6, statuses
        # What is left of the quota is exactly what the 503s did not spend.
        after = [
            http.post("/v1/kbs/docs/retrieve", json=ASK, headers=KEY_A).status_code
            for _ in range(6 - served + 1)
        ]
        assert after == [200] * (6 - served) + [429], (statuses, after)
