"""Qdrant backend: one collection per index version, an alias per knowledge base for the
live version, payload indexes for the filterable fields, on one of two engines:
- a Qdrant server (`make_client(url=...)`, RAGOPS_QDRANT_URL): `QdrantIndex` below, over
  qdrant-client; the engine recorded as `qdrant-server`;
- Qdrant Edge in this process (`make_client(path=...)`, the default, shards under the
  data dir's `qdrant` folder): `index.edge_index`; recorded as `qdrant-edge`.
The functions here (`open_collection`, `collection_exists`, `drop_collection`,
`set_alias`, `resolve_alias`, `close_client`) take either client. Point ids, payload
indexes and filters are shared (`index.qdrant_common`).

qdrant-client's local mode (`QdrantClient(location=":memory:")` or a path) takes the same
calls as a server; no server runs in tests, so they use it as the server's stand-in. Its
limits (qdrant-client 1.20): one process per folder, calls serialised by a per-client
lock here, payload indexes recorded but unused (brute-force scans), points pickled into
one SQLite file per collection, which `QdrantIndex.erase` vacuums.

Errors (the `index.base` contract, mapped in one place, `_translated`): a server that cannot
be reached, times out, answers 5xx or refuses the API key → Unavailable; a missing
collection or alias → NotFound; input the server or client refuses → InvalidInput.

Filters keep `index.base.matches` semantics (`index.qdrant_common.build_filter`); the
contract suite checks them on Edge and on local mode, which follows the server's matching
rules (typed equality, arrays match by element, ranges compare numbers only).

Hybrid search (`index.sparse`), as on Edge: a collection opened with `lexical=True` is
created with a sparse vector `bm25` (IDF modifier) beside the unnamed dense vector;
points written with their text hold both, and `search_hybrid` is one `query_points`
call with a dense and a sparse prefetch, both filtered, fused by the server (`rrf` with
k and weights, or `dbsf`; the server must accept RRF parameters, which came after the
Query API, and IDF is computed per shard on a multi-shard collection). A collection
created before has no sparse vector (`lexical` False).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import Conflict, InvalidInput, NotFound, RagopsError, Unavailable
from index.base import (
    Hit,
    VectorIndex,
    check_filters,
    checked_ids,
    checked_query,
    checked_upsert,
)
from index.edge_index import ENGINE as EDGE_ENGINE
from index.edge_index import EdgeShards
from index.qdrant_common import (
    KEYWORD_FIELDS,
    NUMBER_FIELDS,
    POINT_NAMESPACE,
    FilterVocabulary,
    build_filter,
    checked_candidates,
    checked_top_k,
    lexical_refused,
    matches_nothing,
    point_id,
)
from index.sparse import SPARSE_VECTOR, EngineFusion, encode_documents, encode_query

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models

__all__ = [
    "EDGE_ENGINE",
    "POINT_NAMESPACE",
    "SERVER_ENGINE",
    "EdgeShards",
    "QdrantIndex",
    "close_client",
    "collection_exists",
    "collection_name",
    "drop_collection",
    "engine_of",
    "make_client",
    "open_collection",
    "point_id",
    "resolve_alias",
    "set_alias",
    "to_filter",
]

SERVER_ENGINE = "qdrant-server"

# Points per upsert request: large enough to amortise the round trip, small enough to stay
# far below the server's request size limit at dimension 1024+.
UPSERT_BATCH = 256

_locks_guard = threading.Lock()
_local_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()

Client = Any  # a QdrantClient (server, or local mode as its stand-in) or EdgeShards


def make_client(
    *, url: str | None = None, path: Path | None = None, api_key: str | None = None
) -> Client:
    """A qdrant-client for the server at `url`, else the Qdrant Edge folder at `path`
    (`EdgeShards`: one shard per collection, opened on first use).

    The caller owns it and closes it with `close_client` (the runtime's components keep
    one per URL or path). An Edge shard serves one process: a second process (or a second
    client here) opening a shard that is open gets `Unavailable` until it is closed.
    """
    if url and path is not None:
        raise InvalidInput("give a Qdrant server url or a Qdrant Edge path, not both")
    if url:
        # Heavy optional import: qdrant-client loads only where a Qdrant server is used.
        from qdrant_client import QdrantClient

        with _translated(f"connect to Qdrant at {url}"):
            return QdrantClient(url=url, api_key=api_key)
    if path is None:
        raise InvalidInput("give a Qdrant server url (RAGOPS_QDRANT_URL) or a Qdrant Edge path")
    resolved = path.expanduser().resolve()
    resolved.mkdir(parents=True, exist_ok=True)
    return EdgeShards(resolved)


def close_client(client: Client) -> None:
    """Close `client` once no call of ours is running on it (Edge: flushes and closes its
    shards, releasing their locks; local mode: releases its folder lock)."""
    if isinstance(client, EdgeShards):
        client.close()
        return
    with _lock_for(client):
        client.close()


def engine_of(client: Client) -> str:
    """`qdrant-edge` for an Edge folder, `qdrant-server` for qdrant-client."""
    return EDGE_ENGINE if isinstance(client, EdgeShards) else SERVER_ENGINE


def open_collection(
    client: Client, collection: str, dimension: int, *, lexical: bool = False
) -> VectorIndex:
    """The index on `collection` (created when missing, with BM25 sparse vectors when
    `lexical`: `index.sparse.HybridSearch`) in the client's engine: an `EdgeIndex`
    (`index.edge_index`) or a `QdrantIndex`. Raises as `QdrantIndex.open`."""
    if isinstance(client, EdgeShards):
        return client.open(collection, dimension, lexical=lexical)
    return QdrantIndex.open(client, collection, dimension, lexical=lexical)


def drop_collection(client: Client, collection: str) -> None:
    """Delete `collection` (and the aliases pointing at it) without creating it first;
    nothing when it does not exist."""
    if isinstance(client, EdgeShards):
        client.drop(collection)
        return
    with _lock_for(client), _translated(f"drop collection {collection!r}"):
        client.delete_collection(collection)


def _is_local(client: QdrantClient) -> bool:
    options = getattr(client, "init_options", {})
    return bool(options.get("path")) or options.get("location") == ":memory:"


def _lock_for(client: QdrantClient) -> Any:
    """A lock serialising calls on a local-mode client; servers handle concurrency."""
    if not _is_local(client):
        return nullcontext()
    with _locks_guard:
        lock = _local_locks.get(client)
        if lock is None:
            lock = _local_locks[client] = threading.Lock()
    return lock


_CHECK_SERVER = (
    "check that the Qdrant server is up and reachable at RAGOPS_QDRANT_URL (local mode: "
    "that the store is open and its folder writable)"
)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place qdrant-client exceptions become project errors (`index.base`):
    - not reached, timed out, 5xx, 401/403 or a closed local store → Unavailable;
    - HTTP 404, gRPC NOT_FOUND, local mode's "Collection x not found" → NotFound;
    - HTTP 400/422, gRPC INVALID_ARGUMENT, ValueError/TypeError (client-side checks) →
      InvalidInput; HTTP 409 / gRPC ALREADY_EXISTS → Conflict."""
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except RagopsError:
        raise
    except UnexpectedResponse as exc:
        detail = exc.content.decode(errors="replace")[:300] if exc.content else exc.reason_phrase
        message = f"Qdrant could not {action}: HTTP {exc.status_code} {detail}"
        status = exc.status_code or 0
        if status == 404:
            raise NotFound(message) from exc
        if status in (400, 422):
            raise InvalidInput(message) from exc
        if status == 409:
            raise Conflict(message) from exc
        if status in (401, 403):
            raise Unavailable(f"{message}; check RAGOPS_QDRANT_API_KEY") from exc
        raise Unavailable(f"{message}; check the Qdrant server's health and logs") from exc
    except (ResponseHandlingException, httpx.HTTPError, OSError) as exc:
        cause = getattr(exc, "source", None) or exc  # ResponseHandlingException wraps httpx's
        raise Unavailable(
            f"Qdrant could not {action}: {type(cause).__name__}: {cause}; {_CHECK_SERVER}"
        ) from exc
    except (ValueError, TypeError) as exc:
        # local mode reports a missing collection as ValueError("Collection x not found")
        if re.fullmatch(r"Collection .+ not found", str(exc)):
            raise NotFound(f"Qdrant could not {action}: {exc}") from exc
        raise InvalidInput(f"Qdrant could not {action}: {exc}") from exc
    except Exception as exc:
        code = getattr(exc, "code", None)
        name = getattr(code() if callable(code) else None, "name", "")
        if name == "NOT_FOUND":  # gRPC (prefer_grpc=True) status codes
            raise NotFound(f"Qdrant could not {action}: {exc}") from exc
        if name == "INVALID_ARGUMENT":
            raise InvalidInput(f"Qdrant could not {action}: {exc}") from exc
        if name == "ALREADY_EXISTS":
            raise Conflict(f"Qdrant could not {action}: {exc}") from exc
        # UNAVAILABLE, DEADLINE_EXCEEDED, a closed local store (RuntimeError), ...
        raise Unavailable(f"Qdrant could not {action}: {exc}; {_CHECK_SERVER}") from exc


