"""A/B tests on /answer end to end: the real app, the sample corpus indexed twice (version 1
and a small-chunk version 2), the extractive generator, feedback, eval runs run by the
in-process workers, and `ragops ab` on the same catalog."""

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from core.catalog.models import Answer
from tests.conftest import make_settings
from tests.utils.answers import corpus_client, parse_sse
from tests.utils.api import wait_eval_run, wait_version
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = [f"user-{i}" for i in range(40)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ab")
    with corpus_client(tmp, kb="kb") as c:
        r = c.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 48, "chunk_overlap": 8}})
        assert r.status_code == 202, r.text
        wait_version(c, "kb", 2)
        cases = [{"question": q, "reference_doc_ids": [f]} for q, f in QUERIES]
        r = c.post("/v1/testsets", json={"name": "samples", "cases": cases})
        assert r.status_code == 201, r.text
        yield c, tmp


@pytest.fixture(scope="module")
def client(env):
    return env[0]


def ask(client, query=QUERIES[0][0], **body):
    r = client.post("/v1/kbs/kb/answer", json={"query": query, **body})
    assert r.status_code == 200, r.text
    return r.json()


def create(client, name, arms, status=201):
    r = client.post("/v1/kbs/kb/ab-tests", json={"name": name, "arms": arms})
    assert r.status_code == status, r.text
    return r.json() if status == 201 else r.json()["error"]["message"]


CONTROL = {"name": "control", "weight": 50}
SMALL = {"name": "small", "weight": 50, "index_version": 2}


def test_create_is_validated(client):
    def error(arms, status, name="bad"):
        return create(client, name, arms, status=status)

    assert "greater than 0" in error([CONTROL, {**SMALL, "weight": 0}], 422)
    assert "weight" in error([CONTROL, {**SMALL, "weight": "lots"}], 422)
    assert "at least 2" in error([CONTROL], 422)
    assert "index version 9 not found" in error([CONTROL, {**SMALL, "index_version": 9}], 404)
    assert "same configuration" in error([CONTROL, {**SMALL, "index_version": 1}], 422)
    assert "used twice" in error([CONTROL, {**SMALL, "name": "control"}], 422)
    assert "unknown generator 'gpt9'" in error([CONTROL, {**SMALL, "generator": "gpt9"}], 422)
    assert "prompt 'nope' not found" in error([CONTROL, {**SMALL, "prompt": "nope"}], 404)
    assert "extra" in error([CONTROL, {**SMALL, "colour": "red"}], 422).lower()
    assert "use letters" in error([CONTROL, SMALL], 422, name="no spaces")
    assert "use letters" in error([CONTROL, {**SMALL, "name": "b/c"}], 422)
    r = client.post("/v1/kbs/nope/ab-tests", json={"name": "x", "arms": [CONTROL, SMALL]})
    assert r.status_code == 404
    assert client.get("/v1/kbs/kb/ab-tests/nope").status_code == 404
    assert client.get("/v1/kbs/kb/ab-tests", params={"status": "paused"}).status_code == 422
    # Nothing was created by the failures above.
    assert client.get("/v1/kbs/kb/ab-tests").json()["tests"] == []


