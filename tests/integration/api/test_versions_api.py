"""Index versions through the API with real components: build, pin, promote, rollback,
retire, GC, changes during a build, and zero-downtime re-embedding with another model."""

import statistics
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import top_filename, wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_md
from tests.utils.models import make_derived_model
from tests.utils.samples import QUERIES, build_corpus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "data", keep_retired_versions=0, build_batch_documents=2)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        yield c


@pytest.fixture
def loaded(client, tmp_path):
    """A KB 'kb' with the six sample documents indexed in version 1."""
    client.post("/v1/kbs", json={"name": "kb"})
    files = [("files", (p.name, p.read_bytes())) for p in build_corpus(tmp_path / "corpus")]
    assert client.post("/v1/kbs/kb/documents", files=files).status_code == 202
    wait_for_documents(client, "kb", expected=6)
    return client


def wait_version(client, number, status="ready", timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = client.get(f"/v1/kbs/kb/versions/{number}").json()
        if v["status"] == status:
            return v
        assert not v["error"], v["error"]
        time.sleep(0.2)
    raise AssertionError(f"version {number} not {status}: {v}")


def test_build_pin_promote_rollback_retire_gc(loaded):
    c = loaded
    listing = c.get("/v1/kbs/kb/versions").json()
    assert listing["live_version"] == 1 and [v["status"] for v in listing["versions"]] == ["live"]

    entities_v1 = c.get("/v1/kbs/kb").json()["redaction"]["entities"]
    build = {
        "chunking": {"chunk_size": 48, "chunk_overlap": 8},
        "redaction": {"entities": ["EMAIL_ADDRESS"]},
    }
    r = c.post("/v1/kbs/kb/versions", json=build)
    assert r.status_code == 202, r.text
    assert r.json()["number"] == 2 and r.json()["status"] == "building"
    v2 = wait_version(c, 2)
    assert v2["progress"] == 1 and v2["stats"]["documents"] == 6
    assert v2["config"]["chunking"] == {"chunk_size": 48, "chunk_overlap": 8}
    assert (
        v2["vector_count"]
        == v2["stats"]["chunks"]
        > c.get("/v1/kbs/kb/versions/1").json()["vector_count"]
    )

    # Live is still 1; version 2 can be queried by pinning it.
    body = c.post("/v1/kbs/kb/retrieve", json={"query": QUERIES[0][0]}).json()
    assert body["index_version"] == 1
    pinned = c.post("/v1/kbs/kb/retrieve", json={"query": QUERIES[0][0], "index_version": 2}).json()
    assert pinned["index_version"] == 2 and pinned["results"][0]["filename"] == QUERIES[0][1]
    assert all(len(h["text"].split()) < 60 for h in pinned["results"])
    assert c.post("/v1/kbs/kb/retrieve", json={"query": "x", "index_version": 9}).status_code == 404

    assert c.post("/v1/kbs/kb/versions/2/promote").json()["status"] == "live"
    assert c.get("/v1/kbs/kb").json()["live_version"] == 2
    assert c.get("/v1/kbs/kb").json()["chunking"]["chunk_size"] == 48
    # The redaction policy follows what is live, like chunking (and back on rollback).
    assert c.get("/v1/kbs/kb").json()["redaction"]["entities"] == ["EMAIL_ADDRESS"]
    assert c.get("/v1/kbs/kb/versions/1").json()["status"] == "ready"
    assert c.post("/v1/kbs/kb/retrieve", json={"query": "x"}).json()["index_version"] == 2

    assert c.post("/v1/kbs/kb/rollback").json()["number"] == 1
    assert c.get("/v1/kbs/kb").json()["live_version"] == 1
    assert c.get("/v1/kbs/kb").json()["redaction"]["entities"] == entities_v1
    r = c.post("/v1/kbs/kb/rollback")
    assert r.status_code == 409 and "nothing to roll back" in r.json()["error"]["message"]

    r = c.delete("/v1/kbs/kb/versions/1")
    assert r.status_code == 409 and "live" in r.json()["error"]["message"]
    assert c.delete("/v1/kbs/kb/versions/2").json()["status"] == "retired"
    r = c.post("/v1/kbs/kb/retrieve", json={"query": "x", "index_version": 2})
    assert r.status_code == 409 and "retired" in r.json()["error"]["message"]
    r = c.post("/v1/kbs/kb/versions/2/promote")
    assert r.status_code == 409 and "only a ready version" in r.json()["error"]["message"]

    job = c.post("/v1/kbs/kb/versions/gc").json()["job_id"]
    deadline = time.monotonic() + 30
    while c.get("/v1/kbs/kb/versions/2").json()["purged_at"] is None:
        assert time.monotonic() < deadline, f"gc job {job} did not purge version 2"
        time.sleep(0.1)
    # The live version is untouched by GC.
    assert top_filename(c, "kb", QUERIES[1][0]) == QUERIES[1][1]


def test_version_requests_are_validated(loaded):
    c = loaded

    def invalid(body, status=422):
        r = c.post("/v1/kbs/kb/versions", json=body)
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    assert "index_type" in invalid({"index_params": {"index_type": "annoy"}})
    assert "nlist" in invalid({"index_params": {"index_type": "hnsw", "nlist": 4}})
    assert "backend" in invalid({"backend": "milvus"})
    assert "not found" in invalid({"embedding_model": "/no/such/model"})
    assert "truncated" in invalid({"chunking": {"chunk_size": 999}})
    assert c.post("/v1/kbs/nope/versions", json={}).status_code == 404
    assert c.get("/v1/kbs/kb/versions/7").status_code == 404
    # Chunking of a KB with an index changes through a new version, not an edit.
    r = c.patch("/v1/kbs/kb", json={"chunking": {"chunk_size": 64}})
    assert r.status_code == 409 and "/versions" in r.json()["error"]["message"]


def test_changes_made_during_a_build_reach_the_new_version(loaded):
    c = loaded
    docs = {d["filename"]: d for d in c.get("/v1/kbs/kb/documents").json()["documents"]}
    assert c.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 64}}).status_code == 202
    # While version 2 builds: add a document, change one, delete one.
    c.post(
        "/v1/kbs/kb/documents",
        files=[
            (
                "files",
                (
                    "ferry.md",
                    make_md(
                        "Ferry", ["The island ferry leaves the eastern quay at nine every morning."]
                    ),
                ),
            )
        ],
    )
    c.post(
        "/v1/kbs/kb/documents",
        files=[
            (
                "files",
                (
                    "sourdough.md",
                    make_md(
                        "Sourdough", ["Rye sourdough needs a warmer proof than wheat sourdough."]
                    ),
                ),
            )
        ],
    )
    assert c.delete(f"/v1/kbs/kb/documents/{docs['lighthouses.pptx']['id']}").status_code == 204
    wait_version(c, 2)
    wait_for_documents(c, "kb", expected=6)
    c.post("/v1/kbs/kb/versions/2/promote")

    for version in (1, 2):

        def ask(query, version=version):
            body = c.post(
                "/v1/kbs/kb/retrieve", json={"query": query, "top_k": 10, "index_version": version}
            ).json()
            return body["results"]

        assert ask("when does the island ferry leave")[0]["filename"] == "ferry.md"
        sourdough = [
            h for h in ask("rye sourdough proof temperature") if h["filename"] == "sourdough.md"
        ]
        assert sourdough and all("Rye" in h["text"] for h in sourdough)
        assert "lighthouses.pptx" not in {h["filename"] for h in ask("Fresnel lens lighthouse")}