def collection_name(kb_id: str, version_number: int, version_id: str) -> str:
    """Stable, Qdrant-safe collection name for one index version.

    Readable slug plus a hash of the exact inputs, so two ids that slug alike never collide.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", kb_id)[:48] or "kb"
    digest = hashlib.sha256(f"{kb_id}\0{version_number}\0{version_id}".encode()).hexdigest()
    return f"ragops_{slug}_v{version_number}_{digest[:12]}"


def collection_exists(client: Client, collection: str) -> bool:
    """Whether `collection` exists (without creating it, unlike `open_collection`)."""
    if isinstance(client, EdgeShards):
        return client.exists(collection)
    with _lock_for(client), _translated(f"look up collection {collection!r}"):
        return bool(client.collection_exists(collection))


def resolve_alias(client: Client, alias: str) -> str | None:
    """The collection `alias` points at, or None when the alias does not exist."""
    if isinstance(client, EdgeShards):
        return client.resolve_alias(alias)
    with _lock_for(client), _translated(f"list aliases to resolve {alias!r}"):
        aliases = client.get_aliases().aliases
    return next((a.collection_name for a in aliases if a.alias_name == alias), None)


def set_alias(client: Client, alias: str, collection: str) -> None:
    """Point `alias` at `collection` atomically: readers resolve either the old or the new
    collection, never nothing. On a server, delete and create travel in ONE
    `update_collection_aliases` call; the delete is left out when the alias does not exist
    yet, since a server rejects deleting a missing alias. Edge keeps its aliases in one
    file replaced atomically. Promotions must be serialised by the caller (the catalog).
    NotFound when `collection` does not exist."""
    if isinstance(client, EdgeShards):
        client.set_alias(alias, collection)
        return
    from qdrant_client.http import models

    operations: list[Any] = []
    if resolve_alias(client, alias) is not None:
        operations.append(
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
        )
    operations.append(
        models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
        )
    )
    with _lock_for(client), _translated(f"point alias {alias!r} at {collection!r}"):
        client.update_collection_aliases(change_aliases_operations=operations)


def _client_vocabulary() -> FilterVocabulary:
    """qdrant-client's spelling of the conditions `build_filter` emits."""
    from qdrant_client.http import models

    return FilterVocabulary(
        field=lambda key, match=None, range=None: models.FieldCondition(
            key=key, match=match, range=range
        ),
        match_value=lambda value: models.MatchValue(value=value),
        match_any=lambda values: models.MatchAny(any=values),
        number_range=models.Range,
        date_range=models.DatetimeRange,
        filter=models.Filter,
    )


