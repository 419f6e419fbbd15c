"""A/B tests against the catalog on SQLite and the real PostgreSQL: creation rules, routing
from the stored arms, the per-arm report's SQL aggregates and eval-run matching, stop."""

from datetime import timedelta
from types import SimpleNamespace

import pytest

from core.catalog.models import (
    Answer,
    AnswerFeedback,
    EvalRun,
    IndexVersion,
    JobStatus,
    KnowledgeBase,
    TestSet,
    VersionStatus,
    utcnow,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from eval import ab as ab_tests
from retrieval import ab
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(catalog_url, tmp_path):
    db = Database(catalog_url)
    db.migrate()
    yield SimpleNamespace(db=db, settings=make_settings(tmp_path / "data"))
    db.dispose()


@pytest.fixture
def kb(rt):
    """KB 'docs': v1 live, v2 ready, v3 still building."""
    with rt.db.session() as s:
        row = KnowledgeBase(id="kb1", name="docs")
        s.add(row)
        s.flush()
        for number, status in [
            (1, VersionStatus.LIVE),
            (2, VersionStatus.READY),
            (3, VersionStatus.BUILDING),
        ]:
            s.add(
                IndexVersion(
                    kb_id=row.id,
                    number=number,
                    status=status,
                    embedding_model="m",
                    dimension=3,
                    config={},
                    config_hash=str(number) * 64,
                )
            )
        s.expunge(row)
    return row


ARMS = [{"name": "control", "weight": 3}, {"name": "v2", "weight": 1, "index_version": 2}]


def test_create_rules(rt, kb):
    with pytest.raises(Conflict, match="index version 3 of 'docs' is building"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "index_version": 3}])
    with pytest.raises(NotFound, match="index version 7 not found"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "index_version": 7}])
    with pytest.raises(InvalidInput, match="weight must be positive"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "weight": -1}])
    with pytest.raises(InvalidInput, match="must be a number"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "weight": True}])
    with pytest.raises(InvalidInput, match="weight is required"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {"name": "x", "index_version": 2}])
    with pytest.raises(InvalidInput, match="index_version must be an integer"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "index_version": "2"}])
    with pytest.raises(InvalidInput, match="2 to 10 arms"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0]])
    with pytest.raises(InvalidInput, match="unknown field 'colour'"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=[ARMS[0], {**ARMS[1], "colour": 1}])

    test = ab_tests.create_test(rt, kb=kb, name="t", arms=ARMS, created_by="ana")
    assert test.status == "running" and test.created_by == "ana"
    assert test.arms == [
        {
            "name": "control",
            "weight": 3,
            "index_version": 1,
            "generator": "extractive",
            "prompt": "default@1",
        },
        {
            "name": "v2",
            "weight": 1,
            "index_version": 2,
            "generator": "extractive",
            "prompt": "default@1",
        },
    ]
    other = [ARMS[0], {**ARMS[1], "generator": "local"}]
    with pytest.raises(Conflict, match="'t' is already running on 'docs'; stop it first"):
        ab_tests.create_test(rt, kb=kb, name="u", arms=other)
    with pytest.raises(Conflict, match="named 't' already exists in 'docs' \\(running\\)"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=other)

    stopped = ab_tests.stop_test(rt, kb=kb, name="t")
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    with pytest.raises(Conflict, match="already stopped"):
        ab_tests.stop_test(rt, kb=kb, name="t")
    with pytest.raises(Conflict, match="already exists in 'docs' \\(stopped\\)"):
        ab_tests.create_test(rt, kb=kb, name="t", arms=other)
    assert ab_tests.create_test(rt, kb=kb, name="u", arms=other).status == "running"
    with rt.db.session() as s:
        assert [t.name for t in ab_tests.list_tests(session=s, kb=kb)] == ["u", "t"]
        assert [t.name for t in ab_tests.list_tests(session=s, kb=kb, status="stopped")] == ["t"]
        with pytest.raises(InvalidInput, match="status must be"):
            ab_tests.list_tests(session=s, kb=kb, status="paused")
        with pytest.raises(NotFound, match="A/B test 'nope' not found in 'docs'"):
            ab_tests.get_test(session=s, kb=kb, name="nope")


