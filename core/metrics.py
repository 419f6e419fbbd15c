"""Prometheus series the lower layers update (ingestion stages, embedding throughput,
retrieval latency, job outcomes) and the gauges read from the catalog at scrape time
(`CatalogCollector`: job queue depth, each KB's live index version and latest eval
scores). HTTP series live in `api.metrics`.

The counters and histograms live in prometheus_client's process-wide default registry,
so each process (an API server, a `ragops worker`) counts its own work: `GET /metrics`
serves the API process's, a worker serves its own on `RAGOPS_WORKER_METRICS_PORT`. Label
values come from small fixed sets (stage names, retrieval modes, job kinds), never from
names or ids; only the catalog gauges name KBs, at most `MAX_KB_SERIES` of them.

Example::

    INGEST_STAGE_SECONDS.labels("parse").observe(seconds)
    count_job("ingest_revision", failed=True, final=False)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from core.catalog.models import EvalRun, IndexVersion, Job, JobStatus, KnowledgeBase, VersionStatus
from core.db import Database

log = logging.getLogger(__name__)

# Per-KB gauges cover at most this many KBs (the first by name): a scrape stays small and
# its query cheap however many KBs a deployment holds.
MAX_KB_SERIES = 1000

# Seconds, from a cached chunk list (milliseconds) to a long PDF parsed in an isolated
# process (up to RAGOPS_PARSE_TIMEOUT_SECONDS, 60 s by default).
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RETRIEVAL_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

INGEST_STAGE_SECONDS = Histogram(
    "ragops_ingest_stage_seconds",
    "Time one ingestion stage took for one document (embed and index: for one batch of documents)",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
EMBEDDING_TOKENS = Counter(
    "ragops_embedding_tokens",
    "Tokens of chunk text embedded during ingestion (embedding-cache misses only); "
    "rate(ragops_embedding_tokens_total) / rate(ragops_embedding_seconds_total) is tokens/s",
)
EMBEDDING_TEXTS = Counter("ragops_embedding_texts", "Chunk texts embedded during ingestion")
EMBEDDING_SECONDS = Counter(
    "ragops_embedding_seconds", "Seconds the embedding model spent on ingestion batches"
)
RETRIEVAL_SECONDS = Histogram(
    "ragops_retrieval_seconds",
    "Time one knowledge base's retrieval took (embed the query, search, fuse, rerank)",
    ["mode"],
    buckets=RETRIEVAL_BUCKETS,
)
JOBS_SUCCEEDED = Counter("ragops_jobs_succeeded", "Jobs that completed", ["kind"])
JOB_FAILURES = Counter(
    "ragops_job_failures",
    "Failed job attempts; final=false: it will be retried, final=true: the job failed",
    ["kind", "final"],
)

F = TypeVar("F", bound=Callable[..., Any])


def observe_embedding(*, texts: int, tokens: int, seconds: float) -> None:
    EMBEDDING_TEXTS.inc(texts)
    EMBEDDING_TOKENS.inc(tokens)
    EMBEDDING_SECONDS.inc(seconds)


def timed_retrieval(fn: F) -> F:
    """Decorates a retrieval function whose result has a `mode`: its duration goes to
    `ragops_retrieval_seconds{mode}`. Calls that raise are not observed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        RETRIEVAL_SECONDS.labels(str(result.mode)).observe(time.perf_counter() - t0)
        return result

    return wrapper  # type: ignore[return-value]


def count_job(kind: str, *, failed: bool, final: bool = True) -> None:
    if failed:
        JOB_FAILURES.labels(kind, "true" if final else "false").inc()
    else:
        JOBS_SUCCEEDED.labels(kind).inc()


