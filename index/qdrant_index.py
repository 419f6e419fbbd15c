"""Qdrant backend: one collection per index version, an alias per knowledge base for the
live version, payload indexes for the filterable fields.

The same client calls serve a Qdrant server (`make_client(url=...)`, production) and
qdrant-client's local mode (`make_client(path=...)`, small/offline use and tests).

Local mode limits (checked against qdrant-client 1.20):
- single process: it takes an exclusive file lock on its folder, so one process may open a
  path at a time. This module caches one client per path per process; a second process
  gets a RuntimeError naming RAGOPS_QDRANT_URL (a server) as the alternative.
- not thread-safe by itself: calls on a local client are serialised by a per-client lock.
- payload indexes are accepted and recorded but do not speed up filters (every search is
  a brute-force scan); they are still created so the server path is the same code.
- aliases are supported and persisted.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.base import Hit, check_filters, checked_upsert, is_number

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models

# Fixed forever: point ids are derived from chunk ids with it, so changing it would orphan
# every stored point.
POINT_NAMESPACE = uuid.UUID("6f1c1f0e-5a0b-4d55-9a43-2f0c7c1e9b21")

# Points per upsert request: large enough to amortise the round trip, small enough to stay
# far below the server's request size limit at dimension 1024+.
UPSERT_BATCH = 256

KEYWORD_FIELDS = ("document_id", "revision_id", "filename", "section")
INTEGER_FIELDS = ("page_number",)

_clients: dict[Path, QdrantClient] = {}
_clients_guard = threading.Lock()
_local_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def point_id(chunk_id: str) -> str:
    """Qdrant ids must be unsigned ints or UUIDs; chunk ids are arbitrary strings."""
    return str(uuid.uuid5(POINT_NAMESPACE, chunk_id))


def make_client(
    *, url: str | None = None, path: Path | None = None, api_key: str | None = None
) -> QdrantClient:
    """A client for the server at `url`, else the local-mode store at `path`.

    Local clients are cached per resolved path: local mode locks its folder, so a second
    client on the same path in this process would fail. Close them with `close_client`.
    """
    from qdrant_client import QdrantClient

    if url and path is not None:
        raise ValueError("give a Qdrant server url or a local-mode path, not both")
    if url:
        with _translated(f"connect to Qdrant at {url}"):
            return QdrantClient(url=url, api_key=api_key)
    if path is None:
        raise ValueError("give a Qdrant server url (RAGOPS_QDRANT_URL) or a local-mode path")
    resolved = path.expanduser().resolve()
    with _clients_guard:
        client = _clients.get(resolved)
        if client is not None:
            return client
        resolved.mkdir(parents=True, exist_ok=True)
        try:
            # Thread checks off: our per-client lock serialises every call instead.
            client = QdrantClient(path=str(resolved), force_disable_check_same_thread=True)
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise
            raise RuntimeError(
                f"Qdrant local storage {resolved} is already open in another process; "
                "local mode is single-process. Run a Qdrant server and set RAGOPS_QDRANT_URL "
                "to share an index between processes."
            ) from exc
        _clients[resolved] = client
        return client


def close_client(path: Path) -> None:
    """Close and forget the cached local client for `path` (releases its folder lock)."""
    with _clients_guard:
        client = _clients.pop(path.expanduser().resolve(), None)
    if client is not None:
        with _lock_for(client):
            client.close()


def _is_local(client: QdrantClient) -> bool:
    options = client.init_options
    return bool(options.get("path")) or options.get("location") == ":memory:"


def _lock_for(client: QdrantClient) -> Any:
    """A lock serialising calls on a local-mode client; servers handle concurrency."""
    if not _is_local(client):
        return nullcontext()
    with _clients_guard:
        lock = _local_locks.get(client)
        if lock is None:
            lock = _local_locks[client] = threading.Lock()
    return lock


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Map qdrant-client errors onto the types FAISS raises for the same misuse:
    missing thing → LookupError, bad input → ValueError, anything else → RuntimeError."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except UnexpectedResponse as exc:
        detail = exc.content.decode(errors="replace")[:300] if exc.content else exc.reason_phrase
        message = f"Qdrant could not {action}: HTTP {exc.status_code} {detail}"
        if exc.status_code == 404:
            raise LookupError(message) from exc
        if exc.status_code in (400, 422):
            raise ValueError(message) from exc
        raise RuntimeError(message) from exc
    except ResponseHandlingException as exc:
        raise RuntimeError(f"Qdrant could not {action}: {exc}; is the server up?") from exc
    except ValueError as exc:
        # local mode reports missing collections as ValueError("Collection x not found")
        if "not found" in str(exc):
            raise LookupError(f"Qdrant could not {action}: {exc}") from exc
        raise ValueError(f"Qdrant could not {action}: {exc}") from exc
    except Exception as exc:
        code = getattr(exc, "code", None)
        name = getattr(code() if callable(code) else None, "name", "")
        if name == "NOT_FOUND":  # gRPC (prefer_grpc=True) status codes
            raise LookupError(f"Qdrant could not {action}: {exc}") from exc
        if name == "INVALID_ARGUMENT":
            raise ValueError(f"Qdrant could not {action}: {exc}") from exc
        if isinstance(exc, LookupError | RuntimeError):
            raise
        raise RuntimeError(f"Qdrant could not {action}: {exc}") from exc


def collection_name(kb_id: str, version_number: int, version_id: str) -> str:
    """Stable, Qdrant-safe collection name for one index version.

    Readable slug plus a hash of the exact inputs, so two ids that slug alike never collide.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", kb_id)[:48] or "kb"
    digest = hashlib.sha256(f"{kb_id}\0{version_number}\0{version_id}".encode()).hexdigest()
    return f"ragops_{slug}_v{version_number}_{digest[:12]}"