def test_split_sticky_feedback_report_evaluate_and_stop(env):
    c, tmp = env
    test = create(c, "chunks", [CONTROL, SMALL])
    assert test["status"] == "running" and test["kb"] == "kb"
    # Frozen arms: the control's version, generator and prompt resolved at creation.
    assert test["arms"] == [
        {
            "name": "control",
            "weight": 50,
            "index_version": 1,
            "generator": "extractive",
            "prompt": "default@1",
        },
        {
            "name": "small",
            "weight": 50,
            "index_version": 2,
            "generator": "extractive",
            "prompt": "default@1",
        },
    ]
    version_of = {"control": 1, "small": 2}
    assert "'chunks' is already running" in create(
        c, "other", [CONTROL, {**SMALL, "generator": "local"}], status=409
    )
    assert "already exists" in create(c, "chunks", [CONTROL, SMALL], status=409)

    # Each user always gets the same arm, and that arm's index version.
    arm_of, served = {}, []
    for i, user in enumerate(USERS):
        for query, _ in (QUERIES[i % 6], QUERIES[(i + 1) % 6]):
            body = ask(c, query, user_id=user)
            assert body["ab_test"] == "chunks"
            assert body["index_version"] == version_of[body["arm"]]
            assert arm_of.setdefault(user, body["arm"]) == body["arm"]
            served.append(body)
    counts = {arm: list(arm_of.values()).count(arm) for arm in version_of}
    assert all(n >= 8 for n in counts.values()), counts  # 40 users at 50/50

    # A session id is sticky too; the user id wins over it.
    by_session = {ask(c, session_id="s-1")["arm"] for _ in range(3)}
    assert len(by_session) == 1
    assert ask(c, user_id=USERS[0], session_id="s-1")["arm"] == arm_of[USERS[0]]
    # Without either the request is still served by an arm (at random).
    anonymous = ask(c)
    assert anonymous["arm"] in version_of
    served += [anonymous]

    # Streaming and the OpenAI façade (`user`) follow the same assignment.
    r = c.post(
        "/v1/kbs/kb/answer", json={"query": QUERIES[1][0], "stream": True, "user_id": USERS[1]}
    )
    done = dict(parse_sse(r.text))["done"]
    assert done["arm"] == arm_of[USERS[1]] and done["ab_test"] == "chunks"
    assert done["index_version"] == version_of[arm_of[USERS[1]]]
    chat = {"model": "kb", "messages": [{"role": "user", "content": QUERIES[2][0]}]}
    r = c.post("/v1/chat/completions", json={**chat, "user": USERS[2]})
    assert r.status_code == 200, r.text
    assert r.json()["arm"] == arm_of[USERS[2]]
    assert r.json()["index_version"] == version_of[arm_of[USERS[2]]]

    # Pinning bypasses the test: served as asked, no arm, not counted.
    small_user = next(u for u, a in arm_of.items() if a == "small")
    control_user = next(u for u, a in arm_of.items() if a == "control")
    pinned = ask(c, user_id=small_user, index_version=1)
    assert pinned["index_version"] == 1 and "arm" not in pinned and "ab_test" not in pinned
    assert "arm" not in ask(c, user_id=small_user, generator="extractive")
    assert "arm" not in ask(c, user_id=small_user, prompt="default")
    r = c.post("/v1/chat/completions", json={**chat, "model": "kb@2", "user": control_user})
    assert r.json()["index_version"] == 2 and "arm" not in r.json()

    # The recorded answers carry the arm and the test id.
    rt = c.app.state.runtime
    with rt.db.session() as s:
        rows = {
            a.id: a
            for a in s.execute(select(Answer).where(Answer.ab_test_id == test["id"])).scalars()
        }
        assert s.get(Answer, pinned["id"]).ab_test_id is None
    expected_ids = {b["id"] for b in served}
    assert expected_ids <= set(rows)
    assert len(rows) == len(served) + 3 + 1 + 1 + 1  # session x3, user+session, stream, chat
    for b in served:
        assert rows[b["id"]].arm == b["arm"]
        assert rows[b["id"]].index_version == version_of[b["arm"]]
    assert c.get(f"/v1/answers/{served[0]['id']}").json()["arm"] == served[0]["arm"]

    # Feedback shows per arm.
    control_answers = [b["id"] for b in served if b["arm"] == "control"]
    small_answers = [b["id"] for b in served if b["arm"] == "small"]
    for answer_id, rating in [*((a, 1) for a in control_answers[:3]), (control_answers[3], -1)]:
        assert (
            c.post(f"/v1/answers/{answer_id}/feedback", json={"rating": rating}).status_code == 201
        )
    for answer_id in small_answers[:2]:
        assert c.post(f"/v1/answers/{answer_id}/feedback", json={"rating": 1}).status_code == 201
    c.post(f"/v1/answers/{pinned['id']}/feedback", json={"rating": -1})  # not in any arm

    report = c.get("/v1/kbs/kb/ab-tests/chunks").json()
    arms = {a["name"]: a for a in report["arms"]}
    assert sum(a["answers"] for a in arms.values()) == len(rows)
    for name, arm in arms.items():
        assert arm["answers"] == sum(1 for r in rows.values() if r.arm == name)
        assert arm["share"] == 0.5 and arm["mean_latency_ms"] > 0
        assert arm["eval"] is None
    control, small = arms["control"], arms["small"]
    assert (control["feedback"], control["thumbs_up"], control["thumbs_down"]) == (4, 3, 1)
    assert control["positive_rate"] == 0.75
    low, high = control["positive_rate_ci95"]
    assert 0.19 < low < 0.75 < high < 0.96
    assert (small["feedback"], small["thumbs_up"], small["thumbs_down"]) == (2, 2, 0)
    assert small["positive_rate"] == 1.0 and small["positive_rate_ci95"][1] == 1.0
    session_arm = next(iter(by_session))
    assert control["distinct_subjects"] == counts["control"] + (session_arm == "control")
    assert small["distinct_subjects"] == counts["small"] + (session_arm == "small")

    # One eval run per arm; their scores appear per arm once the workers ran them.
    r = c.post("/v1/kbs/kb/ab-tests/chunks/evaluate", json={"testset": "samples", "top_k": 5})
    assert r.status_code == 202, r.text
    runs = {x["arm"]: x["run"] for x in r.json()["runs"]}
    assert {a: run["key"]["index_version"] for a, run in runs.items()} == version_of
    assert all(run["key"]["params"]["top_k"] == 5 for run in runs.values())
    finished = {a: wait_eval_run(c, run["id"]) for a, run in runs.items()}
    report = c.get("/v1/kbs/kb/ab-tests/chunks", params={"testset": "samples"}).json()
    for arm in report["arms"]:
        run = finished[arm["name"]]
        assert arm["eval"]["run_id"] == run["id"]
        assert arm["eval"]["testset"] == "samples" and arm["eval"]["testset_version"] == 1
        assert arm["eval"]["scores"]["recall@5"] == run["aggregate"]["recall@5"]["mean"] > 0.5
    other = c.get("/v1/kbs/kb/ab-tests/chunks", params={"testset": "nope"}).json()
    assert all(a["eval"] is None for a in other["arms"])

    def eval_error(body, status):
        r = c.post("/v1/kbs/kb/ab-tests/chunks/evaluate", json=body)
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    before = len(c.get("/v1/evals", params={"kb": "kb"}).json()["runs"])
    assert "not found" in eval_error({"testset": "nope"}, 404)
    assert "no version 4" in eval_error({"testset": "samples", "testset_version": 4}, 404)
    assert "unknown metric" in eval_error({"testset": "samples", "metrics": ["nope"]}, 422)
    assert "top_k" in eval_error({"testset": "samples", "top_k": 1000}, 422)
    assert len(c.get("/v1/evals", params={"kb": "kb"}).json()["runs"]) == before
    r = c.post("/v1/kbs/kb/ab-tests/nope/evaluate", json={"testset": "samples"})
    assert r.status_code == 404

    # Stop ends assignment; the report stays and a new test may start.
    r = c.post("/v1/kbs/kb/ab-tests/chunks/stop")
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["stopped_at"]
    assert "already stopped" in c.post("/v1/kbs/kb/ab-tests/chunks/stop").json()["error"]["message"]
    after = ask(c, user_id=small_user)
    assert "arm" not in after and after["index_version"] == 1  # the live version
    assert c.get("/v1/kbs/kb/ab-tests/chunks").json()["arms"][0]["answers"] == control["answers"]
    listed = c.get("/v1/kbs/kb/ab-tests", params={"status": "stopped"}).json()["tests"]
    assert [t["name"] for t in listed] == ["chunks"]
    assert c.get("/v1/kbs/kb/ab-tests", params={"status": "running"}).json()["tests"] == []

    # A version serving an arm of a running test cannot be retired from under it.
    gen = create(
        c,
        "retired",
        [
            {"name": "a", "weight": 1, "index_version": 2},
            {"name": "b", "weight": 3, "index_version": 2, "generator": "local"},
        ],
    )
    assert [a["weight"] for a in gen["arms"]] == [1, 3]
    r = c.delete("/v1/kbs/kb/versions/2")
    assert r.status_code == 409 and "A/B test 'retired'" in r.json()["error"]["message"]
    assert c.post("/v1/kbs/kb/ab-tests/retired/stop").status_code == 200
    assert c.delete("/v1/kbs/kb/versions/2").status_code == 200
    assert ask(c, user_id="x")["index_version"] == 1


