"""`CatalogCollector` on a real catalog (SQLite and PostgreSQL): job queue depth by kind
and status, each KB's live index version, and the scores of its latest succeeded eval
run (a newer failed run and an older succeeded one do not count)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from core.catalog.models import (
    EvalRun,
    IndexVersion,
    Job,
    JobStatus,
    KnowledgeBase,
    TestSet,
    VersionStatus,
    utcnow,
)
from core.db import Database
from core.metrics import CatalogCollector

pytestmark = pytest.mark.integration


@pytest.fixture
def db(catalog_url: str):
    database = Database(catalog_url)
    database.migrate()
    now = utcnow()
    with database.session() as s:
        handbook = KnowledgeBase(name="handbook", config={})
        empty = KnowledgeBase(name="empty", config={})
        s.add_all([handbook, empty])
        s.flush()
        for number, status in ((1, VersionStatus.RETIRED), (2, VersionStatus.LIVE)):
            s.add(
                IndexVersion(
                    kb_id=handbook.id,
                    number=number,
                    status=status,
                    embedding_model="m",
                    dimension=3,
                    config_hash="h",
                )
            )
        testset = TestSet(name="golden", version=1)
        s.add(testset)
        s.flush()
        runs = [
            (now - timedelta(hours=2), JobStatus.SUCCEEDED, 1, 0.5),
            (now - timedelta(hours=1), JobStatus.SUCCEEDED, 2, 0.75),
            (now, JobStatus.FAILED, 2, 0.0),
        ]
        for created, status, version, recall in runs:
            s.add(
                EvalRun(
                    testset_id=testset.id,
                    kb_id=handbook.id,
                    index_version=version,
                    embedding_model="m",
                    generator="extractive",
                    prompt_name="default",
                    prompt_version=1,
                    key_hash=f"k{version}{status}",
                    status=status,
                    aggregate={"recall_at_k": {"mean": recall, "count": 4}, "mrr": {"count": 0}},
                    created_at=created,
                )
            )
        for kind, status in [
            ("ingest_revision", JobStatus.QUEUED),
            ("ingest_revision", JobStatus.QUEUED),
            ("ingest_revision", JobStatus.RUNNING),
            ("ingest_revision", JobStatus.FAILED),
            ("eval_run", JobStatus.SUCCEEDED),
        ]:
            s.add(Job(kind=kind, status=status, payload={}))
    yield database
    database.dispose()


def scrape(collector: CatalogCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_queue_depth_live_versions_and_latest_eval_scores(db):
    values = scrape(CatalogCollector(db, kinds=["ingest_revision", "build_version"]))
    depth = {
        dict(labels)["kind"] + "/" + dict(labels)["status"]: value
        for (name, labels), value in values.items()
        if name == "ragops_job_queue_depth"
    }
    assert depth == {
        "ingest_revision/queued": 2,
        "ingest_revision/running": 1,
        "build_version/queued": 0,
        "build_version/running": 0,
    }
    assert values[("ragops_kb_live_index_version", (("kb", "handbook"),))] == 2
    assert not any(
        name == "ragops_kb_live_index_version" and dict(labels)["kb"] == "empty"
        for name, labels in values
    )
    # The latest succeeded run (v2, 0.75), not the newer failed one; `mrr` has no mean.
    assert values[("ragops_kb_eval_score", (("kb", "handbook"), ("metric", "recall_at_k")))] == 0.75
    assert values[("ragops_kb_eval_index_version", (("kb", "handbook"),))] == 2
    assert not any(dict(labels).get("metric") == "mrr" for _, labels in values)
    assert values[("ragops_catalog_scrape_errors", ())] == 0


def test_without_per_kb_series_no_kb_is_named(db):
    values = scrape(CatalogCollector(db, kinds=["ingest_revision"], per_kb=False))
    assert {name for name, _ in values} == {
        "ragops_job_queue_depth",
        "ragops_catalog_scrape_errors",
    }
    assert not any("kb" in dict(labels) for _, labels in values)


def test_an_unreadable_catalog_is_reported_not_raised(tmp_path):
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'catalog.db'}")  # no such directory
    values = scrape(CatalogCollector(broken, kinds=["ingest_revision"]))
    assert values == {("ragops_catalog_scrape_errors", ()): 1}
    broken.dispose()
