"""The fine-tuning loop on a real KB, on SQLite and PostgreSQL: feedback through /answer →
the dataset preview → POST /v1/models/finetune (real sentence-transformers training of
the packaged MiniLM, one epoch on CPU) → a candidate in the registry with its lineage →
staged and rolled out to the KB → a new index version → the quality gate's decision,
recorded and consistent with its figures. On the way: the guard rails (too few pairs,
overlap with the gate's test set) and the request validation answer 422 with the figures.

The KB is 8 fictional-entity documents per language (en/es/ru, `tests/bench/data`): the
"train" questions about them play the users, the "heldout" ones are the gate's test set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.catalog.models import Chunk, Document
from eval.finetune_data import MIN_DEV_PAIRS, MIN_TRAIN_PAIRS
from tests.bench.qa import load_questions, render
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_decision, wait_for_documents, wait_job, wait_version
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.qa_kb import qa_subset

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = "all-MiniLM-L6-v2"
GATE = {
    "testset": "gate",
    "min_scores": {"recall@k": 0.3},
    "max_regression": 0.05,
    "metrics": ["recall@k", "mrr"],
    "params": {"mode": "dense", "top_k": 5},
}


@pytest.fixture
def client(tmp_path: Path, catalog_url: str):
    docs, _ = qa_subset(8)
    settings = make_settings(tmp_path / "data", database_url=catalog_url, redaction_enabled=False)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        r = c.post("/v1/kbs", json={"name": "loop", "embedding_model": BASE})
        assert r.status_code == 201, r.text
        upload(c, "loop", [(d["filename"], render(d)) for d in docs])
        wait_for_documents(c, "loop", expected=len(docs), timeout=600)
        names = {d["filename"] for d in docs}
        heldout = [q for q in load_questions("heldout") if q.filename in names]
        cases = [{"question": q.question, "reference_doc_ids": [q.filename]} for q in heldout]
        assert c.post("/v1/testsets", json={"name": "gate", "cases": cases}).status_code == 201
        assert c.put("/v1/kbs/loop/quality-gate", json=GATE).status_code == 200
        c.names = names  # type: ignore[attr-defined]
        yield c


def chunk_holding(c: TestClient, filename: str, answer: str) -> str:
    """What a reviewer does for a wrong answer: find the passage that holds the answer."""
    rt = c.app.state.runtime
    with rt.db.session() as s:
        rows = s.execute(
            select(Chunk.id, Chunk.text)
            .join(Document, Document.id == Chunk.document_id)
            .where(Document.filename == filename, Chunk.revision_id == Document.current_revision_id)
        ).all()
    return next(r.id for r in rows if answer.casefold() in r.text.casefold())


def give_feedback(c: TestClient, questions: list[Any]) -> dict[str, int]:
    """Each question asked once; a right first citation gets a thumbs-up, a wrong one a
    thumbs-down whose comment names the right chunk."""
    given = {"up": 0, "down": 0}
    for q in questions:
        r = c.post("/v1/kbs/loop/answer", json={"query": q.question, "generator": "extractive"})
        assert r.status_code == 200, r.text
        answer = r.json()
        cited = answer["citations"]
        if cited and cited[0]["filename"] == q.filename:
            body: dict[str, Any] = {"rating": 1}
            given["up"] += 1
        else:
            chunk = chunk_holding(c, q.filename, q.answer)
            body = {"rating": -1, "correction": q.answer, "comment": f"the answer is in {chunk}"}
            given["down"] += 1
        r = c.post(f"/v1/answers/{answer['id']}/feedback", json=body)
        assert r.status_code == 201, r.text
    return given


REQUEST = {"name": "minilm-loop", "base_model": BASE, "kb": "loop", "sources": ["feedback"]}


def check_validation_and_guard_rails(c: TestClient) -> None:
    # The base must be registered first.
    r = c.post("/v1/models/finetune", json=REQUEST)
    assert r.status_code == 404 and "register it first" in r.json()["error"]["message"]
    r = c.post(
        "/v1/models/registry",
        json={"kind": "embedding", "name": BASE, "source_type": "package", "source": BASE},
    )
    assert r.status_code == 201, r.text
    bad = [
        ({**REQUEST, "sources": ["rumours"]}, "sources"),
        ({**REQUEST, "sources": ["testsets"]}, "testsets"),
        ({**REQUEST, "epochs": 0}, "epochs"),
        ({**REQUEST, "learning_rate": 0.5}, "learning_rate"),
        ({**REQUEST, "name": "bad name"}, "name"),
        ({**REQUEST, "kb": "nope"}, "nope"),
    ]
    for body, word in bad:
        r = c.post("/v1/models/finetune", json=body)
        assert r.status_code in (404, 422), (body, r.text)
        assert word in r.text, (body, r.text)
    # Synthetic questions need the judge this server has not got (see
    # test_finetune_synthetic.py for the source itself).
    r = c.post("/v1/models/finetune", json={**REQUEST, "sources": ["synthetic"]})
    assert r.status_code == 409 and "RAGOPS_JUDGE_BASE_URL" in r.text, r.text
    # No feedback yet: too few pairs, refused with the figures.
    r = c.post("/v1/models/finetune", json=REQUEST)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "finetune_dataset_refused" and str(MIN_TRAIN_PAIRS) in err["message"]
    assert err["details"]["counts"]["train"] == 0
    preview = c.get("/v1/kbs/loop/finetune-dataset").json()
    assert preview["trainable"] is False and preview["counts"]["pairs"] == 0
    # The gate's own questions as training data: refused, whatever the count.
    r = c.post(
        "/v1/models/finetune", json={**REQUEST, "sources": ["testsets"], "testsets": ["gate"]}
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert "quality gate" in err["message"] and err["details"]["gate_overlap"] > 0
    assert c.get("/v1/models/registry/embedding/minilm-loop").status_code == 404


def check_margin_refusal(c: TestClient) -> None:
    """A run whose dev gain cannot reach the margin ends refused, with the figures, and
    registers nothing (one training step keeps it short)."""
    body = {**REQUEST, "name": "minilm-refused", "min_dev_gain": 1.0, "max_steps": 1}
    r = c.post("/v1/models/finetune", json=body)
    assert r.status_code == 202, r.text
    job = wait_job(c, r.json()["job_id"], timeout=900)
    run = c.get(r.json()["run"]).json()
    assert job["status"] == "failed" and run["status"] == "refused", run
    assert "does not beat the base" in job["error"] and "dev recall@5" in job["error"]
    assert run["metrics"]["min_gain"] == 1.0 and len(run["steps"]) == 1
    assert run["report"]["overall"]["questions"] == run["dataset"]["counts"]["dev"]
    assert c.get("/v1/models/registry/embedding/minilm-refused").status_code == 404


def test_feedback_to_gate_decision(client: TestClient) -> None:
    c = client
    check_validation_and_guard_rails(c)
    train = [q for q in load_questions("train") if q.filename in c.names]  # type: ignore[attr-defined]
    given = give_feedback(c, train)
    assert given["up"] + given["down"] == len(train)

    preview = c.get("/v1/kbs/loop/finetune-dataset", params={"sources": "feedback"}).json()
    counts = preview["counts"]
    assert preview["trainable"] is True, preview["refusal"]
    assert counts["pairs"] == len(train) and counts["train"] >= MIN_TRAIN_PAIRS
    assert counts["dev"] >= MIN_DEV_PAIRS
    assert set(counts["by_language"]) == {"en", "es", "ru"}
    assert sum(counts["by_source"].values()) == counts["pairs"]
    assert counts["by_source"].get("feedback_correction", 0) == given["down"]
    # Split by document: no document on both sides.
    sides: dict[str, set[str]] = {}
    for pair in preview["sample"]:
        sides.setdefault(pair["document_id"], set()).add(pair["split"])
    assert all(len(s) == 1 for s in sides.values())
    # Texts are the chunks as indexed.
    first = preview["sample"][0]
    assert first["positive"]["text"] and first["positive"]["chunk_id"]
    check_margin_refusal(c)

    r = c.post("/v1/models/finetune", json={**REQUEST, "epochs": 1, "batch_size": 16})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["poll"] == f"/v1/jobs/{accepted['job_id']}"
    assert accepted["dataset"]["counts"]["pairs"] == counts["pairs"]
    job = wait_job(c, accepted["job_id"], timeout=900)
    run = c.get(accepted["run"]).json()
    assert run["epochs"] and run["steps"], run
    assert all(s["loss"] > 0 for s in run["steps"])
    base, tuned = run["metrics"]["base"], run["metrics"]["tuned"]
    gain = run["metrics"]["gain"]
    assert gain == pytest.approx(tuned["recall@5"] - base["recall@5"], abs=1e-6)
    assert run["dataset"]["id"] == preview["id"]  # nothing changed in between
    # Measured on this split (tests/bench/data, 8 documents a language): the base's dev
    # recall@5 is below 1 and one epoch lifts it past the default margin.
    assert gain >= run["metrics"]["min_gain"], run["metrics"]
    assert job["status"] == "succeeded", job
    assert run["status"] == "succeeded" and run["model_name"] == "minilm-loop"

    model = c.get("/v1/models/registry/embedding/minilm-loop").json()
    assert model["stage"] == "candidate" and len(model["digest"]) == 64
    assert model["parent"]["name"] == BASE
    lineage = model["metadata"]["finetune"]
    base_row = c.get(f"/v1/models/registry/embedding/{BASE}").json()
    assert lineage["base_model"] == {
        "name": BASE,
        "digest": base_row["digest"],
        "source": base_row["source"],
    }
    assert lineage["dataset"]["id"] == run["dataset"]["id"]
    assert lineage["dataset"]["counts"]["train"] == counts["train"]
    assert lineage["hyperparameters"]["epochs"] == 1
    assert lineage["code_version"] != "unknown"
    assert lineage["dev_metrics"]["tuned"] == tuned
    # The base-vs-fine-tuned report on the dev split, per language and per question.
    report = run["report"]
    assert report["overall"]["questions"] == counts["dev"] == len(report["questions"])
    assert report["overall"]["base"]["recall@5"] == base["recall@5"]
    assert report["overall"]["tuned"]["recall@5"] == tuned["recall@5"]
    assert set(report["by_language"]) == set(base["by_language"])
    assert "report" not in lineage["dev_metrics"] and "base_ranks" not in run["metrics"]
    assert model["digest"] != base_row["digest"]

    # The existing rollout: staging, then production for the KB through its gate.
    r = c.post("/v1/models/registry/embedding/minilm-loop/stage", json={"stage": "staging"})
    assert r.status_code == 200, r.text
    r = c.post(
        "/v1/models/registry/embedding/minilm-loop/stage",
        json={"stage": "production", "kb": "loop", "actor": "ana"},
    )
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["index_version"] == 2
    version = wait_version(c, "loop", 2, timeout=600)
    assert version["embedding_model"] == model["source"]
    decided = wait_decision(c, pending["decision_id"], timeout=600)
    assert decided["outcome"] in ("promoted", "refused"), decided
    checks = decided["evidence"]["checks"]
    assert decided["passed"] is all(x["passed"] for x in checks)
    live = c.get("/v1/kbs/loop/versions").json()["live_version"]
    stage = c.get("/v1/models/registry/embedding/minilm-loop").json()["stage"]
    if decided["outcome"] == "promoted":
        assert live == 2 and stage == "production"
    else:
        assert live == 1 and stage == "staging"
    # What the closing note of issue 18 shows (run with -s): the lineage as registered,
    # the gate's decision, per-language dev figures before and after.
    final = c.get("/v1/models/registry/embedding/minilm-loop").json()
    print(
        "\nfine-tuned model:",
        json.dumps(
            {
                "name": final["name"],
                "stage": final["stage"],
                "digest": final["digest"],
                "parent": final["parent"],
                "lineage": final["metadata"]["finetune"],
                "decision": {k: decided[k] for k in ("outcome", "passed")},
                "checks": checks,
            },
            indent=1,
        ),
    )
