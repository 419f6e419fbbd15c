"""Controlling a fine-tuning job, on a real KB with the packaged MiniLM as the base:

- cancel: `POST /v1/models/finetune/{job_id}/cancel` stops a running job between two
  training steps; the run ends `cancelled`, the job failed, and nothing is registered;
- resume: a job whose attempt dies right after epoch 1's checkpoint (an exception from
  the checkpoint step, the way a crash ends an attempt) is retried by the job queue and
  trains epoch 2 only, from the checkpoint; its model equals, weight for weight, the
  model of the same request run without interruption;
- the base-vs-fine-tuned report on the dev split (`report` of the run), per language and
  per question, consistent with the run's figures, and printed by `ragops finetune
  --wait`.

Data: 6 fictional-entity documents per language (`tests/bench/data`, one chunk each) and
a test set asking all their questions (source `testsets`), so no answers are generated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file
from sqlalchemy import select
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from api.cli import helpers as cli_helpers
from core.catalog.models import Chunk, Document
from core.config import Settings
from eval import finetune
from tests.bench.qa import load_questions, render
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents, wait_job
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.qa_kb import qa_subset

# Two 2-epoch trainings in one test: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

BASE = "all-MiniLM-L6-v2"
KB = "ctl"
REQUEST: dict[str, Any] = {
    "base_model": BASE,
    "kb": KB,
    "sources": ["testsets"],
    "testsets": ["ft"],
    "batch_size": 8,
    # Register whatever the dev figures say: these tests are about control, not gain.
    "min_dev_gain": -1.0,
}


@contextmanager
def kb_client(tmp: Path) -> Iterator[tuple[TestClient, Settings]]:
    docs, _ = qa_subset(6)
    # The production lease (60 s), not the tests' 5 s: on a loaded machine a training
    # attempt must not lose its job to a late heartbeat (these tests are about resuming
    # after a crash, not about leases).
    settings = make_settings(tmp / "data", redaction_enabled=False, job_lease_seconds=60)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": KB, "embedding_model": BASE}).status_code == 201
        upload(c, KB, [(d["filename"], render(d)) for d in docs])
        wait_for_documents(c, KB, expected=len(docs), timeout=600)
        chunks = chunk_texts(c)
        cases = [
            {
                "question": q.question,
                "reference_doc_ids": [q.filename],
                # The passage holding the answer, as a reviewer would point it out.
                "reference_contexts": [
                    next(t for t in chunks[q.filename] if q.answer.casefold() in t.casefold())
                ],
            }
            for q in load_questions()
            if q.filename in chunks
        ]
        assert c.post("/v1/testsets", json={"name": "ft", "cases": cases}).status_code == 201
        r = c.post(
            "/v1/models/registry",
            json={"kind": "embedding", "name": BASE, "source_type": "package", "source": BASE},
        )
        assert r.status_code == 201, r.text
        yield c, settings


def chunk_texts(c: TestClient) -> dict[str, list[str]]:
    """The live chunks' texts of each document of the KB, by filename."""
    with c.app.state.runtime.db.session() as s:
        rows = s.execute(
            select(Document.filename, Chunk.text)
            .join(Document, Document.id == Chunk.document_id)
            .where(Chunk.revision_id == Document.current_revision_id)
        ).all()
    out: dict[str, list[str]] = {}
    for filename, text in rows:
        out.setdefault(filename, []).append(text)
    return out


def start(c: TestClient, **body: Any) -> dict[str, Any]:
    r = c.post("/v1/models/finetune", json={**REQUEST, **body})
    assert r.status_code == 202, r.text
    return r.json()


