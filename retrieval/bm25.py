"""BM25 over one index version's chunks, kept in step with the version's `generation`.

The lexical side of hybrid retrieval. The corpus of a version is read from the catalog
(its chunk rows: same KB, same pipeline `config_hash`, of each document's current or
indexed revision) and indexed with `bm25s` (sparse matrices). One index is cached per version
per process and rebuilt when the version's catalog `generation` moves: every writer
bumps it when it publishes a snapshot, so a reader in any process notices on its next
query. Rows deleted after the snapshot was taken (a document deleted meanwhile) are
dropped at result time, where every hit is joined with its catalog row.

Tokenisation is Unicode-aware and the same for documents and queries: `\\w+` runs,
casefolded, accents stripped for matching (á→a, ñ→n, ё→е), and light Snowball stemming
in the token's language (Cyrillic → Russian; Latin → Spanish or English, decided once per
text by a stop-word vote).

Example::

    index = Bm25Index.build(["El río Tajo", "The river Thames"], payloads=[{}, {}])
    index.search("rio", top_k=1)  # -> [(0, 0.69...)]
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from core.catalog.models import Chunk, Document, DocumentRevision, RevisionStatus
from index.base import matches

if TYPE_CHECKING:
    from core.catalog.models import IndexVersion
    from core.db import Database

log = logging.getLogger(__name__)

# BM25 parameters (Lucene variant): k1 saturates repeated terms, b normalises by length.
K1 = 1.2
B = 0.75

_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")

# A small stop-word vote decides which Latin-script stemmer a text gets. Only en/es are
# told apart here; other Latin languages get the English stemmer (harmless: it only
# trims a few suffixes, the same way on both sides).
_EN_STOP = frozenset(
    "the and of to is in that for with was are as on by this from at which be it an".split()
)
_ES_STOP = frozenset(
    "el la los las de que y en del por para una un es con se al su sus lo como más fue".split()
)


def strip_accents(text: str) -> str:
    """Drop combining marks after canonical decomposition: á→a, ñ→n, ё→е, й→и."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def latin_language(words: Sequence[str]) -> str:
    """ "es" or "en" for Latin-script words (already casefolded), by stop-word vote."""
    es = sum(1 for w in words if w in _ES_STOP)
    en = sum(1 for w in words if w in _EN_STOP)
    return "es" if es > en else "en"


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer({"en": "english", "es": "spanish", "ru": "russian"}[language])


@lru_cache(maxsize=200_000)
def _stem(word: str, language: str) -> str:
    return _stemmer(language).stemWord(word)


def tokenize(text: str, *, stem: bool = True) -> list[str]:
    """Matching tokens of `text`: casefolded words, stemmed in their language, with
    accents stripped. Documents and queries must go through the same function."""
    words = _WORD.findall(text.casefold().replace("_", " "))
    if not stem:
        return [strip_accents(w) for w in words]
    latin = latin_language(words)
    out = []
    for word in words:
        language = "ru" if _CYRILLIC.search(word) else latin
        # Stem before stripping accents: the Snowball rules are written for the real
        # spelling (Spanish suffixes with accents, Russian ё/й).
        out.append(strip_accents(_stem(word, language)))
    return out


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
        rows = np.flatnonzero(scores > 0)
        if filters:
            rows = np.array(
                [r for r in rows.tolist() if matches(self.payloads[r], filters)], dtype=np.int64
            )
        if rows.size == 0:
            return []
        order = np.lexsort((rows, -scores[rows]))[:top_k]
        return [(int(rows[i]), float(scores[rows[i]])) for i in order]


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
