"""Test-set generation from a KB's documents: the sample corpus indexed, the judge played
by the scripted judge server (a stand-in for a paid endpoint, answering our generation
prompt from the passage it is given), the cases checked against the real chunks, then
evaluated; validation, the 409 without a judge, and the CLI."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from api.cli import helpers as cli_helpers
from core.catalog.models import Chunk, IndexVersion, VersionStatus
from tests.conftest import make_settings
from tests.utils import scripted_judge_server as sj
from tests.utils.answers import corpus_client
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def judge():
    app = sj.make_app()
    with serve(app) as url:
        yield app, f"{url}/v1"


def judge_settings(base_url: str) -> dict:
    return {"judge_base_url": base_url, "judge_model": "scripted", "judge_api_key": sj.API_KEY}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("generate")


@pytest.fixture(scope="module")
def client(data_dir, judge):
    with corpus_client(data_dir, kb="kb", **judge_settings(judge[1])) as c:
        yield c


def wait_job(client, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/testsets/generate/{job_id}").json()
        if job["status"] in {"succeeded", "failed"}:
            return job
        time.sleep(0.2)
    raise AssertionError(f"generation {job_id} did not finish: {job}")


def live_chunks(client) -> dict[str, Chunk]:
    rt = client.app.state.runtime
    with rt.db.session() as s:
        version = s.execute(
            select(IndexVersion).where(IndexVersion.status == VersionStatus.LIVE)
        ).scalar_one()
        rows = s.execute(select(Chunk).where(Chunk.config_hash == version.config_hash)).scalars()
        chunks = {c.id: c for c in rows}
        s.expunge_all()
    return chunks


def test_generated_cases_point_at_real_chunks_and_evaluate(client):
    r = client.post("/v1/testsets/generate", json={"kb": "kb", "name": "gen", "size": 8})
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["status"] == "queued" and queued["judge"] == "openai:scripted"
    assert queued["index_version"] == 1 and queued["testset"] is None
    job = wait_job(client, queued["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == 1 and "8 of 8 cases" in job["message"]
    assert job["testset"]["name"] == "gen" and job["testset"]["source"] == "generated"
    assert job["testset"]["case_count"] == 8

    detail = client.get(f"/v1/testsets/gen/{job['testset']['version']}").json()
    chunks = live_chunks(client)
    documents = set()
    for case in detail["cases"]:
        chunk = chunks[case["metadata"]["chunk_id"]]  # a real chunk of the live version
        assert case["reference_contexts"] == [chunk.text]
        assert case["reference_doc_ids"] == [chunk.document_id]
        assert case["reference_answer"] in " ".join(chunk.text.split())
        assert case["metadata"]["index_version"] == 1 and case["tags"] == ["generated"]
        documents.add(chunk.document_id)
    assert len({c["question"] for c in detail["cases"]}) == 8
    assert len(documents) >= 4  # spread over the corpus, not one document

    # The references are usable as they are: an offline eval finds the documents.
    r = client.post("/v1/evals", json={"testset": "gen", "kb": "kb", "metrics": ["recall@k"]})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while (run := client.get(f"/v1/evals/{r.json()['id']}").json())["status"] != "succeeded":
        assert run["status"] != "failed" and time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["aggregate"]["recall@5"]["count"] == 8
    assert run["aggregate"]["recall@5"]["mean"] >= 0.5


def test_unusable_answers_are_skipped_and_languages_tagged(client, judge):
    app, _ = judge
    app.state.garbage["GeneratedCase"] = 3
    try:
        r = client.post(
            "/v1/testsets/generate",
            json={"kb": "kb", "name": "gen", "size": 4, "languages": ["en", "ES"]},
        )
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["job_id"])
    finally:
        app.state.garbage.clear()
    assert job["status"] == "succeeded", job["error"]
    assert job["languages"] == ["en", "es"]
    # Each prose answer costs one call (a re-ask, or a new passage when re-asked twice).
    assert "4 of 4 cases (7 judge calls" in job["message"]
    assert job["testset"]["version"] == 2  # the next version of "gen"
    cases = client.get("/v1/testsets/gen/2").json()["cases"]
    assert {c["metadata"]["language"] for c in cases} == {"en", "es"}
    assert all(c["tags"] == ["generated", c["metadata"]["language"]] for c in cases)


def test_a_judge_that_never_answers_usably_fails_the_job(client, judge):
    app, _ = judge
    app.state.garbage["GeneratedCase"] = -1
    try:
        r = client.post("/v1/testsets/generate", json={"kb": "kb", "name": "never", "size": 2})
        job = wait_job(client, r.json()["job_id"])
    finally:
        app.state.garbage.clear()
    assert job["status"] == "failed" and "no usable question" in job["error"]
    assert "GeneratedCase" in job["error"] and job["testset"] is None
    assert client.get("/v1/testsets/never").status_code == 404


def test_generation_requests_are_validated(client):
    def error(body, status):
        r = client.post("/v1/testsets/generate", json={"kb": "kb", "name": "x", "size": 3, **body})
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    assert "size" in error({"size": 0}, 422)
    assert "size" in error({"size": 501}, 422)
    assert "unknown language 'xx'" in error({"languages": ["xx"]}, 422)
    assert "name" in error({"name": "a/b"}, 422)
    assert "not found" in error({"kb": "nope"}, 404)
    r = client.get("/v1/testsets/generate/nope")
    assert r.status_code == 404 and "POST /v1/testsets/generate" in r.json()["error"]["message"]


def test_without_a_judge_generation_is_a_409_naming_the_settings(tmp_path):
    with TestClient(
        create_app(
            make_settings(tmp_path / "data", redaction_enabled=False), components=SHARED_COMPONENTS
        )
    ) as c:
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        r = c.post("/v1/testsets/generate", json={"kb": "kb", "name": "gen", "size": 5})
        assert r.status_code == 409, r.text
        message = r.json()["error"]["message"]
        assert "RAGOPS_JUDGE_BASE_URL" in message and "RAGOPS_JUDGE=local" in message
        r = c.post("/v1/evals", json={"testset": "x", "kb": "kb", "metrics": ["faithfulness"]})
        assert r.status_code == 409 and "RAGOPS_JUDGE_BASE_URL" in r.json()["error"]["message"]


def test_cli_generates_a_test_set(client, data_dir, judge, monkeypatch):
    settings = make_settings(data_dir / "data", redaction_enabled=False, **judge_settings(judge[1]))
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()
    r = runner.invoke(
        cli.app, ["testset", "generate", "--kb", "kb", "--name", "cli-gen", "--size", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "test set 'cli-gen' version 1: 2 of 2 cases" in r.stdout
    r = runner.invoke(
        cli.app, ["testset", "generate", "--kb", "nope", "--name", "x", "--size", "2"]
    )
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(cli.app, ["testset", "generate", "--kb", "kb", "--name", "x", "--size", "0"])
    assert r.exit_code == 2