def test_cancel_stops_a_running_job_between_steps(tmp_path: Path) -> None:
    with kb_client(tmp_path) as (c, _):
        # Batches of 2 over 20 epochs: hundreds of steps, far more than the time the
        # cancel takes to arrive.
        accepted = start(c, name="minilm-cancelled", epochs=20, batch_size=2)
        run_url = accepted["run"]
        deadline = time.monotonic() + 300
        while not (run := c.get(run_url).json())["steps"]:
            assert run["status"] in ("queued", "running"), run
            assert time.monotonic() < deadline, f"no training step recorded: {run}"
            time.sleep(0.1)
        assert run["status"] == "running"

        r = c.post(f"/v1/models/finetune/{accepted['job_id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["cancel_requested"] is True

        job = wait_job(c, accepted["job_id"])
        run = c.get(run_url).json()
        assert job["status"] == "failed" and "cancelled at epoch" in job["error"], job
        assert run["status"] == "cancelled" and run["finished_at"], run
        assert run["error"].startswith("cancelled at epoch")
        # It stopped between steps, long before the end of its 20 epochs.
        train = run["dataset"]["counts"]["train"]
        assert 1 <= len(run["steps"]) < 20 * train // 2
        assert run["model_name"] is None and run["report"] is None
        assert c.get("/v1/models/registry/embedding/minilm-cancelled").status_code == 404
        rt = c.app.state.runtime
        assert not (finetune.run_dir(rt, accepted["job_id"]) / finetune.FINAL).exists()
        # An ended run cannot be cancelled again; the name is free for a new run.
        r = c.post(f"/v1/models/finetune/{accepted['job_id']}/cancel")
        assert r.status_code == 409 and "already ended (cancelled)" in r.text


def _weights(c: TestClient, name: str) -> dict[str, torch.Tensor]:
    model = c.get(f"/v1/models/registry/embedding/{name}").json()
    (weights,) = Path(model["source"]).rglob("model.safetensors")
    return load_file(weights)


def check_report(run: dict[str, Any]) -> None:
    """The run's report agrees with its own questions and with the run's figures."""
    report, metrics = run["report"], run["metrics"]
    assert "base_ranks" not in metrics and "report" not in metrics
    questions = report["questions"]
    assert report["split"] == "dev" and len(questions) == run["dataset"]["counts"]["dev"]
    assert report["overall"]["questions"] == len(questions)
    assert set(report["by_language"]) == {"en", "es", "ru"}
    for side, key in (("base", "rank_before"), ("tuned", "rank_after")):
        hits = sum(q[key] <= 5 for q in questions) / len(questions)
        assert report["overall"][side]["recall@5"] == pytest.approx(hits, abs=1e-4)
        assert report["overall"][side]["recall@5"] == metrics[side]["recall@5"]
        assert report["overall"][side]["mrr@10"] == metrics[side]["mrr@10"]
    for lang, figures in report["by_language"].items():
        mine = [q for q in questions if q["language"] == lang]
        assert figures["questions"] == len(mine)
        assert figures["improved"] + figures["worsened"] + figures["unchanged"] == len(mine)
        gained = sum(q["hit@5_after"] and not q["hit@5_before"] for q in mine)
        assert figures["hit@5_gained"] == gained
        assert figures["tuned"]["recall@5"] == metrics["tuned"]["by_language"][lang]["recall@5"]
    for q in questions:
        assert q["rank_before"] >= 1 and q["rank_after"] >= 1
        assert q["hit@5_before"] is (q["rank_before"] <= 5)
        assert q["hit@5_after"] is (q["rank_after"] <= 5)


def test_resume_after_a_crash_trains_the_rest_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite only: it trains three models (~80 s). A fine-tuning job's catalog rows,
    # retries and leases on PostgreSQL are covered by test_finetune_loop.py[postgresql]
    # and the job tests (tests/integration/core/test_jobs.py).
    real_checkpoint = finetune._checkpoint
    checkpoints: list[tuple[str, int]] = []
    crash_in: set[str] = set()  # job ids whose first epoch-1 checkpoint "crashes"

    def crash_after_epoch_1(model, optimizer, scheduler, folder, done, step, dataset_id):  # type: ignore[no-untyped-def]
        real_checkpoint(model, optimizer, scheduler, folder, done, step, dataset_id)
        checkpoints.append((folder.name, done))
        if folder.name in crash_in and done == 1:
            crash_in.discard(folder.name)
            raise RuntimeError("simulated crash right after the checkpoint of epoch 1")

    monkeypatch.setattr(finetune, "_checkpoint", crash_after_epoch_1)
    with kb_client(tmp_path) as (c, settings):
        rt = c.app.state.runtime
        resumed = start(c, name="minilm-resumed", epochs=2)
        # Set long before epoch 1 ends (the base is measured first).
        crash_in.add(resumed["job_id"])
        job = wait_job(c, resumed["job_id"])
        run = c.get(resumed["run"]).json()
        assert job["status"] == "succeeded", (job, run)
        assert job["attempts"] == 2, job
        assert "simulated crash" not in (run["error"] or "")
        # Epoch 1 was checkpointed once (attempt 1), epoch 2 once (attempt 2): the retry
        # did not train epoch 1 again.
        mine = [done for name, done in checkpoints if name == resumed["job_id"]]
        assert mine == [1, 2], checkpoints
        assert [e["epoch"] for e in run["epochs"]] == [1, 2]
        # The loss curve keeps epoch 1's steps from the first attempt, then epoch 2's.
        steps = [(s["epoch"], s["step"]) for s in run["steps"]]
        assert steps == sorted(steps) and {e for e, _ in steps} == {1, 2}
        assert [s for _, s in steps] == list(range(1, len(steps) + 1))

        plain = start(c, name="minilm-plain", epochs=2)
        job = wait_job(c, plain["job_id"])
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        other = c.get(plain["run"]).json()
        assert run["dataset"]["id"] == other["dataset"]["id"]
        assert [(s["step"], s["loss"]) for s in run["steps"]] == [
            (s["step"], s["loss"]) for s in other["steps"]
        ]
        assert [e["dev"] for e in run["epochs"]] == [e["dev"] for e in other["epochs"]]
        a, b = _weights(c, "minilm-resumed"), _weights(c, "minilm-plain")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), "the resumed model differs"
        # ... and training did change the base model.
        base = c.get(f"/v1/models/registry/embedding/{BASE}").json()
        assert (
            c.get("/v1/models/registry/embedding/minilm-resumed").json()["digest"]
            != (base["digest"])
        )
        # Checkpoints are removed once the model is registered.
        assert not (finetune.run_dir(rt, resumed["job_id"]) / finetune.CHECKPOINTS).exists()

        check_report(run)
        assert run["report"] == {**other["report"]}

    # The CLI trains here and prints the same report (no server running).
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    monkeypatch.setattr(cli_helpers.console, "_width", 250)  # no wrapped table cells
    r = CliRunner().invoke(
        cli.app,
        [
            "finetune",
            "minilm-cli",
            "--base-model",
            BASE,
            "--kb",
            KB,
            "--source",
            "testsets",
            "--testset",
            "ft",
            "--batch-size",
            "8",
            "--max-steps",
            "2",
            "--min-dev-gain",
            "-1",
            "--wait",
        ],
    )
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "base → fine-tuned on the dev split" in out
    assert "rank up / down / same" in out and "rank before" in out
    assert "registered candidate 'minilm-cli'" in out
    for lang in ("en", "es", "ru", "all"):
        assert f"│ {lang} " in out, out
