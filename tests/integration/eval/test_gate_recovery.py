"""A decision a crashed process left `deciding` is decided again, once it is stale, on
SQLite and PostgreSQL; a fresh one is left to the process that holds it."""

from datetime import timedelta

import pytest

from api.runtime import Runtime
from core.catalog.models import (
    IndexVersion,
    KnowledgeBase,
    PromotionDecision,
    VersionStatus,
    utcnow,
)
from eval import gates
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(tmp_path, catalog_url):
    runtime = Runtime(
        make_settings(tmp_path / "data", database_url=catalog_url, workers=0),
        components=SHARED_COMPONENTS,
    )
    runtime.db.migrate()
    yield runtime
    runtime.close()


def _deciding(rt, *, age_seconds: float) -> tuple[str, str]:
    with rt.db.session() as s:
        kb = KnowledgeBase(name="k", config={})
        s.add(kb)
        s.flush()
        for number, status in ((1, VersionStatus.LIVE), (2, VersionStatus.READY)):
            s.add(
                IndexVersion(
                    kb_id=kb.id,
                    number=number,
                    status=status,
                    embedding_model="m",
                    dimension=4,
                    config={},
                    config_hash="h",
                )
            )
        since = utcnow() - timedelta(seconds=age_seconds)
        d = PromotionDecision(
            kb_id=kb.id,
            subject_type=gates.VERSION_SUBJECT,
            subject="v2",
            index_version=2,
            outcome=gates.DECIDING,
            evidence={"deciding_since": since.isoformat()},
        )
        s.add(d)
        s.flush()
        return kb.id, d.id


def test_a_stale_deciding_decision_is_decided_again(rt):
    kb_id, decision_id = _deciding(rt, age_seconds=gates.STUCK_DECIDING_SECONDS + 5)
    assert gates.advance_pending(rt) == 1
    d = gates.get_decision(rt, decision_id)
    # No gate on this KB: deciding again promotes, and the switch really happened.
    assert d.outcome == gates.PROMOTED and "deciding_since" not in d.evidence
    with rt.db.session() as s:
        live = s.query(IndexVersion).filter_by(kb_id=kb_id, status=VersionStatus.LIVE).one()
    assert live.number == 2


def test_a_fresh_deciding_decision_is_left_alone(rt):
    _, decision_id = _deciding(rt, age_seconds=5)
    assert gates.advance_pending(rt) == 0
    assert gates.get_decision(rt, decision_id).outcome == gates.DECIDING


def test_a_decision_taken_elsewhere_meanwhile_keeps_its_evidence(rt, monkeypatch):
    """Two callers advance one pending decision (a worker's listener and the CLI's loop):
    the one that read it while its runs were still waiting must not overwrite the
    evidence the other recorded with the outcome."""
    _, decision_id = _deciding(rt, age_seconds=0)
    with rt.db.session() as s:
        s.get(PromotionDecision, decision_id).outcome = gates.PENDING
    decided = {"checks": [{"metric": "mrr", "passed": False}], "summary": "mrr fell"}
    real_next_step = gates._next_step

    def next_step_while_another_decides(rt_, s, d):
        real_next_step(rt_, s, d)  # queues nothing here (no gate); its answer is stale anyway
        with rt.db.session() as other:  # the other caller decides and records evidence
            row = other.get(PromotionDecision, decision_id)
            row.outcome, row.evidence = gates.REFUSED, decided
        d.evidence = {"waiting_for": ["eval run x"]}  # this caller's older view
        return None  # still waiting, as far as this caller knows

    monkeypatch.setattr(gates, "_next_step", next_step_while_another_decides)
    gates.advance(rt, decision_id)
    d = gates.get_decision(rt, decision_id)
    assert d.outcome == gates.REFUSED and d.evidence == decided