def test_zero_downtime_reembedding_with_another_model(loaded, tmp_path):
    c = loaded
    model_dir = make_derived_model(tmp_path / "derived-model")
    stop = threading.Event()
    samples: list[tuple[float, int, int | None, int]] = []  # (seconds, status, version, hits)

    def query_forever():
        i = 0
        while not stop.is_set():
            query = QUERIES[i % len(QUERIES)][0]
            t0 = time.perf_counter()
            r = c.post("/v1/kbs/kb/retrieve", json={"query": query, "top_k": 3})
            body = r.json() if r.status_code == 200 else {}
            samples.append(
                (
                    time.perf_counter() - t0,
                    r.status_code,
                    body.get("index_version"),
                    len(body.get("results", [])),
                )
            )
            i += 1

    reader = threading.Thread(target=query_forever, daemon=True)
    reader.start()
    try:
        # Its max_seq_length is 128, so the chunk size must shrink with it.
        r = c.post(
            "/v1/kbs/kb/versions",
            json={"embedding_model": str(model_dir), "chunking": {"chunk_size": 120}},
        )
        assert r.status_code == 202, r.text
        assert r.json()["dimension"] == 256
        wait_version(c, 2)
        during_build = list(samples)
        assert c.post("/v1/kbs/kb/versions/2/promote").status_code == 200
        time.sleep(1.0)
        assert c.post("/v1/kbs/kb/rollback").json()["number"] == 1
        time.sleep(1.0)
        assert c.post("/v1/kbs/kb/versions/2/promote").status_code == 200
        time.sleep(1.0)
    finally:
        stop.set()
        reader.join(30)
    errors = [s for s in samples if s[1] != 200]
    empty = [s for s in samples if s[1] == 200 and s[3] == 0]
    latencies = sorted(s[0] for s in during_build)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"\nzero-downtime: {len(samples)} queries, {len(errors)} errors, {len(empty)} empty; "
        f"during build {len(during_build)} queries p50 {p50:.1f} ms p99 {p99:.1f} ms; "
        f"answered by versions {sorted({s[2] for s in samples})}"
    )
    assert not errors and not empty
    assert len(during_build) >= 5
    assert {s[2] for s in samples} == {1, 2}
    assert top_filename(c, "kb", QUERIES[2][0]) == QUERIES[2][1]