def test_route_follows_the_stored_arms(rt, kb):
    assert ab.route(rt, kb=kb, user_id="u1").arm is None  # no test yet
    test = ab_tests.create_test(rt, kb=kb, name="t", arms=ARMS)
    seen = {}
    for i in range(200):
        routed = ab.route(rt, kb=kb, user_id=f"u{i}")
        assert routed.test_id == test.id and routed.test_name == "t" and routed.sticky
        assert routed.index_version == {"control": 1, "v2": 2}[routed.arm]
        assert (routed.generator, routed.prompt, routed.prompt_version) == (
            "extractive",
            "default",
            1,
        )
        assert "u" not in routed.subject and len(routed.subject) == 32  # hashed, not the id
        seen[f"u{i}"] = routed.arm
    assert 0.6 < list(seen.values()).count("control") / 200 < 0.9  # weight 3:1
    assert all(ab.route(rt, kb=kb, user_id=u).arm == arm for u, arm in list(seen.items())[:20])
    assert ab.route(rt, kb=kb, session_id="s").sticky
    assert not ab.route(rt, kb=kb).sticky and ab.route(rt, kb=kb).arm in {"control", "v2"}
    for pins in ({"index_version": 1}, {"generator": "local"}, {"prompt": "default"}):
        routed = ab.route(rt, kb=kb, user_id="u1", **pins)
        assert routed.arm is None and routed.test_id is None
    assert ab.route(rt, kb=kb, user_id="u1", index_version=2).index_version == 2

    with rt.db.session() as s:
        s.query(IndexVersion).filter_by(kb_id=kb.id, number=2).update(
            {"status": VersionStatus.RETIRED}
        )
    v2_user = next(u for u, arm in seen.items() if arm == "v2")
    control_user = next(u for u, arm in seen.items() if arm == "control")
    with pytest.raises(Conflict, match="A/B test 't' arm 'v2' serves index version 2"):
        ab.route(rt, kb=kb, user_id=v2_user)
    assert ab.route(rt, kb=kb, user_id=control_user).arm == "control"
    ab_tests.stop_test(rt, kb=kb, name="t")
    assert ab.route(rt, kb=kb, user_id=v2_user).arm is None


def _eval_run(s, ts, *, index_version, prompt_version=1, status=JobStatus.SUCCEEDED, at, recall):
    s.add(
        EvalRun(
            testset_id=ts.id,
            kb_id="kb1",
            index_version=index_version,
            embedding_model="m",
            generator="extractive",
            prompt_name="default",
            prompt_version=prompt_version,
            params={"top_k": 5, "mode": "hybrid"},
            key_hash=f"{index_version}-{prompt_version}-{recall}",
            status=status,
            question_count=2,
            aggregate={"recall@5": {"mean": recall, "count": 2}},
            created_at=at,
            finished_at=at,
        )
    )


def test_report_aggregates_per_arm(rt, kb):
    test = ab_tests.create_test(rt, kb=kb, name="t", arms=ARMS)
    t0 = utcnow()
    with rt.db.session() as s:
        # control: 3 answers (latency 10, 20, 30) with 3 thumbs up and 1 down on them;
        # v2: 1 answer with no feedback; one answer outside the test with feedback.
        answers = []
        for arm, latency in [("control", 10), ("control", 20), ("control", 30), ("v2", 5)]:
            row = Answer(
                kb_id=kb.id,
                query="q",
                answer="a",
                generator="extractive",
                prompt_name="default",
                prompt_version=1,
                index_version=1 if arm == "control" else 2,
                latency_ms=latency,
                arm=arm,
                ab_test_id=test.id,
            )
            s.add(row)
            answers.append(row)
        outside = Answer(
            kb_id=kb.id,
            query="q",
            answer="a",
            generator="extractive",
            prompt_name="default",
            prompt_version=1,
        )
        s.add(outside)
        s.flush()
        for answer, rating in [(0, 1), (0, 1), (1, 1), (2, -1)]:
            s.add(AnswerFeedback(answer_id=answers[answer].id, rating=rating))
        s.add(AnswerFeedback(answer_id=outside.id, rating=-1))
        smoke = TestSet(name="smoke", version=1, case_count=2)
        other = TestSet(name="other", version=1, case_count=2)
        s.add_all([smoke, other])
        s.flush()
        _eval_run(s, smoke, index_version=1, at=t0 - timedelta(hours=2), recall=0.5)
        _eval_run(s, smoke, index_version=1, at=t0 - timedelta(hours=1), recall=0.75)
        _eval_run(s, smoke, index_version=1, status=JobStatus.FAILED, at=t0, recall=0.0)
        _eval_run(s, smoke, index_version=1, prompt_version=2, at=t0, recall=0.1)
        _eval_run(s, other, index_version=1, at=t0 + timedelta(minutes=1), recall=0.9)
        _eval_run(s, smoke, index_version=2, at=t0, recall=1.0)

    result = ab_tests.report(rt, kb=kb, name="t")
    control, v2 = result["arms"]
    assert result["test"].id == test.id
    assert (control["answers"], control["mean_latency_ms"]) == (3, 20.0)
    assert (control["feedback"], control["thumbs_up"], control["thumbs_down"]) == (4, 3, 1)
    assert control["positive_rate"] == 0.75
    assert [round(v, 4) for v in control["positive_rate_ci95"]] == [0.3006, 0.9544]
    assert (control["share"], v2["share"]) == (0.75, 0.25)
    assert (v2["answers"], v2["feedback"], v2["positive_rate"], v2["positive_rate_ci95"]) == (
        1,
        0,
        None,
        None,
    )
    # Latest succeeded run of exactly the arm's configuration, of any test set...
    assert control["eval"]["testset"] == "other" and control["eval"]["scores"] == {"recall@5": 0.9}
    assert v2["eval"]["scores"] == {"recall@5": 1.0} and v2["eval"]["params"]["top_k"] == 5
    # ...or of the one asked for.
    smoke_only = ab_tests.report(rt, kb=kb, name="t", testset="smoke")["arms"]
    assert smoke_only[0]["eval"]["scores"] == {"recall@5": 0.75}
    assert smoke_only[0]["eval"]["testset_version"] == 1
    assert all(a["eval"] is None for a in ab_tests.report(rt, kb=kb, name="t", testset="x")["arms"])
