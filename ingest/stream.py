"""Ingesting many documents at once: a streaming pipeline across documents.

A worker claims a batch of ingest jobs (`WorkerPool.register_batch`) and runs them
through three stages joined by bounded hand-offs:

1. **prepare**, in a few threads: raw bytes → parse (in the isolated parser processes,
   where a hostile file fails alone) → clean → redact → chunk. About one embedding
   batch's worth of documents is in flight (at least `2 × threads`, at most
   `MAX_WINDOW`), so memory stays bounded however large the batch.
2. **embed**, in the claiming thread: prepared documents are gathered until they hold
   `ingest_embed_batch_tokens` tokens, or until nothing else is ready (a slow file never
   holds the others back), then embedded as one length-sorted batch from many documents.
3. **write**: one catalog transaction saves the flushed documents' chunk rows, one
   writer per index version publishes all their vectors (only chunks new to a document,
   see `ingest.revisions`), and one transaction marks them indexed.

While the embedder works, the prepare threads parse and redact the next documents. Each
document still has its own outcome, as soon as it is known: a failure (with its reason)
fails that document alone; everything is idempotent by chunk id, so a crash at any
point is recovered by the jobs' leases.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select, update

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    RevisionStatus,
    VersionStatus,
    utcnow,
)
from core.jobs import BatchItem, Outcome
from core.logs import run_bound
from core.metrics import INGEST_STAGE_SECONDS
from core.types import Piece, StageReport
from ingest.config import IngestionConfig
from ingest.pipeline import IngestPipeline
from ingest.revisions import (
    RevisionRef,
    SavedChunks,
    current_revisions,
    document_language,
    ensure_versions,
    lock_current,
    payloads_for,
    pipeline_for,
    prepared_chunks,
    save_chunks,
    set_status,
    stored_chunks,
)

if TYPE_CHECKING:
    from ingest.services import IngestServices

log = logging.getLogger(__name__)

# Most documents in preparation at once in one stream (their chunks wait in memory).
MAX_WINDOW = 64


@dataclass
class _Work:
    item: BatchItem
    ref: RevisionRef
    force: bool


@dataclass
class _Prepared:
    work: _Work
    chunks: list[Piece]
    report: StageReport = field(default_factory=StageReport)

    @property
    def tokens(self) -> int:
        return sum(p.token_count or len(p.text) // 4 for p in self.chunks)


def ingest_batch(rt: IngestServices, items: list[BatchItem]) -> Iterator[tuple[BatchItem, Outcome]]:
    """The batch handler of ingest jobs (payload: `revision_id`, optional `force`)."""
    works, finished = _resolve(rt, items)
    yield from finished
    by_kb: dict[str, list[_Work]] = {}
    for work in works:
        by_kb.setdefault(work.ref.kb_id, []).append(work)
    for kb_id, kb_works in by_kb.items():
        with rt.db.session() as s:
            kb = s.get(KnowledgeBase, kb_id)
        if kb is None:
            for work in kb_works:
                yield work.item, "knowledge base deleted; nothing to do"
            continue
        try:
            yield from _ingest_kb(rt, kb, kb_works)
        except Exception as exc:  # noqa: BLE001 - another KB's documents still go on
            log.exception("ingesting into %s failed", kb.name)
            for work in kb_works:
                yield work.item, exc


def _resolve(
    rt: IngestServices, items: list[BatchItem]
) -> tuple[list[_Work], list[tuple[BatchItem, Outcome]]]:
    """Which jobs have work to do; the others end now with why not."""
    wanted = {item.payload["revision_id"] for item in items}
    works: list[_Work] = []
    finished: list[tuple[BatchItem, Outcome]] = []
    with rt.db.session() as s:
        revisions = {
            r.id: r
            for r in s.execute(
                select(DocumentRevision).where(DocumentRevision.id.in_(wanted))
            ).scalars()
        }
        documents = {
            d.id: d
            for d in s.execute(
                select(Document).where(Document.id.in_({r.document_id for r in revisions.values()}))
            ).scalars()
        }
        for item in items:
            rev = revisions.get(item.payload["revision_id"])
            doc = documents.get(rev.document_id) if rev else None
            if rev is None or doc is None:
                finished.append((item, "document deleted; nothing to do"))
            elif doc.current_revision_id != rev.id:
                rev.status = RevisionStatus.SUPERSEDED
                finished.append((item, "superseded by a newer revision before it was processed"))
            elif rev.status == RevisionStatus.INDEXED and not item.payload.get("force"):
                finished.append((item, "already indexed"))
            else:
                ref = RevisionRef(
                    doc.kb_id,
                    doc.id,
                    rev.id,
                    doc.filename,
                    rev.media_type,
                    rev.content_sha256,
                    dict(doc.metadata_ or {}),
                )
                works.append(_Work(item, ref, bool(item.payload.get("force"))))
    return works, finished


def _ingest_kb(
    rt: IngestServices, kb: KnowledgeBase, works: list[_Work]
) -> Iterator[tuple[BatchItem, Outcome]]:
    """Every active version of the KB gets the documents, each with its own config. One
    pass per distinct config (versions differing only in backend or index type share
    chunks and vectors); the live version's pass goes last and finishes the documents."""
    kb_config = IngestionConfig.model_validate(kb.config)
    versions = ensure_versions(rt, kb, kb_config, pipeline_for(rt, kb_config))
    groups: dict[str, tuple[IngestPipeline, list[IndexVersion]]] = {}
    for version in versions:
        pipeline = pipeline_for(rt, IngestionConfig.model_validate(version.config))
        groups.setdefault(pipeline.config_hash, (pipeline, []))[1].append(version)
    ordered = sorted(
        groups.values(), key=lambda g: any(v.status == VersionStatus.LIVE for v in g[1])
    )
    set_status(rt, [w.ref.revision_id for w in works], RevisionStatus.PARSING)
    remaining = works
    for i, (pipeline, group) in enumerate(ordered):
        last = i == len(ordered) - 1
        passed: list[_Work] = []
        stream = _Stream(rt, pipeline, group, finish=last, versions_total=len(versions))
        for work, outcome in stream.run(remaining):
            if last or outcome is not None:
                yield work.item, outcome
            else:
                passed.append(work)
        remaining = passed