class CatalogCollector(Collector):
    """Gauges read from the catalog when scraped (three indexed queries):

    - `ragops_job_queue_depth{kind,status}`: jobs queued or running (every kind in
      `kinds` is listed, 0 when none);
    - with `per_kb`: `ragops_kb_live_index_version{kb}`, and from each KB's latest
      succeeded eval run `ragops_kb_eval_score{kb,metric}` (the metric's mean) and
      `ragops_kb_eval_index_version{kb}` (the version it scored);
    - `ragops_catalog_scrape_errors`: 1 when the catalog could not be read (the other
      gauges are then left out, never made up).
    """

    def __init__(self, db: Database, *, kinds: Iterable[str] = (), per_kb: bool = True) -> None:
        self.db = db
        self.kinds = sorted(set(kinds))
        self.per_kb = per_kb

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._read()
        except Exception as exc:  # noqa: BLE001 - a scrape reports the failure, never raises
            log.warning("reading the catalog for /metrics failed: %s", exc)
            families = []
        error = GaugeMetricFamily(
            "ragops_catalog_scrape_errors", "1 when the catalog could not be read for this scrape"
        )
        error.add_metric([], 0 if families else 1)
        yield from families
        yield error

    def _read(self) -> list[Metric]:
        pending = (JobStatus.QUEUED, JobStatus.RUNNING)
        depth = {(kind, status): 0 for kind in self.kinds for status in pending}
        with self.db.session() as s:
            rows = s.execute(
                select(Job.kind, Job.status, func.count())
                .where(Job.status.in_(pending))
                .group_by(Job.kind, Job.status)
            ).all()
            depth.update({(kind, str(status)): n for kind, status, n in rows})
            live = (
                s.execute(
                    select(KnowledgeBase.name, IndexVersion.number)
                    .join(IndexVersion, IndexVersion.kb_id == KnowledgeBase.id)
                    .where(IndexVersion.status == VersionStatus.LIVE)
                    .order_by(KnowledgeBase.name)
                    .limit(MAX_KB_SERIES)
                ).all()
                if self.per_kb
                else []
            )
            evals = self._latest_evals(s) if self.per_kb else []
        queue = GaugeMetricFamily(
            "ragops_job_queue_depth", "Jobs waiting (queued) or running", labels=["kind", "status"]
        )
        for (kind, status), n in sorted(depth.items()):
            queue.add_metric([kind, status], n)
        families: list[Metric] = [queue]
        if not self.per_kb:
            return families
        version = GaugeMetricFamily(
            "ragops_kb_live_index_version", "The live index version of a KB", labels=["kb"]
        )
        for name, number in live:
            version.add_metric([name], number)
        score = GaugeMetricFamily(
            "ragops_kb_eval_score",
            "A metric's mean in the KB's latest succeeded eval run",
            labels=["kb", "metric"],
        )
        scored = GaugeMetricFamily(
            "ragops_kb_eval_index_version",
            "The index version the KB's latest succeeded eval run scored",
            labels=["kb"],
        )
        for name, index_version, aggregate in evals:
            scored.add_metric([name], index_version)
            for metric, value in sorted((aggregate or {}).items()):
                mean = value.get("mean") if isinstance(value, dict) else None
                if isinstance(mean, int | float):
                    score.add_metric([name, metric], float(mean))
        return [*families, version, score, scored]

    @staticmethod
    def _latest_evals(s: Any) -> list[tuple[str, int, dict[str, Any]]]:
        latest = (
            select(EvalRun.kb_id, func.max(EvalRun.created_at).label("at"))
            .where(EvalRun.status == JobStatus.SUCCEEDED)
            .group_by(EvalRun.kb_id)
            .subquery()
        )
        rows = s.execute(
            select(KnowledgeBase.name, EvalRun.index_version, EvalRun.aggregate)
            .join(latest, latest.c.kb_id == KnowledgeBase.id)
            .join(
                EvalRun,
                (EvalRun.kb_id == latest.c.kb_id)
                & (EvalRun.created_at == latest.c.at)
                & (EvalRun.status == JobStatus.SUCCEEDED),
            )
            .order_by(KnowledgeBase.name)
            .limit(MAX_KB_SERIES)
        ).all()
        seen: dict[str, tuple[str, int, dict[str, Any]]] = {}
        for name, index_version, aggregate in rows:
            seen.setdefault(name, (name, index_version, aggregate))  # same-instant runs: one
        return list(seen.values())