def to_filter(filters: dict[str, Any] | None) -> models.Filter | None:
    """`index.base` filters as qdrant-client conditions (`index.qdrant_common.build_filter`):
    strings and booleans → MatchValue, numbers → a one-point Range, a list → MatchAny / an
    OR, a range object → `Range` (numbers) or `DatetimeRange` (ISO dates). ValueError for
    a shape `check_filters` refuses; an empty list is the caller's to handle."""
    return build_filter(filters, _client_vocabulary())


class QdrantIndex:
    """One index version stored as one collection on a Qdrant server (cosine distance).

    Same contract as FaissIndex (see `index.base.VectorIndex`). Differences that matter:
    - every write is persisted by the server when the call returns (`wait=True`), so
      `save()` has nothing left to do;
    - `copy()` returns self: a collection cannot be cheaply snapshotted. This is safe in
      the store's model because writers of one version are serialised by the store and a
      version is written while `building`, before an alias makes it live; each upsert or
      delete batch is applied atomically (a point is either old or new, never torn). What
      is NOT provided: a writer that fails half-way has already applied its earlier
      batches (no rollback), and a reader of a version being written can observe some
      batches of a multi-batch write. Writes are idempotent by chunk id, so a retried
      job converges.

    Example::

        idx = QdrantIndex.open(make_client(url="http://qdrant:6333"), "kb1_v1", 384)
        idx.upsert(["c1"], vectors, [{"document_id": "d1"}])
        idx.search(vectors[0], top_k=5, filters={"document_id": ["d1", "d2"]})
    """

    backend = "qdrant"

    def __init__(
        self, client: QdrantClient, collection: str, dimension: int, *, lexical: bool = False
    ) -> None:
        self.client = client
        self.collection = collection
        self.dimension = dimension
        self.lexical = lexical  # holds BM25 sparse vectors (`index.sparse.HybridSearch`)
        self._lock = _lock_for(client)

    @classmethod
    def open(
        cls, client: QdrantClient, collection: str, dimension: int, *, lexical: bool = False
    ) -> QdrantIndex:
        """Open `collection`, creating it (and its payload indexes; with the BM25 sparse
        vector when `lexical`) when missing; an existing one keeps what it was created with.

        Raises InvalidInput when it exists with another dimension or is not a single-vector
        cosine collection; Unavailable when the server cannot be reached.
        """
        from qdrant_client.http import models

        index = cls(client, collection, dimension, lexical=lexical)
        with index._lock, _translated(f"open collection {collection!r}"):
            if client.collection_exists(collection):
                index._check_existing(client.get_collection(collection))
                return index
            sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
            client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                sparse_vectors_config=sparse if lexical else None,
            )
            schemas = [(f, models.PayloadSchemaType.KEYWORD) for f in KEYWORD_FIELDS]
            schemas += [(f, models.PayloadSchemaType.FLOAT) for f in NUMBER_FIELDS]
            with warnings.catch_warnings():
                # local mode warns that payload indexes do nothing there; known, see module doc
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for field_name, schema in schemas:
                    client.create_payload_index(
                        collection, field_name=field_name, field_schema=schema, wait=True
                    )
        return index

    def _check_existing(self, info: Any) -> None:
        params = info.config.params.vectors
        if isinstance(params, dict) or params is None:
            raise InvalidInput(
                f"collection {self.collection!r} uses named vectors; ragops needs a single "
                "unnamed vector per point"
            )
        if params.size != self.dimension:
            raise InvalidInput(
                f"collection {self.collection!r} has dimension {params.size}, "
                f"expected {self.dimension}"
            )
        if params.distance != "Cosine":
            raise InvalidInput(
                f"collection {self.collection!r} uses {params.distance} distance, expected Cosine"
            )
        sparse = info.config.params.sparse_vectors or {}
        if set(sparse) - {SPARSE_VECTOR}:
            raise InvalidInput(
                f"collection {self.collection!r} has sparse vectors {sorted(sparse)}; ragops "
                f"writes only {SPARSE_VECTOR!r}"
            )
        if sparse and sparse[SPARSE_VECTOR].modifier != "idf":
            raise InvalidInput(
                f"collection {self.collection!r}: its sparse vector {SPARSE_VECTOR!r} lacks "
                "the IDF modifier that BM25 needs; build a new version"
            )
        self.lexical = bool(sparse)

    def drop(self) -> None:
        """Delete the collection (and, server-side, any alias pointing at it)."""
        with self._lock, _translated(f"drop collection {self.collection!r}"):
            self.client.delete_collection(self.collection)

    # -- persistence ------------------------------------------------------------------
    def save(self) -> None:
        """Nothing to do: each write was persisted before its call returned."""

    def copy(self) -> QdrantIndex:
        """Self (see the class docstring for why this is safe in the store's model)."""
        return self

    # -- writes -----------------------------------------------------------------------
    def upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        texts: list[str] | None = None,
    ) -> None:
        """As `index.base.VectorIndex.upsert`; on a lexical collection each point with a
        text also gets the text's BM25 sparse vector (`index.sparse.encode_document`)."""
        from qdrant_client.http import models

        if not ids:
            return
        with _translated(f"upsert into {self.collection!r}"), self._lock:
            vectors, latest = checked_upsert(ids, vectors, payloads, self.dimension)
            sparse = (
                encode_documents(texts, len(ids)) if self.lexical and texts is not None else None
            )

            def vector(i: int) -> Any:
                if sparse is None or not sparse[i][0]:
                    return vectors[i].tolist()
                indices, values = sparse[i]
                return {
                    "": vectors[i].tolist(),
                    SPARSE_VECTOR: models.SparseVector(indices=indices, values=values),
                }

            points = [
                models.PointStruct(
                    id=point_id(chunk_id),
                    vector=vector(i),
                    payload={**payloads[i], "chunk_id": chunk_id},
                )
                for chunk_id, i in latest.items()
            ]
            for start in range(0, len(points), UPSERT_BATCH):
                self.client.upsert(
                    self.collection, points=points[start : start + UPSERT_BATCH], wait=True
                )

    def delete(self, ids: list[str]) -> None:
        from qdrant_client.http import models

        if not ids:
            return
        with _translated(f"delete from {self.collection!r}"), self._lock:
            point_ids: list[Any] = [point_id(i) for i in dict.fromkeys(checked_ids(ids))]
            for start in range(0, len(point_ids), UPSERT_BATCH):
                selector = models.PointIdsList(points=point_ids[start : start + UPSERT_BATCH])
                self.client.delete(self.collection, points_selector=selector, wait=True)

    def erase(self, ids: list[str], *, document_ids: Iterable[str] = ()) -> int:
        """Delete the points of `ids` and of every chunk whose payload's `document_id`
        is in `document_ids`, and, in local mode on a path (the tests' and benches'
        stand-in), vacuum the collection's SQLite file so that no freed page keeps their
        pickled vector or payload. Returns how many of `ids` were present before
        (erasing again returns 0).

        On a server (url) only the delete is possible: the server drops the points'
        bytes from its segments and WAL when its own optimizers and WAL rotation run,
        and snapshots taken before keep them. Raises as `delete` does."""
        present = len(self.present(ids))
        self.delete(ids)
        documents = sorted(set(document_ids))
        if documents:
            present += self._delete_documents(documents)
        with self._lock, _translated(f"vacuum {self.collection!r}"):
            self._vacuum()
        return present

    def _delete_documents(self, document_ids: list[str]) -> int:
        """Delete the points whose payload names one of the documents; how many."""
        from qdrant_client.http import models

        selector = models.Filter(
            must=[models.FieldCondition(key="document_id", match=models.MatchAny(any=document_ids))]
        )
        with _translated(f"delete from {self.collection!r}"), self._lock:
            count = self.client.count(self.collection, count_filter=selector, exact=True).count
            if count:
                self.client.delete(
                    self.collection,
                    points_selector=models.FilterSelector(filter=selector),
                    wait=True,
                )
        return count

    def _vacuum(self) -> None:
        """Local mode on a path: rewrite the collection's SQLite file without its free
        pages, through the client's own connection when reachable (no second writer on
        the file), else through a new one. Nothing to do on a server or in memory."""
        options = self.client.init_options
        if not options.get("path"):
            return
        local = getattr(self.client, "_client", None)
        collection = getattr(local, "collections", {}).get(self.collection)
        connection = getattr(getattr(collection, "storage", None), "storage", None)
        if isinstance(connection, sqlite3.Connection):
            connection.execute("VACUUM")
            return
        file = Path(options["path"]) / "collection" / self.collection / "storage.sqlite"
        if file.exists():
            with closing(sqlite3.connect(file)) as separate:
                separate.execute("VACUUM")

    def present(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        wanted = {point_id(i): i for i in checked_ids(ids)}
        found: set[str] = set()
        with _translated(f"retrieve from {self.collection!r}"), self._lock:
            keys = list(wanted)
            for start in range(0, len(keys), UPSERT_BATCH):
                points = self.client.retrieve(
                    self.collection,
                    ids=keys[start : start + UPSERT_BATCH],
                    with_payload=False,
                    with_vectors=False,
                )
                found |= {wanted[str(p.id)] for p in points if str(p.id) in wanted}
        return found

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock, _translated(f"count {self.collection!r}"):
            return int(self.client.count(self.collection, exact=True).count)

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        with _translated(f"search {self.collection!r}"):
            query = checked_query(vector, top_k, self.dimension)
            filters = check_filters(filters, allow_empty_lists=True)
            if matches_nothing(top_k, filters):
                return []
            query_filter = to_filter(filters)
            with self._lock:
                response = self.client.query_points(
                    self.collection,
                    query=query[0].tolist(),
                    query_filter=query_filter,
                    limit=int(top_k),
                    with_payload=True,
                )
        return _hits(response.points)

    def search_hybrid(
        self,
        vector: np.ndarray,
        text: str,
        top_k: int,
        filters: dict[str, Any] | None = None,
        *,
        fusion: EngineFusion,
        candidates: int,
    ) -> list[Hit]:
        """One `query_points` call: the dense and the sparse prefetch (`candidates` each,
        both filtered) fused by the server per `fusion` (`index.sparse.HybridSearch`)."""
        from qdrant_client.http import models

        with _translated(f"search {self.collection!r}"):
            query = checked_query(vector, top_k, self.dimension)
            filters = check_filters(filters, allow_empty_lists=True)
            limit = checked_candidates(candidates, top_k)
            if not self.lexical:
                raise ValueError(lexical_refused(self.collection))
            if matches_nothing(top_k, filters):
                return []
            selector = to_filter(filters)
            indices, values = encode_query(text)
            prefetch = [models.Prefetch(query=query[0].tolist(), filter=selector, limit=limit)]
            if indices:
                sparse = models.SparseVector(indices=indices, values=values)
                prefetch.append(
                    models.Prefetch(query=sparse, using=SPARSE_VECTOR, filter=selector, limit=limit)
                )
            if fusion.method == "dbsf":
                fuse: Any = models.FusionQuery(fusion=models.Fusion.DBSF)
            else:  # without words, the dense list alone, in its own order
                weights = list(fusion.weights) if fusion.weights and indices else None
                fuse = models.RrfQuery(rrf=models.Rrf(k=fusion.k, weights=weights))
            with self._lock:
                response = self.client.query_points(
                    self.collection,
                    prefetch=prefetch,
                    query=fuse,
                    limit=int(top_k),
                    with_payload=True,
                )
        return _hits(response.points)

    def search_lexical(
        self, text: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        """The sparse side alone: BM25 scores, IDF applied by the server."""
        from qdrant_client.http import models

        with _translated(f"search {self.collection!r}"):
            top_k = checked_top_k(top_k)
            filters = check_filters(filters, allow_empty_lists=True)
            if not self.lexical:
                raise ValueError(lexical_refused(self.collection))
            indices, values = encode_query(text)
            if top_k <= 0 or not indices:
                return []
            if filters and any(isinstance(v, list) and not v for v in filters.values()):
                return []
            with self._lock:
                response = self.client.query_points(
                    self.collection,
                    query=models.SparseVector(indices=indices, values=values),
                    using=SPARSE_VECTOR,
                    query_filter=to_filter(filters),
                    limit=top_k,
                    with_payload=True,
                )
        return _hits(response.points)


def _hits(points: Iterable[Any]) -> list[Hit]:
    return [
        Hit(chunk_id=p.payload["chunk_id"], score=float(p.score), payload=dict(p.payload))
        for p in points
        if p.payload is not None
    ]


# -- shard snapshots (`index.snapshots`): a server's side. No server runs in this
# project's tests; these follow Qdrant's REST API (create / download / delete a shard
# snapshot, recover a shard from an uploaded one) and are not exercised here.
SNAPSHOT_SHARD = 0  # ragops creates every collection with a single shard


def _rest(client: QdrantClient) -> tuple[str, dict[str, str]]:
    """The server's REST base URL and auth header, as the client was made."""
    options = getattr(client, "init_options", {}) or {}
    url = options.get("url") or getattr(getattr(client, "_client", None), "rest_uri", None)
    if not url or _is_local(client):
        raise InvalidInput(
            "shard snapshots need a Qdrant server (RAGOPS_QDRANT_URL); this client is local"
        )
    key = options.get("api_key")
    return str(url).rstrip("/"), ({"api-key": str(key)} if key else {})


def _checked_response(response: Any, action: str) -> None:
    """HTTP errors of the raw REST calls, mapped as `_translated` maps the client's."""
    if response.status_code < 400:
        return
    message = f"Qdrant could not {action}: HTTP {response.status_code} {response.text[:300]}"
    if response.status_code == 404:
        raise NotFound(message)
    if response.status_code in (400, 422):
        raise InvalidInput(message)
    if response.status_code == 409:
        raise Conflict(message)
    raise Unavailable(f"{message}; check the Qdrant server's health and logs")


def download_shard_snapshot(client: QdrantClient, collection: str, out: Path) -> None:
    """Have the server snapshot the collection's shard, stream the archive to `out`, then
    delete it from the server. Raises as `_translated`."""
    import httpx

    url, headers = _rest(client)
    with _lock_for(client), _translated(f"snapshot collection {collection!r}"):
        description = client.create_shard_snapshot(collection, shard_id=SNAPSHOT_SHARD, wait=True)
    if description is None:
        raise Unavailable(f"Qdrant did not report the snapshot of {collection!r}; {_CHECK_SERVER}")
    name = description.name
    action = f"download snapshot {name!r} of {collection!r}"
    try:
        with (
            _translated(action),
            httpx.stream(
                "GET",
                f"{url}/collections/{collection}/shards/{SNAPSHOT_SHARD}/snapshots/{name}",
                headers=headers,
                timeout=httpx.Timeout(60.0, read=None),
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
            _checked_response(response, action)
            with open(out, "wb") as target:
                for chunk in response.iter_bytes(1 << 20):
                    target.write(chunk)
    finally:
        with _lock_for(client), _translated(f"delete snapshot {name!r} of {collection!r}"):
            client.delete_shard_snapshot(collection, SNAPSHOT_SHARD, name)


def upload_shard_snapshot(
    client: QdrantClient,
    collection: str,
    archive: Path,
    dimension: int,
    *,
    lexical: bool,
    sha256: str,
) -> QdrantIndex:
    """Create `collection` as ragops creates a version's (`QdrantIndex.open`), then
    recover its shard from `archive` (`POST .../shards/0/snapshots/upload`, priority
    `snapshot`, the server checking `sha256`). Raises as `_translated`."""
    import httpx

    url, headers = _rest(client)
    index = QdrantIndex.open(client, collection, dimension, lexical=lexical)
    action = f"recover {collection!r} from {archive.name}"
    with open(archive, "rb") as body, _translated(action):
        response = httpx.post(
            f"{url}/collections/{collection}/shards/{SNAPSHOT_SHARD}/snapshots/upload",
            params={"wait": "true", "priority": "snapshot", "checksum": sha256},
            files={"snapshot": (archive.name, body, "application/octet-stream")},
            headers=headers,
            timeout=httpx.Timeout(60.0, read=None, write=None),
        )
    _checked_response(response, action)
    index._check_existing(index.client.get_collection(collection))
    return index


def server_chunk_ids(index: QdrantIndex) -> list[str]:
    """Every point's chunk id in a server collection (its payload's `chunk_id`)."""
    found: list[str] = []
    offset: Any = None
    while True:
        with index._lock, _translated(f"scroll {index.collection!r}"):
            points, offset = index.client.scroll(
                index.collection,
                limit=UPSERT_BATCH,
                offset=offset,
                with_payload=["chunk_id"],
                with_vectors=False,
            )
        found += [
            str(p.payload["chunk_id"]) for p in points if p.payload and "chunk_id" in p.payload
        ]
        if offset is None:
            return found