def resolve_alias(client: QdrantClient, alias: str) -> str | None:
    """The collection `alias` points at, or None when the alias does not exist."""
    with _lock_for(client), _translated(f"list aliases to resolve {alias!r}"):
        aliases = client.get_aliases().aliases
    return next((a.collection_name for a in aliases if a.alias_name == alias), None)


def set_alias(client: QdrantClient, alias: str, collection: str) -> None:
    """Point `alias` at `collection` atomically: readers resolve either the old or the new
    collection, never nothing. Delete and create travel in ONE `update_collection_aliases`
    call; the delete is left out when the alias does not exist yet, since a server rejects
    deleting a missing alias. Promotions must be serialised by the caller (the catalog)."""
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


def _condition(key: str, want: Any) -> models.FieldCondition | models.Filter:
    """One filter entry as Qdrant conditions, with the semantics of `index.base.matches`."""
    from qdrant_client.http import models

    def value_ok(v: Any) -> bool:
        return isinstance(v, str | int)  # bool is an int

    if isinstance(want, dict):
        check_filters({key: want})  # ValueError naming the key, as for FAISS
        if all(is_number(b) for b in want.values()):
            return models.FieldCondition(key=key, range=models.Range(**want))
        # ISO dates: Qdrant compares RFC 3339 payload strings as date-times (UTC).
        return models.FieldCondition(key=key, range=models.DatetimeRange(**want))
    if not isinstance(want, list):
        if not value_ok(want):
            raise ValueError(
                f"filter {key}={want!r}: Qdrant matches strings, integers and booleans only"
            )
        return models.FieldCondition(key=key, match=models.MatchValue(value=want))
    if not all(value_ok(v) for v in want):
        raise ValueError(f"filter {key}={want!r}: list values must be strings or integers")
    # MatchAny takes one homogeneous list of strings or of ints; booleans and mixed lists
    # become an OR of conditions.
    strs = [v for v in want if isinstance(v, str)]
    ints = [v for v in want if isinstance(v, int) and not isinstance(v, bool)]
    bools = [v for v in want if isinstance(v, bool)]
    parts: list[Any] = []
    if strs:
        parts.append(models.FieldCondition(key=key, match=models.MatchAny(any=strs)))
    if ints:
        parts.append(models.FieldCondition(key=key, match=models.MatchAny(any=ints)))
    parts += [models.FieldCondition(key=key, match=models.MatchValue(value=b)) for b in bools]
    return parts[0] if len(parts) == 1 else models.Filter(should=parts)


