"""`GET /metrics` after real requests: HTTP series per route template (never a KB name),
in-flight requests, 429 counts, ingestion stage latencies, embedding tokens, retrieval
latency per mode, job outcomes, queue depth and the live index version per KB; per-KB
gauges only for a caller with the key when one is configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import route_labels
from api.app import create_app
from api.route_labels import UNMATCHED, route_label
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KB = "secret-handbook"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, prefix: str) -> list[dict[str, str]]:
    return [dict(labels) for name, labels in samples if name.startswith(prefix)]


def client_for(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = make_settings(tmp_path / "data", job_max_attempts=1, **overrides)
    return TestClient(create_app(settings, components=SHARED_COMPONENTS))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path) as c:
        assert c.post("/v1/kbs", json={"name": KB}).status_code == 201
        yield c


def test_series_after_upload_retrieve_and_a_404(client):
    before = scrape(client)
    text = "Honey bees dance to tell each other where the flowers are. " * 12
    r = client.post(
        f"/v1/kbs/{KB}/documents",
        files=[
            ("files", ("bees.txt", text.encode(), "text/plain")),
            ("files", ("broken.pdf", make_pdf(["cut off"])[:150], "application/pdf")),
        ],
    )
    assert r.status_code == 202, r.text
    docs = wait_for_documents(client, KB, expected=2)
    assert docs["bees.txt"]["status"] == "indexed" and docs["broken.pdf"]["status"] == "failed"
    for mode in ("dense", "hybrid"):
        r = client.post(f"/v1/kbs/{KB}/retrieve", json={"query": "bee dance", "mode": mode})
        assert r.status_code == 200 and r.json()["results"]
    assert client.get("/v1/kbs/no-such-kb").status_code == 404
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    retrieve = {"method": "POST", "route": "/v1/kbs/{kb}/retrieve"}
    assert grew("ragops_http_request_duration_seconds_count", **retrieve) == 2
    assert grew("ragops_http_request_duration_seconds_bucket", **retrieve, le="+Inf") == 2
    assert grew("ragops_http_responses_total", **retrieve, status="200") == 2
    assert (
        grew("ragops_http_responses_total", method="GET", route="/v1/kbs/{kb}", status="404") == 1
    )
    upload = {"method": "POST", "route": "/v1/kbs/{kb}/documents", "status": "202"}
    assert grew("ragops_http_responses_total", **upload) == 1
    assert value(after, "ragops_http_requests_in_flight") >= 1  # the scrape itself
    # Route templates only: neither the KB's name nor the unknown one is a label value.
    http_labels = labelled(after, "ragops_http_")
    assert http_labels and not any(
        KB in v or "no-such-kb" in v for labels in http_labels for v in labels.values()
    )

    for stage in ("parse", "clean", "redact", "chunk", "embed", "index"):
        assert grew("ragops_ingest_stage_seconds_count", stage=stage) >= 1, stage
    assert grew("ragops_embedding_tokens_total") > 50
    assert grew("ragops_embedding_texts_total") >= 1
    assert grew("ragops_embedding_seconds_total") > 0
    for mode in ("dense", "hybrid"):
        assert grew("ragops_retrieval_seconds_count", mode=mode) == 1
    assert grew("ragops_jobs_succeeded_total", kind="ingest_revision") >= 1
    assert grew("ragops_job_failures_total", kind="ingest_revision", final="true") >= 1

    assert value(after, "ragops_job_queue_depth", kind="ingest_revision", status="queued") == 0
    assert value(after, "ragops_kb_live_index_version", kb=KB) == 1
    assert value(after, "ragops_catalog_scrape_errors") == 0


def test_429_counted_and_queue_depth_from_the_catalog(tmp_path):
    # No workers: queued jobs stay queued, and the third file does not fit the queue.
    with client_for(tmp_path, workers=0, ingest_queue_max=2, ingest_queue_max_per_kb=2) as c:
        assert c.post("/v1/kbs", json={"name": KB}).status_code == 201
        before = scrape(c)
        for i in range(3):
            r = c.post(
                f"/v1/kbs/{KB}/documents",
                files=[("files", (f"n{i}.txt", f"note {i}".encode(), "text/plain"))],
            )
            assert r.status_code == (202 if i < 2 else 429), r.text
        after = scrape(c)
    route = "/v1/kbs/{kb}/documents"
    assert value(after, "ragops_job_queue_depth", kind="ingest_revision", status="queued") == 2
    assert (
        value(after, "ragops_http_overload_responses_total", route=route, status="429")
        - value(before, "ragops_http_overload_responses_total", route=route, status="429")
        == 1
    )


def test_with_an_admin_key_kb_gauges_need_the_key(tmp_path):
    with client_for(tmp_path, admin_key="s3cret-key") as c:
        auth = {"Authorization": "Bearer s3cret-key"}
        assert c.post("/v1/kbs", json={"name": KB}, headers=auth).status_code == 201
        c.post(
            f"/v1/kbs/{KB}/documents",
            files=[("files", ("a.txt", b"Bees dance.", "text/plain"))],
            headers=auth,
        )
        wait_for_documents(c, KB, expected=1, headers=auth)

        public = c.get("/metrics")
        assert public.status_code == 200
        assert KB not in public.text and "ragops_kb_live_index_version" not in public.text
        assert "ragops_job_queue_depth" in public.text

        assert value(scrape(c, **auth), "ragops_kb_live_index_version", kb=KB) == 1

        wrong = c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "unauthorized"


def test_route_label_of_a_request_answered_before_routing(tmp_path):
    """A middleware that refuses a request before routing still gets its template."""
    app = create_app(make_settings(tmp_path / "data"))
    assert route_label({"app": app, "path": "/v1/kbs/handbook/retrieve"}) == (
        "/v1/kbs/{kb}/retrieve"
    )
    assert route_label({"app": app, "path": "/v1/kbs/handbook/versions/3"}) == (
        "/v1/kbs/{kb}/versions/{number}"
    )
    assert route_label({"app": app, "path": "/wp-admin/install.php"}) == UNMATCHED


def test_the_route_table_is_built_with_the_app_not_at_the_first_refusal(tmp_path, monkeypatch):
    """Building it walks every route through FastAPI (100-300 ms holding the event loop):
    done lazily, the first request refused under overload stalled every request behind
    it, and the admitted p99 tripled (the load test's 3-4x). A request answered before
    routing must find it built."""
    app = create_app(make_settings(tmp_path / "data"))

    def rebuilt(_app: object) -> list:
        raise AssertionError("the route table was built at request time")

    monkeypatch.setattr(route_labels, "_route_table", rebuilt)
    assert route_label({"app": app, "path": "/v1/kbs/handbook/retrieve"}) == (
        "/v1/kbs/{kb}/retrieve"
    )
