"""Quality gates and eval schedules on a real KB (12 QA documents in en/es/ru, 36
questions): a genuinely worse embedding model is refused with the evidence, force is
recorded, an equal version passes; on_ready and nightly schedules queue real runs."""

import time

import pytest

from eval.scheduler import EVAL_JOB_PREFIX, SchedulerService
from tests.utils.api import wait_decision, wait_eval_run, wait_version
from tests.utils.models import make_derived_model
from tests.utils.qa_kb import qa_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATE = {
    "testset": "qa",
    "min_scores": {"recall@k": 0.5},
    "max_regression": 0.02,
    "metrics": ["recall@k", "mrr", "ndcg@k"],
    # Dense only: hybrid's BM25 half would hide what the embedding model does.
    "params": {"mode": "dense", "top_k": 3},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with qa_client(tmp_path_factory.mktemp("gates"), kb="qa", docs_per_language=4) as c:
        yield c


def live(c):
    return c.get("/v1/kbs/qa/versions").json()["live_version"]


def run_count(c):
    return len(c.get("/v1/evals", params={"kb": "qa"}).json()["runs"])


def test_gate_validation(client):
    c = client
    assert c.get("/v1/kbs/qa/quality-gate").status_code == 404
    r = c.put("/v1/kbs/qa/quality-gate", json={"testset": "qa"})
    assert r.status_code == 422 and "min_scores" in r.json()["error"]["message"]
    r = c.put("/v1/kbs/qa/quality-gate", json={**GATE, "min_scores": {"accuracy": 0.5}})
    assert r.status_code == 422 and "accuracy" in r.json()["error"]["message"]
    r = c.put("/v1/kbs/qa/quality-gate", json={**GATE, "testset": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    r = c.put("/v1/kbs/qa/quality-gate", json={**GATE, "params": {"mode": "fuzzy"}})
    assert r.status_code == 422 and "mode" in r.json()["error"]["message"]
    r = c.put("/v1/kbs/qa/quality-gate", json={**GATE, "max_regression": 2})
    assert r.status_code == 422
    r = c.put("/v1/kbs/qa/quality-gate", json={**GATE, "actor": "ana"})
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == "ana" and r.json()["max_regression"] == 0.02
    assert c.get("/v1/kbs/qa/quality-gate").json()["min_scores"] == {"recall@k": 0.5}


def test_gate_refuses_a_worse_version_then_force_then_an_equal_one_passes(client, tmp_path):
    c = client
    assert c.put("/v1/kbs/qa/quality-gate", json=GATE).status_code == 200
    assert live(c) == 1
    # A bad candidate model: CLS pooling squeezed through a random 8-dimension projection.
    model = make_derived_model(tmp_path / "squeezed", out_features=8)
    r = c.post(
        "/v1/kbs/qa/versions",
        json={"embedding_model": str(model), "chunking": {"chunk_size": 120}},
    )
    assert r.status_code == 202, r.text
    wait_version(c, "qa", 2)

    # No runs yet: the gate queues one for the candidate and one for live.
    before = run_count(c)
    r = c.post("/v1/kbs/qa/versions/2/promote", json={"actor": "ana"})
    assert r.status_code == 202, r.text
    pending = r.json()["decision"]
    assert pending["outcome"] == "pending" and pending["baseline_version"] == 1
    assert run_count(c) == before + 2
    decided = wait_decision(c, pending["id"])
    assert decided["outcome"] == "refused" and decided["passed"] is False
    assert live(c) == 1 and c.get("/v1/kbs/qa/versions/2").json()["status"] == "ready"
    checks = {(x["metric"], x["rule"].split()[0]): x for x in decided["evidence"]["checks"]}
    mrr = checks[("mrr", "no")]
    assert not mrr["passed"] and mrr["baseline"] - mrr["value"] > 0.02
    assert mrr["value"] == pytest.approx(
        c.get(f"/v1/evals/{decided['eval_run_id']}").json()["aggregate"]["mrr"]["mean"]
    )

    # Asking again reuses both finished runs: refused at once, 409 with the evidence.
    r = c.post("/v1/kbs/qa/versions/2/promote")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "quality_gate_failed" and "mrr" in err["message"]
    assert err["details"]["eval_run_id"] == decided["eval_run_id"]
    assert run_count(c) == before + 2

    # Force needs who and why, and records both.
    r = c.post("/v1/kbs/qa/versions/2/promote", json={"force": True})
    assert r.status_code == 422 and "actor" in r.json()["error"]["message"]
    r = c.post(
        "/v1/kbs/qa/versions/2/promote",
        json={"force": True, "actor": "ops-bob", "reason": "incident 42: need the new model"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["outcome"] == "overridden" and live(c) == 2
    assert c.post("/v1/kbs/qa/rollback").json()["number"] == 1

    # A version built like live passes: no metric drops.
    r = c.post("/v1/kbs/qa/versions", json={})
    wait_version(c, "qa", 3)
    r = c.post("/v1/kbs/qa/versions/3/promote", json={"actor": "ana"})
    assert r.status_code in (200, 202), r.text
    decided = wait_decision(c, r.json()["decision"]["id"])
    assert decided["outcome"] == "promoted" and decided["passed"] is True, decided["evidence"]
    assert live(c) == 3

    history = c.get("/v1/kbs/qa/decisions").json()["decisions"]
    assert [(d["subject"], d["outcome"], d["actor"]) for d in history] == [
        ("v3", "promoted", "ana"),
        ("v2", "overridden", "ops-bob"),
        ("v2", "refused", None),
        ("v2", "refused", "ana"),
    ]
    assert history[1]["forced"] and history[1]["reason"].startswith("incident 42")


def test_schedules_validation_and_on_ready(client):
    c = client
    bad = {"name": "n", "kind": "live_nightly", "testset": "qa", "cron": "61 * * * *"}
    r = c.post("/v1/schedules", json=bad)
    assert r.status_code == 422 and "crontab" in r.json()["error"]["message"]
    r = c.post("/v1/schedules", json={**bad, "kind": "weekly", "cron": None})
    assert r.status_code == 422 and "live_nightly" in r.json()["error"]["message"]
    r = c.post("/v1/schedules", json={**bad, "testset": "missing", "cron": None})
    assert r.status_code == 404
    r = c.post(
        "/v1/schedules",
        json={
            "name": "new",
            "kind": "on_ready",
            "testset": "qa",
            "kb": "qa",
            "params": {"top_k": 3},
        },
    )
    assert r.status_code == 201, r.text
    assert (
        c.post(
            "/v1/schedules", json={"name": "new", "kind": "on_ready", "testset": "qa"}
        ).status_code
        == 409
    )

    # A version that becomes ready is evaluated without anyone asking.
    r = c.post("/v1/kbs/qa/versions", json={"chunking": {"chunk_size": 64}})
    number = r.json()["number"]
    wait_version(c, "qa", number)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = c.get("/v1/evals", params={"kb": "qa"}).json()["runs"]
        mine = [x for x in runs if x["key"]["index_version"] == number]
        if mine:
            break
        time.sleep(0.3)
    assert mine and mine[0]["key"]["params"]["top_k"] == 3


def test_nightly_schedule_runs_and_syncs_into_the_scheduler(client):
    c = client
    rt = c.app.state.runtime
    r = c.post(
        "/v1/schedules",
        json={"name": "nightly", "kind": "live_nightly", "testset": "qa", "kb": "qa"},
    )
    assert r.status_code == 201 and r.json()["cron"] == "0 2 * * *"
    r = c.post("/v1/schedules/nightly/run")
    assert r.status_code == 202 and len(r.json()["eval_run_ids"]) == 1
    run = c.get(f"/v1/evals/{r.json()['eval_run_ids'][0]}").json()
    assert run["key"]["index_version"] == live(c)
    job = c.get(f"/v1/jobs/{run['job_id']}").json()
    assert job["kind"] == "eval_run" and job["status"] in {"queued", "running", "succeeded"}
    assert c.get("/v1/jobs/nope").status_code == 404
    wait_eval_run(c, run["id"])
    assert c.get(f"/v1/jobs/{run['job_id']}").json()["status"] == "succeeded"
    # Runs are listed newest first, a page at a time.
    page = c.get("/v1/evals", params={"kb": "qa", "limit": 2}).json()["runs"]
    assert len(page) == 2 and page[0]["id"] == run["id"]
    rest = c.get("/v1/evals", params={"kb": "qa", "limit": 2, "offset": 1}).json()["runs"]
    assert rest[0]["id"] == page[1]["id"]
    assert c.get("/v1/evals", params={"limit": 0}).status_code == 422

    service = SchedulerService(rt)
    scheduler = service.build(blocking=False)
    scheduler.start(paused=True)
    try:
        jobs = {j["id"]: j for j in service.jobs()}
        nightly = next(j for j in jobs if j.startswith(EVAL_JOB_PREFIX))
        assert "hour='2'" in jobs[nightly]["trigger"]
        r = c.patch("/v1/schedules/nightly", json={"cron": "30 4 * * 1"})
        assert r.status_code == 200, r.text
        assert service.tick("sync")
        assert "hour='4'" in scheduler.get_job(nightly).trigger.__str__()
        listed = c.get("/v1/schedules").json()
        assert {j["id"] for j in listed["system"]} >= {"ragops-gc", "ragops-reconcile"}
        assert next(s for s in listed["schedules"] if s["name"] == "nightly")["next_run_time"]
        c.patch("/v1/schedules/nightly", json={"enabled": False})
        service.tick("sync")
        assert scheduler.get_job(nightly) is None
    finally:
        scheduler.shutdown(wait=False)
    assert c.delete("/v1/schedules/nightly").status_code == 204
    assert c.get("/v1/schedules/nightly").status_code == 404
