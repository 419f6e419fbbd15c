"""BM25 over one index version's chunks, kept in step with the version's `generation`.

The lexical side of hybrid retrieval. The corpus of a version is read from the catalog
(its chunk rows: same KB, same pipeline `config_hash`, of each document's current or
indexed revision) and indexed with `bm25s` (sparse matrices). One index is cached per version
per process and rebuilt when the version's catalog `generation` moves: every writer
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from core.catalog.models import Chunk, Document, DocumentRevision, RevisionStatus
from index.base import matches
from index.sparse import K1, B, latin_language, strip_accents, tokenize

if TYPE_CHECKING:
    from core.catalog.models import IndexVersion
    from core.db import Database

log = logging.getLogger(__name__)

__all__ = ["B", "K1", "Bm25Index", "Bm25Store", "latin_language", "strip_accents", "tokenize"]


class Bm25Index:
    """BM25 over a fixed list of texts; rows are addressed by position.

    `payloads[i]` is what filters are checked against (the same dict shape the vector
    index stores), `ids[i]` the chunk id.
    """

    def __init__(
        self, ids: list[str], payloads: list[dict[str, Any]], model: Any, *, stem: bool = True
    ) -> None:
        self.ids = ids
        self.payloads = payloads
        self.stem = stem  # how queries are tokenised: as the texts were (see `tokenize`)
        self._model = model
        self._lock = threading.Lock()
        # key -> string value -> rows holding it: built on a key's first equality filter
        self._value_rows: dict[str, dict[str, np.ndarray]] = {}
        self._value_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        ids: list[str] | None = None,
        payloads: list[dict[str, Any]] | None = None,
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
        payloads: list[dict[str, Any]] | None = None,
        stem: bool = True,
    ) -> Bm25Index:
        """From texts already passed through `tokenize` (with the same `stem`)."""
        import bm25s

        ids = ids if ids is not None else [str(i) for i in range(len(tokens))]
        payloads = payloads if payloads is not None else [{} for _ in tokens]
        model = None
        if tokens:
            model = bm25s.BM25(k1=K1, b=B, method="lucene")
            model.index(list(tokens), show_progress=False)
        return cls(ids, payloads, model, stem=stem)

    def __len__(self) -> int:
        return len(self.ids)

    def search(
        self, query: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        """(row, score) of the best `top_k` rows with a positive score whose payload
        matches `filters`, best first (ties by row, so results are deterministic)."""
        if self._model is None or top_k <= 0:
            return []
        tokens = [t for t in tokenize(query, stem=self.stem) if t in self._model.vocab_dict]
        if not tokens:
            return []
        with self._lock:  # bm25s keeps scratch state per call; one query at a time
            scores = np.asarray(self._model.get_scores(tokens), dtype=np.float32)
        # A one-document filter reads that document's rows, not every scoring row.
        narrowed = self._rows_matching(filters) if filters else None
        rows = np.flatnonzero(scores > 0) if narrowed is None else narrowed[scores[narrowed] > 0]
        if filters:
            rows = np.array(
                [r for r in rows.tolist() if matches(self.payloads[r], filters)], dtype=np.int64
            )
        if rows.size == 0:
            return []
        rows = _best_rows(rows, scores, top_k)
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
                lists: dict[str, list[int]] = {}
                for row, payload in enumerate(self.payloads):
                    have = payload.get(key)
                    for value in have if isinstance(have, list) else [have]:
                        if isinstance(value, str):
                            lists.setdefault(value, []).append(row)
                cached = {v: np.unique(np.asarray(r, dtype=np.int64)) for v, r in lists.items()}
                self._value_rows[key] = cached
            return cached


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
        self._tokens: dict[str, list[str]] = {}  # text hash -> tokens, shared by versions
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
        """Drop this process's copies of erased text: the versions' cached indexes (they
        are rebuilt from the catalog on their next query) and the tokens of the texts.
        Other processes rebuild on the generation the erase bumped. Returns how many
        cached indexes went."""
        with self._guard:
            dropped = sum(self._cache.pop(v, None) is not None for v in version_ids)
            for text_hash in text_hashes:
                self._tokens.pop(text_hash, None)
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

    def _build(self, version: IndexVersion) -> Bm25Index:
        started = time.perf_counter()
        with self.db.session() as s:
            rows = s.execute(
                select(
                    Chunk.id,
                    Chunk.text,
                    Chunk.text_hash,
                    Chunk.metadata_,
                    Chunk.document_id,
                    Chunk.revision_id,
                    Document.filename,
                    Document.metadata_,
                )
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
                .order_by(Chunk.id)
            ).all()
        ids, tokens, payloads = [], [], []
        fresh: dict[str, list[str]] = {}
        for row in rows:
            chunk_id, text, text_hash, chunk_meta, document_id, revision_id, filename, doc_meta = (
                row
            )
            ids.append(chunk_id)
            cached_tokens = self._tokens.get(text_hash) or fresh.get(text_hash)
            if cached_tokens is None:
                cached_tokens = fresh[text_hash] = tokenize(text)
            tokens.append(cached_tokens)
            # The same payload the ingest worker stores in the vector index.
            payloads.append(
                {
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
            )
        index = Bm25Index.from_tokens(tokens, ids=ids, payloads=payloads)
        with self._guard:
            # Keep only what some cached version still uses, plus this build's tokens.
            self._tokens.update(fresh)
            if len(self._tokens) > 2 * max(1, len(tokens)) + 50_000:
                self._tokens = {**fresh}
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