def test_cli_create_list_show_stop(env, monkeypatch):
    c, tmp = env
    settings = make_settings(tmp / "data", redaction_enabled=False)
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    # A second prompt, so the arms differ without loading a model.
    r = c.post("/v1/prompts", json={"name": "terse", "description": "same text, new name"})
    assert r.status_code == 201, r.text
    for t in c.get("/v1/kbs/kb/ab-tests", params={"status": "running"}).json()["tests"]:
        c.post(f"/v1/kbs/kb/ab-tests/{t['name']}/stop")
    runner = CliRunner()

    r = runner.invoke(
        cli.app, ["ab", "create", "kb", "cli-test", "--arm", "a:90", "--arm", "b:10:prompt=terse"]
    )
    assert r.exit_code == 0, r.output
    assert "A/B test cli-test running on kb" in r.stdout
    assert "b (10): v1 · extractive · terse@1" in r.stdout
    r = runner.invoke(cli.app, ["ab", "create", "kb", "x", "--arm", "a:1", "--arm", "b:1"])
    assert r.exit_code == 2 and "same configuration" in r.output
    r = runner.invoke(cli.app, ["ab", "create", "kb", "x", "--arm", "a:lots", "--arm", "b:1"])
    assert r.exit_code == 2 and "not a number" in r.output
    r = runner.invoke(cli.app, ["ab", "create", "kb", "x", "--arm", "a:1:colour=red"])
    assert r.exit_code == 2 and "key=value" in r.output
    spec = tmp / "spec.json"
    arms = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "prompt": "terse"}]
    spec.write_text(json.dumps({"arms": arms}))
    r = runner.invoke(cli.app, ["ab", "create", "kb", "x", "--spec", str(spec), "--arm", "a:1"])
    assert r.exit_code == 2 and "not both" in r.output
    r = runner.invoke(cli.app, ["ab", "create", "kb", "from-spec", "--spec", str(spec)])
    assert r.exit_code == 2 and "'cli-test' is already running" in r.output

    body = ask(c, user_id="cli-user")
    assert body["ab_test"] == "cli-test"
    assert c.post(f"/v1/answers/{body['id']}/feedback", json={"rating": 1}).status_code == 201
    r = runner.invoke(cli.app, ["ab", "show", "kb", "cli-test", "--json"])
    assert r.exit_code == 0, r.output
    arms = {a["name"]: a for a in json.loads(r.stdout)["arms"]}
    assert arms[body["arm"]]["answers"] == 1 and arms[body["arm"]]["thumbs_up"] == 1
    r = runner.invoke(cli.app, ["ab", "show", "kb", "cli-test"])
    assert r.exit_code == 0 and "cli-test" in r.stdout and "90%" in r.stdout
    r = runner.invoke(cli.app, ["ab", "list", "kb"])
    assert r.exit_code == 0 and "cli-test" in r.stdout and "running" in r.stdout
    r = runner.invoke(cli.app, ["ab", "stop", "kb", "cli-test"])
    assert r.exit_code == 0 and "stopped" in r.stdout
    r = runner.invoke(cli.app, ["ab", "stop", "kb", "cli-test"])
    assert r.exit_code == 2 and "already stopped" in r.output
    r = runner.invoke(cli.app, ["ab", "show", "kb", "nope"])
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(cli.app, ["ab", "create", "kb", "from-spec", "--spec", str(spec)])
    assert r.exit_code == 0, r.output
    runner.invoke(cli.app, ["ab", "stop", "kb", "from-spec"])