def test_qdrant_version_behind_an_alias(loaded):
    from index.qdrant_index import collection_name, resolve_alias

    c = loaded
    r = c.post("/v1/kbs/kb/versions", json={"backend": "qdrant"})
    assert r.status_code == 202, r.text
    v2 = wait_version(c, 2)
    assert (
        v2["backend"] == "qdrant"
        and v2["vector_count"] == c.get("/v1/kbs/kb/versions/1").json()["vector_count"]
    )
    # which engine holds each version, as recorded when it was created
    assert (v2["engine"], v2["index_params"]) == ("qdrant-edge", {"engine": "qdrant-edge"})
    listed = c.get("/v1/kbs/kb/versions").json()["versions"]
    assert [v["engine"] for v in listed] == ["faiss", "qdrant-edge"]
    assert c.post("/v1/kbs/kb/versions/2/promote").status_code == 200
    for query, expected in QUERIES:
        assert top_filename(c, "kb", query) == expected, query
    filtered = c.post(
        "/v1/kbs/kb/retrieve",
        json={"query": QUERIES[0][0], "filters": {"filename": ["sourdough.md", "honeybees.docx"]}},
    )
    assert {h["filename"] for h in filtered.json()["results"]} <= {"sourdough.md", "honeybees.docx"}

    rt = c.app.state.runtime
    kb = c.get("/v1/kbs/kb").json()
    with rt.db.session() as s:
        from core.catalog.models import IndexVersion

        row = s.query(IndexVersion).filter_by(kb_id=kb["id"], number=2).one()
    assert resolve_alias(rt.qdrant_client(), f"ragops_{kb['id']}_live") == collection_name(
        row.kb_id, row.number, row.id
    )

    # New documents reach the Qdrant version too.
    c.post(
        "/v1/kbs/kb/documents",
        files=[
            (
                "files",
                (
                    "ferry.md",
                    make_md(
                        "Ferry", ["The island ferry leaves the eastern quay at nine every morning."]
                    ),
                ),
            )
        ],
    )
    wait_for_documents(c, "kb", expected=7)
    assert top_filename(c, "kb", "when does the island ferry leave") == "ferry.md"
    assert c.post("/v1/kbs/kb/rollback").json()["number"] == 1
    assert top_filename(c, "kb", "when does the island ferry leave") == "ferry.md"


def test_qdrant_as_the_default_backend(tmp_path):
    settings = make_settings(tmp_path / "data", index_backend="qdrant")
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        c.post("/v1/kbs", json={"name": "q"})
        files = [("files", (p.name, p.read_bytes())) for p in build_corpus(tmp_path / "corpus")]
        c.post("/v1/kbs/q/documents", files=files)
        wait_for_documents(c, "q", expected=6)
        first = c.get("/v1/kbs/q/versions/1").json()
        assert (first["backend"], first["engine"]) == ("qdrant", "qdrant-edge")
        for query, expected in QUERIES:
            assert top_filename(c, "q", query) == expected, query
        doc = c.get("/v1/kbs/q/documents").json()["documents"][0]
        assert c.delete(f"/v1/kbs/q/documents/{doc['id']}").status_code == 204
        hits = c.post("/v1/kbs/q/retrieve", json={"query": "anything", "top_k": 50}).json()
        assert doc["filename"] not in {h["filename"] for h in hits["results"]}


def test_cleaning_options_through_a_new_version(loaded):
    c = loaded
    r = c.post(
        "/v1/kbs/kb/versions",
        json={"cleaning": {"near_duplicate_threshold": None, "remove_boilerplate": False}},
    )
    assert r.status_code == 202, r.text
    cleaning = r.json()["config"]["cleaning"]
    assert cleaning["near_duplicate_threshold"] is None
    assert cleaning["remove_boilerplate"] is False
    assert cleaning["drop_duplicate_chunks"] is True  # untouched
    wait_version(c, 2)
    r = c.post("/v1/kbs/kb/versions", json={"cleaning": {"near_duplicate_threshold": 0.2}})
    assert r.status_code == 422 and "near_duplicate_threshold" in r.json()["error"]["message"]
