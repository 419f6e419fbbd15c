"""Fine-tuning on questions the LLM judge writes for a KB's chunks (source `synthetic`):
the judge is the scripted judge server over real HTTP (a stand-in for a paid endpoint,
answering the test-set generator's prompt from the passage it is given), the base is the
packaged MiniLM, and training is kept tiny (`max_steps`, registered whatever the dev
figures say: these tests are about where the data comes from, not the gain).

- a run with sources ["synthetic"] stores the questions as test set
  `finetune-<name>-synthetic` (source generated, its description naming the job), trains
  on them (`by_source: {"synthetic": n}`, each pair's positive the chunk its question was
  written for), and the run and the registered model's lineage name that set, its
  version and the judge;
- an attempt that dies after the questions were stored is retried by the job queue and
  reuses them: no judge call, no second version;
- validation: 422 for a bad `synthetic_questions` (or one without the source, or too
  few to ever reach the guard rails' minimum), 404 for a KB without a live version, 409
  without a judge (the generator's hint); the dataset preview writes nothing and says
  how many questions the job would ask for; the CLI's `--synthetic-questions`.

Data: 12 fictional-entity documents per language (`tests/bench/data`, one chunk each).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from api.cli import helpers as cli_helpers
from eval import finetune_data
from eval.finetune_data import MIN_DEV_PAIRS, MIN_TRAIN_PAIRS
from eval.testsets import get_versions
from tests.bench.qa import render
from tests.conftest import make_settings
from tests.utils import scripted_judge_server as sj
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.qa_kb import qa_subset
from tests.utils.servers import serve

# A KB of 36 documents and a fine-tuning job run twice (the retry): minutes on a loaded
# 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

BASE = "all-MiniLM-L6-v2"
KB = "syn"
# Enough for the guard rails (32 train + 8 dev) from the scripted judge, which asks
# about one sentence of a passage at a time (measured: 48 distinct questions over ~25 of
# the 36 documents).
QUESTIONS = 48
REQUEST: dict[str, Any] = {
    "name": "minilm-syn",
    "base_model": BASE,
    "kb": KB,
    "sources": ["synthetic"],
    "synthetic_questions": QUESTIONS,
    "max_steps": 2,
    "min_dev_gain": -1.0,
}


@pytest.fixture(scope="module")
def judge():
    app = sj.make_app()
    with serve(app) as url:
        yield app, f"{url}/v1"


def judge_settings(base_url: str) -> dict[str, Any]:
    return {"judge_base_url": base_url, "judge_model": "scripted", "judge_api_key": sj.API_KEY}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic") / "data"


@pytest.fixture(scope="module")
def client(data_dir: Path, judge: tuple[Any, str]):
    docs, _ = qa_subset(12)
    # The production lease (60 s): on a loaded machine an attempt must not lose its job
    # to a late heartbeat (the retry here is the simulated crash's, not a lease's).
    settings = make_settings(
        data_dir, redaction_enabled=False, job_lease_seconds=60, **judge_settings(judge[1])
    )
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": KB, "embedding_model": BASE}).status_code == 201
        upload(c, KB, [(d["filename"], render(d)) for d in docs])
        wait_for_documents(c, KB, expected=len(docs), timeout=600)
        r = c.post(
            "/v1/models/registry",
            json={"kind": "embedding", "name": BASE, "source_type": "package", "source": BASE},
        )
        assert r.status_code == 201, r.text
        yield c


def generation_calls(judge: tuple[Any, str]) -> int:
    return sum(kind == "GeneratedCase" for kind, _ in judge[0].state.requests)


def error(c: TestClient, status: int, **body: Any) -> str:
    r = c.post("/v1/models/finetune", json={**REQUEST, **body})
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


def test_requests_are_validated_and_the_preview_writes_nothing(client, judge):
    c = client
    calls = generation_calls(judge)
    assert "synthetic_questions must be between 1 and 500, got 0" in error(
        c, 422, synthetic_questions=0
    )
    assert "between 1 and 500, got 501" in error(c, 422, synthetic_questions=501)
    assert "synthetic_questions" in error(c, 422, synthetic_questions="48")
    message = error(c, 422, sources=["feedback"], synthetic_questions=20)
    assert "'synthetic' is not among the sources" in message
    # Too few to ever reach the minimum: refused before any judge call, with the figures.
    r = c.post("/v1/models/finetune", json={**REQUEST, "synthetic_questions": 10})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "finetune_dataset_refused"
    need = MIN_TRAIN_PAIRS + MIN_DEV_PAIRS
    assert f"ask for at least {need} synthetic_questions" in err["message"]
    assert err["details"]["synthetic_questions"] == 10
    # A KB without a live index version: 404, as for the other sources.
    assert c.post("/v1/kbs", json={"name": "empty", "embedding_model": BASE}).status_code == 201
    assert "no live index version" in error(c, 404, kb="empty")

    # The preview cannot write questions: it says how many the job will ask for.
    params = {"sources": "synthetic", "synthetic_questions": QUESTIONS}
    r = c.get(f"/v1/kbs/{KB}/finetune-dataset", params=params)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["synthetic"]["questions"] == QUESTIONS
    assert preview["synthetic"]["judge"] == "openai:scripted"
    assert f"{QUESTIONS} questions will be written" in preview["synthetic"]["note"]
    assert preview["counts"]["pairs"] == 0 and preview["trainable"] is True
    r = c.get(f"/v1/kbs/{KB}/finetune-dataset", params={"sources": "synthetic"})
    assert r.json()["synthetic"]["questions"] == 100  # the default
    r = c.get(
        f"/v1/kbs/{KB}/finetune-dataset", params={"sources": "synthetic", "synthetic_questions": 5}
    )
    assert r.json()["trainable"] is False and "synthetic_questions" in r.json()["refusal"]
    # Without the source the preview is what it was: no synthetic field.
    assert c.get(f"/v1/kbs/{KB}/finetune-dataset").json()["synthetic"] is None
    assert generation_calls(judge) == calls, "validation or a preview asked the judge"
    assert c.get("/v1/testsets/finetune-minilm-syn-synthetic").status_code == 404


def test_synthetic_questions_train_a_candidate_and_a_retry_reuses_them(
    client, judge, monkeypatch: pytest.MonkeyPatch
):
    c = client
    name = "finetune-minilm-syn-synthetic"
    real_dev_corpus = finetune_data.dev_corpus
    crashed: dict[str, Any] = {}

    def crash_once(rt: Any, ds: Any, *, limit: int) -> dict[str, str]:
        """The first attempt dies once its questions are stored (the way a crash ends an
        attempt); the job queue retries it."""
        if not crashed:
            crashed["calls"] = generation_calls(judge)
            with rt.db.session() as s:
                crashed["versions"] = [t.version for t in get_versions(session=s, name=name)]
            raise RuntimeError("simulated crash after the synthetic questions were stored")
        return real_dev_corpus(rt, ds, limit=limit)

    monkeypatch.setattr(finetune_data, "dev_corpus", crash_once)
    calls_before = generation_calls(judge)
    r = c.post("/v1/models/finetune", json=REQUEST)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["dataset"]["synthetic"] == {
        "questions": QUESTIONS,
        "judge": "openai:scripted",
        "testset": name,
        "version": None,
    }

    seen: list[tuple[float, str]] = []  # the job's (progress, message) as polled
    deadline = time.monotonic() + 1200
    while (job := c.get(accepted["poll"]).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        seen.append((job["progress"], job["message"]))
        time.sleep(0.1)
    run = c.get(accepted["run"]).json()
    assert job["status"] == "succeeded", (job, run)
    assert job["attempts"] == 2, job
    assert crashed["versions"] == [1], "the first attempt crashed before storing its questions"

    # The questions were written once, by the first attempt; the retry reused them.
    assert crashed["calls"] - calls_before >= QUESTIONS
    assert generation_calls(judge) == crashed["calls"]
    versions = c.get(f"/v1/testsets/{name}").json()["testsets"]
    assert [v["version"] for v in versions] == [1]
    stored = versions[0]
    assert (
        stored["source"] == "generated" and f"(job {accepted['job_id']})" in stored["description"]
    )
    synthetic = run["dataset"]["synthetic"]
    assert synthetic == {
        "testset": name,
        "version": 1,
        "judge": "openai:scripted",
        "questions": QUESTIONS,
        "cases": stored["case_count"],
        "reused": True,
    }

    # Trained on them alone, through the same split and guard rails.
    counts = run["dataset"]["counts"]
    assert counts["by_source"] == {"synthetic": counts["pairs"]}
    assert counts["pairs"] == stored["case_count"] and counts["skipped"] == {}
    assert counts["train"] >= MIN_TRAIN_PAIRS and counts["dev"] >= MIN_DEV_PAIRS
    assert counts["documents"]["dev"] >= 1 and counts["documents"]["train"] >= 1
    # Each dev pair's positive is the chunk its question was written for.
    cases = c.get(f"/v1/testsets/{name}/1").json()["cases"]
    written_for = {q["question"]: q["metadata"]["chunk_id"] for q in cases}
    dev = run["report"]["questions"]
    assert len(dev) == counts["dev"]
    assert all(q["source"] == "synthetic" for q in dev)
    assert all(q["positive_id"] == written_for[q["question"]] for q in dev)
    assert run["status"] == "succeeded" and len(run["steps"]) == 2

    # Lineage: the run (above) and the registered model name the set, version and judge.
    model = c.get("/v1/models/registry/embedding/minilm-syn").json()
    assert model["stage"] == "candidate" and model["parent"]["name"] == BASE
    assert model["metadata"]["finetune"]["synthetic"] == synthetic
    assert model["metadata"]["finetune"]["sources"] == ["synthetic"]
    assert (
        f"test set '{name}' version 1, written by openai:scripted"
        in (model["lineage"]["training_data"])
    )

    # Progress: writing the questions takes 0-30 %, training the rest.
    writing = [p for p, m in seen if "synthetic questions" in m]
    training = [p for p, m in seen if m.startswith("epoch ")]
    assert all(p <= 0.3 + 1e-6 for p in writing), seen
    assert all(p >= 0.3 for p in training), seen


def test_without_a_judge_synthetic_is_a_409_with_the_generators_hint(tmp_path: Path):
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    docs, _ = qa_subset(1, languages=("en",))
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": KB}).status_code == 201
        message = error(c, 409)
        assert "the fine-tuning source 'synthetic'" in message
        assert "RAGOPS_JUDGE_BASE_URL" in message and "RAGOPS_JUDGE=local" in message
        r = c.post("/v1/testsets/generate", json={"kb": KB, "name": "gen", "size": 5})
        assert r.status_code == 409
        # The same hint as the test-set generator's.
        hint = r.json()["error"]["message"].split("; ", 1)[1]
        assert message.endswith(hint)
        # The preview of a KB with a live version says a run would be refused, and why.
        upload(c, KB, [(d["filename"], render(d)) for d in docs])
        wait_for_documents(c, KB, expected=len(docs), timeout=300)
        r = c.get(f"/v1/kbs/{KB}/finetune-dataset", params={"sources": "synthetic"})
        assert r.status_code == 200, r.text
        preview = r.json()
        assert preview["trainable"] is False and preview["refusal"] == message
        assert preview["synthetic"]["judge"] is None


def test_cli_takes_synthetic_questions(client, data_dir, judge, monkeypatch):
    settings = make_settings(data_dir, redaction_enabled=False, **judge_settings(judge[1]))
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()
    base = ["finetune", "minilm-cli", "--base-model", BASE, "--kb", KB, "--source", "synthetic"]
    r = runner.invoke(cli.app, [*base, "--synthetic-questions", "60", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert '"synthetic_questions": 60' in r.stdout and '"pairs": 0' in r.stdout
    r = runner.invoke(cli.app, [*base, "--synthetic-questions", "0", "--dry-run"])
    assert r.exit_code == 2
    r = runner.invoke(
        cli.app,
        [*base[:-1], "feedback", "--synthetic-questions", "60", "--dry-run"],
    )
    assert r.exit_code == 2 and "not among the sources" in r.output
