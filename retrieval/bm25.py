"""BM25 over one index version's chunks, kept in step with the version's `generation`.

The lexical side of hybrid retrieval. The corpus of a version is read from the catalog
(its chunk rows: same KB, same pipeline `config_hash`, of each document's current or
indexed revision) and indexed as one sparse matrix (`retrieval.bm25_matrix`), its
payloads by column (`index.payload_columns`). One index is cached per version per
process and rebuilt when the version's catalog `generation` moves: every writer
bumps it when it publishes a snapshot, so a reader in any process notices on its next
query. Rows deleted after the snapshot was taken (a document deleted meanwhile) are
dropped at result time, where every hit is joined with its catalog row.

Tokenisation is `index.sparse.tokenize` (Unicode words, casefolded, accents stripped,
Snowball stemming per language), the one the BM25 sparse vectors of Qdrant versions use:
a Qdrant version built with them answers hybrid queries inside the engine and never
builds this index (`retrieval.search`).

Example::

    index = Bm25Index.build(["El río Tajo", "The river Thames"], payloads=[{}, {}])
    index.search("rio", top_k=1)  # -> [(0, 0.69...)]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import Row, select

from core.catalog.models import Chunk, Document, DocumentRevision, RevisionStatus
from index.base import matches
from index.payload_columns import PayloadColumns
from index.sparse import K1, B, latin_language, strip_accents, token_counts, tokenize
from retrieval.bm25_matrix import Bm25Matrix, TermCounts, Vocabulary

if TYPE_CHECKING:
    from core.catalog.models import IndexVersion
    from core.db import Database

log = logging.getLogger(__name__)

CORPUS_BATCH = 5_000  # chunk rows fetched at a time while building
TEXT_BATCH = 900  # chunk ids per query for texts (SQLite's bound parameters stay few)

__all__ = ["B", "K1", "Bm25Index", "Bm25Store", "latin_language", "strip_accents", "tokenize"]


class Bm25Index:
    """BM25 over a fixed list of texts; rows are addressed by position.

    `payloads[i]` is what filters are checked against (the same dict shape the vector
    index stores; kept by column, `index.payload_columns`), `ids[i]` the chunk id.
    """

    def __init__(
        self,
        ids: list[str],
        payloads: Sequence[dict[str, Any]],
        matrix: Bm25Matrix,
        vocab: Vocabulary,
        *,
        stem: bool = True,
    ) -> None:
        self.ids = ids
        self.payloads = (
            payloads if isinstance(payloads, PayloadColumns) else PayloadColumns.from_rows(payloads)
        )
        self.stem = stem  # how queries are tokenised: as the texts were (see `tokenize`)
        self._matrix = matrix
        self._vocab = vocab
        # key -> string value -> rows holding it: built on a key's first equality filter
        self._value_rows: dict[str, dict[str, np.ndarray]] = {}
        self._value_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        ids: list[str] | None = None,
        payloads: Sequence[dict[str, Any]] | None = None,
        stem: bool = True,
    ) -> Bm25Index:
        """`stem=False` is plain BM25 (casefolded, accent-stripped words), for comparison."""
        tokens = [tokenize(t, stem=stem) for t in texts]
        return cls.from_tokens(tokens, ids=ids, payloads=payloads, stem=stem)

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[list[str]],
        *,
        ids: list[str] | None = None,
        payloads: Sequence[dict[str, Any]] | None = None,
        stem: bool = True,
    ) -> Bm25Index:
        """From texts already passed through `tokenize` (with the same `stem`)."""
        vocab = Vocabulary()
        return cls.from_counts(
            [vocab.counts(t) for t in tokens], vocab, ids=ids, payloads=payloads, stem=stem
        )

    @classmethod
    def from_counts(
        cls,
        counts: Sequence[TermCounts],
        vocab: Vocabulary,
        *,
        ids: list[str] | None = None,
        payloads: Sequence[dict[str, Any]] | None = None,
        stem: bool = True,
    ) -> Bm25Index:
        """From each text's term counts (`Vocabulary.counts` of its tokens)."""
        ids = ids if ids is not None else [str(i) for i in range(len(counts))]
        payloads = payloads if payloads is not None else [{} for _ in counts]
        matrix = Bm25Matrix.build(counts, vocab, k1=K1, b=B)
        return cls(ids, payloads, matrix, vocab, stem=stem)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def matrix_bytes(self) -> int:
        """The BM25 weights' size (ids, payloads and the vocabulary come on top)."""
        return self._matrix.nbytes

    def search(
        self, query: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        """(row, score) of the best `top_k` rows with a positive score whose payload
        matches `filters`, best first (ties by row, so results are deterministic)."""
        if not self.ids or top_k <= 0:
            return []
        # Terms the vocabulary got after this index was built score nothing (`scores`).
        terms = [self._vocab.get(t) for t in tokenize(query, stem=self.stem)]
        known = [t for t in terms if t is not None]
        if not known:
            return []
        scores = self._matrix.scores(known)
        # A one-document filter reads that document's rows, not every scoring row.
        if not filters:
            rows = _top_rows(scores, top_k)
        else:
            narrowed = self._rows_matching(filters)
            rows = (
                np.flatnonzero(scores > 0) if narrowed is None else narrowed[scores[narrowed] > 0]
            )
            keys = list(filters)
            rows = np.array(
                [r for r in rows.tolist() if matches(self.payloads.row(r, keys), filters)],
                dtype=np.int64,
            )
            rows = _best_rows(rows, scores, top_k)
        if rows.size == 0:
            return []
        order = np.lexsort((rows, -scores[rows]))[:top_k]
        return [(int(rows[i]), float(scores[rows[i]])) for i in order]

    def _rows_matching(self, filters: dict[str, Any]) -> np.ndarray | None:
        """Sorted rows that can match the filters' string equalities (a superset of the
        matches: the other conditions are checked per row after), or None when no filter
        is one (ranges, numbers and booleans are checked per row only)."""
        found: np.ndarray | None = None
        for key, want in filters.items():
            wants = want if isinstance(want, list) else [want]
            if isinstance(want, dict) or not all(isinstance(w, str) for w in wants):
                continue
            by_value = self._rows_by_value(key)
            parts = [by_value[w] for w in wants if w in by_value]
            rows = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
            found = rows if found is None else np.intersect1d(found, rows, assume_unique=True)
        return found

    def _rows_by_value(self, key: str) -> dict[str, np.ndarray]:
        with self._value_lock:
            cached = self._value_rows.get(key)
            if cached is None:
                cached = self._value_rows[key] = self.payloads.rows_by_value(key)
            return cached


def _top_rows(scores: np.ndarray, top_k: int) -> np.ndarray:
    """`_best_rows` of every row with a positive score, without gathering them first (a
    common word scores most of a large version: 2.3 ms instead of 6.6 at 1M rows)."""
    n = scores.size
    if n > top_k:
        kth = np.partition(scores, n - top_k)[n - top_k]
        if kth > 0:
            return np.flatnonzero(scores >= kth)
    return np.flatnonzero(scores > 0)


def _best_rows(rows: np.ndarray, scores: np.ndarray, top_k: int) -> np.ndarray:
    """The rows scoring at least the `top_k`-th best score among `rows` (ties at that
    score all kept, so the caller's ordering by row stays deterministic). A common word
    scores most of a large version: sorting only these avoids sorting them all."""
    if rows.size <= top_k:
        return rows
    kth = np.partition(scores[rows], rows.size - top_k)[rows.size - top_k]
    return rows[scores[rows] >= kth]


@dataclass
class _Cached:
    generation: int
    index: Bm25Index


class Bm25Store:
    """One BM25 index per index version in this process, rebuilt when the version's
    catalog `generation` moves past the cached one.

    By default a query that finds the cached index older than the version's generation
    rebuilds it before answering, so BM25 is always in step with the vector snapshot
    (measured at 20k chunks of ~150 words on 2 cores: ~11 s cold, ~2.5 s after a write,
    because tokens are cached by text hash across rebuilds and only new text is
    tokenised). `background=True` instead answers from the previous index while one
    thread rebuilds: no rebuild on the query path, but the lexical side lags each write
    by the rebuild time (an e2e test showed that reorders hybrid results right after an
    ingest), so it is opt-in for write-heavy, large KBs.
    """

    def __init__(self, db: Database, *, background: bool = False) -> None:
        self.db = db
        self.background = background
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._building: set[str] = set()
        self._guard = threading.Lock()
        # Texts are tokenised once: text hash -> term counts, ids from one vocabulary
        # shared by this store's versions (a rebuild after a write counts only new text).
        self._vocab = Vocabulary()
        self._counts: dict[str, TermCounts] = {}
        self.last_build_seconds: float | None = None

    def for_version(self, version: IndexVersion, *, wait: bool = False) -> Bm25Index:
        """The version's BM25 index; `wait=True` always returns one built at (or past)
        the version's current generation."""
        cached = self._cache.get(version.id)
        if cached is not None and cached.generation >= version.generation:
            return cached.index
        if cached is not None and self.background and not wait:
            self._rebuild_soon(version)
            return cached.index
        return self._rebuild(version)

    def forget(self, version_ids: list[str], text_hashes: list[str]) -> int:
        """Drop this process's copies of erased text: the versions' cached indexes, and
        the vocabulary every cached index shares (it holds the text's words), so every
        cached index goes and is rebuilt from the catalog on its next query. Other
        processes rebuild on the generation the erase bumped. Returns how many cached
        indexes went (`version_ids` and `text_hashes` name what must go at the least)."""
        with self._guard:
            dropped = len(self._cache)
            self._cache = {}
            self._vocab = Vocabulary()
            self._counts = {}
        return dropped

    def _rebuild_soon(self, version: IndexVersion) -> None:
        with self._guard:
            if version.id in self._building:
                return
            self._building.add(version.id)

        def work() -> None:
            try:
                self._rebuild(version)
            except Exception:  # noqa: BLE001 - the next query retries; never kill the server
                log.exception("BM25 rebuild of version %s failed", version.number)
            finally:
                with self._guard:
                    self._building.discard(version.id)

        threading.Thread(target=work, name=f"bm25-{version.id[:8]}", daemon=True).start()

    def _rebuild(self, version: IndexVersion) -> Bm25Index:
        with self._guard:
            lock = self._locks.setdefault(version.id, threading.Lock())
        with lock:
            cached = self._cache.get(version.id)
            if cached is not None and cached.generation >= version.generation:
                return cached.index
            index = self._build(version)
            self._cache[version.id] = _Cached(version.generation, index)
            return index

    def _corpus_rows(self, version: IndexVersion, *columns: Any) -> Iterator[Row[Any]]:
        """`columns` of the version's chunk rows in no particular order, streamed from
        one query a batch at a time. (Pages ordered by id cost SQLite a sort of the KB's
        rows per page: 2.4 s a page at 1M chunks.)"""
        query = (
            select(*columns)
            .select_from(Chunk)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentRevision, DocumentRevision.id == Chunk.revision_id)
            .where(
                Chunk.kb_id == version.kb_id,
                Chunk.config_hash == version.config_hash,
                # A superset of what the vector snapshot holds (mid re-ingest both
                # revisions may be here); rows deleted later drop out at result time.
                (Chunk.revision_id == Document.current_revision_id)
                | (DocumentRevision.status == RevisionStatus.INDEXED),
            )
            .execution_options(yield_per=CORPUS_BATCH)
        )
        with self.db.session() as s:
            yield from s.execute(query)

    def _texts(self, version: IndexVersion, chunk_ids: list[str], of: int) -> Iterator[Row[Any]]:
        """(id, text) of those of the version's `of` chunks that still exist: by id, a
        batch per query, when they are few (a rebuild after a write); else one scan of
        the version's texts (a cold build)."""
        if len(chunk_ids) > of // 4:
            wanted = set(chunk_ids)
            for row in self._corpus_rows(version, Chunk.id, Chunk.text):
                if row.id in wanted:
                    yield row
            return
        for start in range(0, len(chunk_ids), TEXT_BATCH):
            batch = chunk_ids[start : start + TEXT_BATCH]
            with self.db.session() as s:
                yield from s.execute(select(Chunk.id, Chunk.text).where(Chunk.id.in_(batch)))

    def _build(self, version: IndexVersion) -> Bm25Index:
        started = time.perf_counter()
        rows = self._corpus_rows(
            version,
            Chunk.id,
            Chunk.text_hash,
            Chunk.metadata_,
            Chunk.document_id,
            Chunk.revision_id,
            Document.filename,
            Document.metadata_,
        )
        with self._guard:
            vocab, known = self._vocab, self._counts
        ids: list[str] = []
        counts: list[TermCounts | None] = []
        hashes: list[str | None] = []
        missing: list[int] = []  # rows whose text was never tokenised here

        def each_payload() -> Iterator[dict[str, Any]]:
            """Walks the rows once: records each id and known term counts, yields its
            payload (the same one the ingest worker stores in the vector index)."""
            for row in rows:
                chunk_id, text_hash, chunk_meta, document_id, revision_id = row[:5]
                filename, doc_meta = row[5:]
                text_counts = known.get(text_hash) if text_hash else None
                if text_counts is None:
                    missing.append(len(ids))
                ids.append(chunk_id)
                hashes.append(text_hash)
                counts.append(text_counts)
                yield {
                    **{
                        k: v
                        for k, v in (doc_meta or {}).items()
                        if isinstance(v, str | int | float | bool)
                    },
                    "document_id": document_id,
                    "revision_id": revision_id,
                    "filename": filename,
                    "page_number": (chunk_meta or {}).get("page_number"),
                    "section": (chunk_meta or {}).get("section"),
                    "chunk_id": chunk_id,
                }

        payloads = PayloadColumns.from_rows(each_payload())
        # Only new text is read and tokenised: after a write, a large version's rebuild
        # reads ids and hashes, not every chunk's text again.
        fresh: dict[str, TermCounts] = {}
        row_of = {ids[i]: i for i in missing}
        for chunk_id, text in self._texts(version, [ids[i] for i in missing], len(ids)):
            row = row_of[chunk_id]
            text_hash = hashes[row]
            text_counts = fresh.get(text_hash) if text_hash else None
            if text_counts is None:
                text_counts = vocab.counts(token_counts(text))
                if text_hash:
                    fresh[text_hash] = text_counts
            counts[row] = text_counts
        no_text = vocab.counts([])  # deleted since the first read: scores nothing
        del row_of
        # Rows by chunk id, whatever order the catalog returned them in: ties in a search
        # break by row, so every process ranks them alike.
        order = sorted(range(len(ids)), key=ids.__getitem__)
        ids[:] = [ids[i] for i in order]
        counts[:] = [c if c is not None else no_text for c in (counts[i] for i in order)]
        payloads = payloads.take(order)
        index = Bm25Index.from_counts(
            cast(list[TermCounts], counts), vocab, ids=ids, payloads=payloads
        )
        with self._guard:
            if self._vocab is vocab:  # not reset by `forget` meanwhile
                # Keep what some cached version still uses, plus this build's counts.
                self._counts.update(fresh)
                if len(self._counts) > 2 * max(1, len(counts)) + 50_000:
                    self._counts = {**fresh}
        self.last_build_seconds = time.perf_counter() - started
        log.info(
            "built BM25 for version %s (generation %d): %d chunks in %.2fs",
            version.number,
            version.generation,
            len(ids),
            self.last_build_seconds,
        )
        return index

    def drop(self, version_id: str) -> None:
        self._cache.pop(version_id, None)