def to_filter(filters: dict[str, Any] | None) -> models.Filter | None:
    """Equality filters → `must` conditions; a list value → MatchAny (any of these); a
    range object → `Range` (numbers) or `DatetimeRange` (ISO dates)."""
    if not filters:
        return None
    from qdrant_client.http import models

    return models.Filter(must=[_condition(k, v) for k, v in filters.items()])


class QdrantIndex:
    """One index version stored as one Qdrant collection (cosine distance).

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

        idx = QdrantIndex.open(make_client(path=Path("data/qdrant")), "kb1_v1", 384)
        idx.upsert(["c1"], vectors, [{"document_id": "d1"}])
        idx.search(vectors[0], top_k=5, filters={"document_id": ["d1", "d2"]})
    """

    backend = "qdrant"

    def __init__(self, client: QdrantClient, collection: str, dimension: int) -> None:
        self.client = client
        self.collection = collection
        self.dimension = dimension
        self._lock = _lock_for(client)

    @classmethod
    def open(cls, client: QdrantClient, collection: str, dimension: int) -> QdrantIndex:
        """Open `collection`, creating it (and its payload indexes) when missing.

        Raises ValueError when it exists with another dimension or is not a single-vector
        cosine collection.
        """
        from qdrant_client.http import models

        index = cls(client, collection, dimension)
        with index._lock, _translated(f"open collection {collection!r}"):
            if client.collection_exists(collection):
                index._check_existing(client.get_collection(collection))
                return index
            client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            )
            schemas = [(f, models.PayloadSchemaType.KEYWORD) for f in KEYWORD_FIELDS]
            schemas += [(f, models.PayloadSchemaType.INTEGER) for f in INTEGER_FIELDS]
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
            raise ValueError(
                f"collection {self.collection!r} uses named vectors; ragops needs a single "
                "unnamed vector per point"
            )
        if params.size != self.dimension:
            raise ValueError(
                f"collection {self.collection!r} has dimension {params.size}, "
                f"expected {self.dimension}"
            )
        if params.distance != "Cosine":
            raise ValueError(
                f"collection {self.collection!r} uses {params.distance} distance, expected Cosine"
            )

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
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        from qdrant_client.http import models

        if not ids:
            return
        vectors, latest = checked_upsert(ids, vectors, payloads, self.dimension)
        points = [
            models.PointStruct(
                id=point_id(chunk_id),
                vector=vectors[i].tolist(),
                payload={**payloads[i], "chunk_id": chunk_id},
            )
            for chunk_id, i in latest.items()
        ]
        with self._lock, _translated(f"upsert into {self.collection!r}"):
            for start in range(0, len(points), UPSERT_BATCH):
                self.client.upsert(
                    self.collection, points=points[start : start + UPSERT_BATCH], wait=True
                )

    def delete(self, ids: list[str]) -> None:
        from qdrant_client.http import models

        if not ids:
            return
        point_ids: list[Any] = [point_id(i) for i in dict.fromkeys(ids)]
        with self._lock, _translated(f"delete from {self.collection!r}"):
            for start in range(0, len(point_ids), UPSERT_BATCH):
                selector = models.PointIdsList(points=point_ids[start : start + UPSERT_BATCH])
                self.client.delete(self.collection, points_selector=selector, wait=True)

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock, _translated(f"count {self.collection!r}"):
            return int(self.client.count(self.collection, exact=True).count)

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise ValueError(f"query has dimension {query.shape[1]}, index has {self.dimension}")
        if top_k <= 0:
            return []
        if filters and any(isinstance(v, list) and not v for v in filters.values()):
            return []  # "any of nothing" matches nothing
        query_filter = to_filter(filters)
        with self._lock, _translated(f"search {self.collection!r}"):
            response = self.client.query_points(
                self.collection,
                query=query[0].tolist(),
                query_filter=query_filter,
                limit=top_k,
                with_payload=True,
            )
        return [
            Hit(chunk_id=p.payload["chunk_id"], score=float(p.score), payload=dict(p.payload))
            for p in response.points
            if p.payload is not None
        ]