class _Stream:
    """One pass of documents through one pipeline config into its index versions."""

    def __init__(
        self,
        rt: IngestServices,
        pipeline: IngestPipeline,
        versions: list[IndexVersion],
        *,
        finish: bool,
        versions_total: int,
    ) -> None:
        self.rt = rt
        self.pipeline = pipeline
        self.config_hash = pipeline.config_hash
        self.versions = versions
        self.finish = finish
        self.versions_total = versions_total
        settings = rt.settings
        self.threads = max(2, settings.parse_processes + 1)
        self.budget = settings.ingest_embed_batch_tokens

    # -- the pipeline -----------------------------------------------------------------
    def run(self, works: list[_Work]) -> Iterator[tuple[_Work, Outcome]]:
        """Yields each document's outcome: an exception, a message when it was finished
        (or skipped), None when it passed and a later pass finishes it."""
        todo = iter(works)
        pending: dict[Future[_Prepared], _Work] = {}
        ready: list[_Prepared] = []
        seen = [0, 0]  # documents prepared, their tokens
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ragops-prepare")
        try:

            def refill() -> None:
                while len(pending) < self._window(*seen):
                    work = next(todo, None)
                    if work is None:
                        return
                    # The document's log lines carry the id of the request that queued it.
                    fields = {"request_id": work.item.payload.get("request_id")}
                    pending[pool.submit(run_bound, fields, self._prepare, work)] = work

            refill()
            while pending or ready:
                tokens = sum(p.tokens for p in ready)
                done: set[Future[_Prepared]] = set()
                if pending and tokens < self.budget:
                    # Block only while nothing is ready to embed.
                    timeout = None if not ready else 0
                    done, _ = wait(list(pending), timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    work = pending.pop(future)
                    try:
                        ready.append(future.result())
                        seen[0] += 1
                        seen[1] += ready[-1].tokens
                    except Exception as exc:  # noqa: BLE001 - this document fails alone
                        yield work, exc
                refill()
                tokens = sum(p.tokens for p in ready)
                if ready and (not done or tokens >= self.budget or not pending):
                    batch, ready = ready, []
                    yield from self._flush(batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _window(self, documents: int, tokens: int) -> int:
        """Documents in preparation at once: enough that one embedding batch can fill up
        while the previous one is embedded (small batches embed up to 20% slower), at
        least two per thread, at most `MAX_WINDOW`."""
        least = 2 * self.threads
        if not documents or not tokens:
            return least
        per_document = tokens / documents
        return max(least, min(MAX_WINDOW, math.ceil(self.budget / per_document)))

    def _prepare(self, work: _Work) -> _Prepared:
        ref = work.ref
        if not work.force:
            with self.rt.db.session() as s:
                chunks = stored_chunks(s, ref, self.config_hash)
            if chunks:
                return _Prepared(work, chunks)
        result = prepared_chunks(self.rt, self.pipeline, ref)
        return _Prepared(work, result.chunks, result.report)

    def _flush(self, batch: list[_Prepared]) -> Iterator[tuple[_Work, Outcome]]:
        try:
            t0 = time.perf_counter()
            ids = [p.work.ref.revision_id for p in batch]
            set_status(self.rt, ids, RevisionStatus.EMBEDDING)
            self.pipeline.embed_documents([p.chunks for p in batch], [p.report for p in batch])
            t1 = time.perf_counter()
            saved, skipped = self._save(batch)
            yield from skipped
            live = [p for p in batch if p.work.ref.revision_id in saved]
            t2 = time.perf_counter()
            self._write(live, saved)
            t3 = time.perf_counter()
            INGEST_STAGE_SECONDS.labels("index").observe(t3 - t2)
            outcomes = self._finish(live) if self.finish else [(p.work, None) for p in live]
            log.debug(
                "flushed %d documents, %d chunks: embed %.3fs, save %.3fs, write %.3fs, "
                "finish %.3fs",
                len(batch),
                sum(len(p.chunks) for p in batch),
                t1 - t0,
                t2 - t1,
                t3 - t2,
                time.perf_counter() - t3,
            )
        except Exception as exc:  # noqa: BLE001 - the flushed documents retry on their own
            log.warning("flushing %d documents failed: %s", len(batch), exc)
            outcomes = [(p.work, exc) for p in batch]
        yield from outcomes

    # -- catalog and index writes -----------------------------------------------------
    def _save(
        self, batch: list[_Prepared]
    ) -> tuple[dict[str, SavedChunks], list[tuple[_Work, Outcome]]]:
        """One transaction: the chunk rows of every document still current."""
        saved: dict[str, SavedChunks] = {}
        skipped: list[tuple[_Work, Outcome]] = []
        with self.rt.db.session() as s:
            current = lock_current(s, [p.work.ref for p in batch])
            for p in batch:
                ref = p.work.ref
                if current[ref.document_id] is None:
                    skipped.append((p.work, "document deleted while it was being ingested"))
                elif current[ref.document_id] != ref.revision_id:
                    skipped.append((p.work, _superseded(s, ref)))
                else:
                    saved[ref.revision_id] = save_chunks(s, ref, p.chunks, self.config_hash)
            if saved:
                s.execute(
                    update(DocumentRevision)
                    .where(DocumentRevision.id.in_(list(saved)))
                    .values(status=RevisionStatus.INDEXING)
                )
        return saved, skipped

    def _write(self, live: list[_Prepared], saved: dict[str, SavedChunks]) -> None:
        """One published write per version: vectors of chunks the version lacks in, those
        of chunks the documents no longer have out. Counts go to each report."""
        for n, version in enumerate(self.versions):
            with self.rt.indexes.writer(version) as index:
                # Re-checked under the writer lock: a newer revision's job owns the
                # document's vectors once it is current.
                current = current_revisions(self.rt, [p.work.ref for p in live])
                ids: list[str] = []
                vectors: list[np.ndarray] = []
                payloads: list[dict[str, Any]] = []
                texts: list[str] = []
                gone: list[str] = []
                for p in live:
                    ref = p.work.ref
                    if ref.revision_id not in current:
                        continue
                    changes = saved[ref.revision_id]
                    present = index.present(changes.kept) if changes.kept else set()
                    fresh = [c for c in p.chunks if c.id not in present]
                    ids += [c.id or "" for c in fresh]
                    vectors += [c.embedding for c in fresh]  # type: ignore[misc]
                    payloads += payloads_for(ref, fresh)
                    texts += [c.text for c in fresh]  # Qdrant: BM25 sparse vectors
                    written = len(fresh)
                    gone += changes.gone
                    if n == 0:
                        p.report.add("index", "written", written)
                        p.report.add("index", "unchanged", len(present))
                        p.report.add("index", "deleted", len(changes.gone))
                if ids:
                    index.upsert(ids, np.vstack(vectors).astype(np.float32), payloads, texts)
                index.delete(gone)

    def _finish(self, live: list[_Prepared]) -> list[tuple[_Work, Outcome]]:
        """One transaction: each still-current document's revision becomes indexed and
        its older revisions' rows go."""
        outcomes: list[tuple[_Work, Outcome]] = []
        with self.rt.db.session() as s:
            current = lock_current(s, [p.work.ref for p in live])
            for p in live:
                ref = p.work.ref
                if current[ref.document_id] != ref.revision_id:
                    outcomes.append((p.work, _superseded(s, ref)))
                    continue
                s.execute(
                    delete(Chunk).where(
                        Chunk.document_id == ref.document_id, Chunk.revision_id != ref.revision_id
                    )
                )
                s.execute(
                    update(DocumentRevision)
                    .where(
                        DocumentRevision.document_id == ref.document_id,
                        DocumentRevision.id != ref.revision_id,
                        DocumentRevision.status == RevisionStatus.INDEXED,
                    )
                    .values(status=RevisionStatus.SUPERSEDED)
                )
                s.execute(
                    update(DocumentRevision)
                    .where(DocumentRevision.id == ref.revision_id)
                    .values(
                        status=RevisionStatus.INDEXED,
                        indexed_at=utcnow(),
                        chunk_count=len(p.chunks),
                        error=None,
                        report={
                            "counts": p.report.counts,
                            "seconds": p.report.seconds,
                            "language": document_language(p.chunks),
                        },
                    )
                )
                outcomes.append(
                    (
                        p.work,
                        f"indexed {ref.filename}: {len(p.chunks)} chunks in "
                        f"{self.versions_total} version(s)",
                    )
                )
        return outcomes


def _superseded(s: Any, ref: RevisionRef) -> str:
    s.execute(
        update(DocumentRevision)
        .where(DocumentRevision.id == ref.revision_id)
        .values(status=RevisionStatus.SUPERSEDED)
    )
    return f"{ref.filename}: replaced or deleted while it was being ingested"
