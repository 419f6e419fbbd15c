"""Qdrant Edge backend: Qdrant's engine in this process (qdrant-edge-py), one shard
directory per index version under the data dir's Qdrant folder
(`<qdrant_path>/<collection name>/`, the name from `index.qdrant_index.collection_name`).

It is the embedded mode of the `qdrant` backend, used when RAGOPS_QDRANT_URL is not set;
with it, `index.qdrant_index.QdrantIndex` keeps the same index versions on a server. Both
share point ids, payload indexes and the filter translation (`index.qdrant_common`).

How a shard is kept (checked against qdrant-edge-py 0.9.0, a beta):
- storage: segments (vectors in mmap chunks, payloads in pages, an id tracker, payload
  indexes) and `edge_config.json`. The write-ahead log is off: Edge 0.9 never truncates
  it, so it would keep every write ever made, erased ones included, and grow without
  bound. Writes land in the segments at once and are durable once `save()` flushes them;
  a crash before that loses the unflushed part of that write, and a crash mid-write may
  leave some of its batches applied, as on a server (the job is retried, and writes are
  idempotent by chunk id). Files are preallocated 32 MB chunks, mostly holes on disk.
- searches see every write at once: new points land in a plain (exact) appendable
  segment. `save()` has HNSW built (`optimize()`) once INDEXING_THRESHOLD_KB of vectors
  wait unindexed (Qdrant's default, ~6,500 vectors at 384 dimensions); smaller shards
  stay plain, where an exact scan takes about a millisecond.
- `optimize()` holds the GIL for its whole run (seconds at 20k vectors), which would
  freeze every other thread of the process, the API's included. So it runs in a child
  process on a copy of the shard while this process keeps answering from the shard as it
  is, and the copy is swapped in under the index's lock (`EdgeIndex._rebuild`); writers
  of that index wait meanwhile. A swap cut short by a crash is finished or rolled back
  when the shard is next opened.
- erase: the points are deleted, then the same rebuild runs with a vacuum threshold of
  0, which rewrites every segment that holds a deleted point (erased now or deleted
  earlier) without it, and the previous directory is deleted whole: no byte of the erased
  points (payload strings, vectors) stays in any file of the shard.
- hybrid search (`index.sparse`): a shard created with `lexical=True` (every new index
  version) declares a sparse vector `bm25` with the IDF modifier beside the unnamed dense
  vector, and each point written with its text holds both. `search_hybrid` asks for a
  dense and a sparse prefetch, both filtered, fused by the engine (RRF or DBSF) in one
  query. A shard created before has no sparse vector (`lexical` False): its text is
  searched in-process (`retrieval.bm25`). Loading never passes the sparse config: Edge
  inherits it from the shard, so rebuilds and optimizations keep it.
- payload indexes: keyword for document_id, revision_id, filename, section; float for
  page_number (`index.qdrant_common`); other keys are filtered by reading payloads.
- one process per shard: Edge does not lock its directory and two processes writing one
  shard would corrupt it, so an advisory lock file beside it (`.<name>.lock`) is held
  while it is open; another process (or a second `EdgeShards` on the same folder) gets
  Unavailable naming RAGOPS_QDRANT_URL. Within a process `EdgeShards` keeps one open
  `EdgeIndex` per shard; calls on it are serialised (Edge holds the GIL anyway).
- filters: Edge's query model is the server's (`build_filter`), with one binding quirk:
  0.9.0's MatchValue reads a Python bool as the integer 1 or 0 (bool is an int), so
  booleans go in as numpy.bool_, which only its boolean variant accepts; date bounds are
  normalised to RFC 3339, the only form Edge parses.
- collections of qdrant-client's local mode, the embedded engine before Edge
  (`<qdrant_path>/collection/<name>/`), count as existing shards: opening one imports its
  points into a new shard, and opening or dropping it deletes its files.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import Conflict, InvalidInput, NotFound, RagopsError, Unavailable
from index.base import (
    Hit,
    as_utc_datetime,
    check_filters,
    checked_ids,
    checked_query,
    checked_upsert,
)
from index.qdrant_common import (
    KEYWORD_FIELDS,
    NAME_RE,
    NUMBER_FIELDS,
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
    from qdrant_edge import EdgeConfig, EdgeShard, ShardInfo

log = logging.getLogger(__name__)

ENGINE = "qdrant-edge"
CONFIG_FILE = "edge_config.json"
SEGMENTS_DIR = "segments"
ALIASES_FILE = "aliases.json"

# Unindexed vectors (KB) from which `save()` has HNSW built: Qdrant's default indexing
# threshold, which the shard's optimizer uses too.
INDEXING_THRESHOLD_KB = 10_000
# A plain delete leaves its points in their segment until this share of it (of at least
# VACUUM_MIN_VECTORS vectors) is deleted (Qdrant's defaults); `erase` vacuums at 0.
DELETED_THRESHOLD = 0.2
VACUUM_MIN_VECTORS = 1000
# Points per update call: bounds the Python objects built for one call.
WRITE_BATCH = 1024

_CHECK = "check that the folder exists and is writable and that the disk is not full"
_ONE_PROCESS = (
    "an Edge shard serves one process at a time; run a Qdrant server and set "
    "RAGOPS_QDRANT_URL to share an index between processes"
)


@contextmanager
def _translated(action: str, path: Path) -> Iterator[None]:
    """The one place qdrant-edge exceptions become project errors (`index.base`):
    ValueError/TypeError (input refused: ours, or a payload value Edge cannot store) →
    InvalidInput; anything else (Edge raises a bare Exception for storage failures, OSError
    from the files around it) → Unavailable naming the folder."""
    try:
        yield
    except RagopsError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"Qdrant Edge could not {action}: {str(exc)[:300]}") from exc
    except Exception as exc:
        raise Unavailable(f"Qdrant Edge could not {action} at {path}: {exc}; {_CHECK}") from exc


def _rfc3339(bound: str) -> str:
    parsed = as_utc_datetime(bound)
    if parsed is None:  # check_filters refused it already
        raise ValueError(f"{bound!r} is not an ISO 8601 date")
    return parsed.isoformat() + "Z"


@functools.cache
def vocabulary() -> FilterVocabulary:
    """Edge's spelling of the conditions `build_filter` emits."""
    from qdrant_edge import (
        FieldCondition,
        Filter,
        MatchAny,
        MatchValue,
        RangeDateTime,
        RangeFloat,
    )

    def match_value(value: str | bool) -> Any:
        # 0.9.0 reads a bool as the integer 1/0; numpy.bool_ is no int (module docstring)
        return MatchValue(np.bool_(value) if isinstance(value, bool) else value)

    def date_range(**bounds: str) -> Any:
        return RangeDateTime(**{op: _rfc3339(b) for op, b in bounds.items()})

    return FilterVocabulary(
        field=lambda key, match=None, range=None: FieldCondition(key, match=match, range=range),
        match_value=match_value,
        match_any=lambda values: MatchAny(values),
        number_range=RangeFloat,
        date_range=date_range,
        filter=Filter,
    )


def to_edge_filter(filters: dict[str, Any] | None) -> Any | None:
    """`index.base` filters as an Edge `Filter` (see `index.qdrant_common.build_filter`)."""
    return build_filter(filters, vocabulary())


def _config(
    dimension: int,
    *,
    purge: bool = False,
    indexing_kb: int | None = None,
    lexical: bool = False,
) -> EdgeConfig:
    """The shard's configuration; `purge` vacuums every segment holding a deleted point.
    Every optimizer value is explicit (loading replaces the persisted ones as a whole), so
    loading with it undoes a purge's thresholds. `lexical` (creating only) declares the
    BM25 sparse vector; loading leaves it out, and Edge keeps what the shard has."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        Modifier,
    )

    sparse = {SPARSE_VECTOR: EdgeSparseVectorParams(modifier=Modifier.Idf)} if lexical else None
    return EdgeConfig(
        vectors=EdgeVectorParams(size=dimension, distance=Distance.Cosine),
        sparse_vectors=sparse,
        optimizers=EdgeOptimizersConfig(
            deleted_threshold=0.0 if purge else DELETED_THRESHOLD,
            vacuum_min_vector_number=0 if purge else VACUUM_MIN_VECTORS,
            indexing_threshold=indexing_kb or INDEXING_THRESHOLD_KB,
        ),
        wal_enabled=False,
    )


def _check_stored(path: Path, dimension: int) -> bool:
    """InvalidInput when the shard at `path` holds other vectors than ragops writes;
    whether it holds BM25 sparse vectors."""
    try:
        stored = json.loads((path / CONFIG_FILE).read_text())
        vectors, sparse = stored.get("vectors"), stored.get("sparse_vectors") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise Unavailable(
            f"Qdrant Edge could not read {path / CONFIG_FILE}: {exc}; the shard is damaged "
            "or unreadable"
        ) from exc
    name = path.name
    if not isinstance(vectors, dict) or set(vectors) != {""}:
        raise InvalidInput(
            f"shard {name!r} uses named vectors; ragops needs a single unnamed vector per point"
        )
    size, distance = vectors[""].get("size"), vectors[""].get("distance")
    if size != dimension:
        raise InvalidInput(f"shard {name!r} has dimension {size}, expected {dimension}")
    if distance != "Cosine":
        raise InvalidInput(f"shard {name!r} uses {distance} distance, expected Cosine")
    if not isinstance(sparse, dict) or set(sparse) - {SPARSE_VECTOR}:
        raise InvalidInput(
            f"shard {name!r} has sparse vectors {sorted(sparse)}; ragops writes only "
            f"{SPARSE_VECTOR!r}"
        )
    if sparse and (sparse[SPARSE_VECTOR] or {}).get("modifier") != "idf":
        raise InvalidInput(
            f"shard {name!r}: its sparse vector {SPARSE_VECTOR!r} lacks the IDF modifier "
            "that BM25 needs; build a new version"
        )
    return bool(sparse)


def _load(path: Path, dimension: int, *, lexical: bool = False) -> tuple[EdgeShard, bool]:
    """Open the shard at `path`, creating it when it holds none (with the BM25 sparse
    vector when `lexical`), with its payload indexes; and whether it holds sparse vectors."""
    from qdrant_edge import EdgeShard, PayloadSchemaType, UpdateOperation

    if (path / CONFIG_FILE).is_file():
        lexical = _check_stored(path, dimension)
        shard = EdgeShard.load(str(path), _config(dimension))
    else:
        path.mkdir(parents=True, exist_ok=True)
        shard = EdgeShard.create(str(path), _config(dimension, lexical=lexical))
    have = shard.info().payload_schema
    wanted = [(f, PayloadSchemaType.Keyword) for f in KEYWORD_FIELDS]
    wanted += [(f, PayloadSchemaType.Float) for f in NUMBER_FIELDS]
    missing = [(f, kind) for f, kind in wanted if f not in have]
    for field_name, kind in missing:
        shard.update(UpdateOperation.create_field_index(field_name, kind))
    if missing:
        shard.flush()
    return shard, lexical


def _unindexed(info: ShardInfo, *, lexical: bool) -> int:
    """Dense vectors not yet in an HNSW graph. Edge counts a point's BM25 sparse vector as
    indexed from the start (a sparse index is always built), so in a lexical shard every
    point adds one to `indexed_vectors_count` before any HNSW exists: without taking that
    off, a lexical shard would look fully indexed and never get its graph. (A point
    written without text has no sparse vector: it is counted as unindexed until a
    rebuild, whose leftover `EdgeIndex._left_unindexed` absorbs it.)"""
    per_point = 2 if lexical else 1
    return max(0, per_point * info.points_count - info.indexed_vectors_count)


def _copy_file(src: str, dst: str) -> None:
    """Copy keeping the file's holes: Edge preallocates 32 MB chunks that are mostly
    holes, which a plain copy would write out as zeros."""
    if not hasattr(os, "SEEK_DATA"):
        shutil.copyfile(src, dst)
        return
    with open(src, "rb") as source, open(dst, "wb") as target:
        size = os.fstat(source.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(source.fileno(), offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(source.fileno(), start, os.SEEK_HOLE)
            source.seek(start)
            target.seek(start)
            while start < end:
                chunk = source.read(min(end - start, 1 << 20))
                if not chunk:
                    break
                target.write(chunk)
                start += len(chunk)
            offset = end
        target.truncate(size)


def optimize_shard(
    path: str, dimension: int, *, purge: bool = False, indexing_kb: int | None = None
) -> bool:
    """Run Edge's optimizers on the closed shard at `path` until none has work left (HNSW,
    merges, vacuum; `purge`: vacuum every segment that holds a deleted point), flush and
    close it; whether anything changed. Runs in a child process (module docstring), with
    the parent's indexing threshold."""
    from qdrant_edge import EdgeShard

    shard = EdgeShard.load(path, _config(dimension, purge=purge, indexing_kb=indexing_kb))
    try:
        changed = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return bool(changed)


_CHILD = (
    "import sys\n"
    "from index.edge_index import optimize_shard\n"
    "path, dimension, mode, indexing_kb = sys.argv[1:]\n"
    "optimize_shard(path, int(dimension), purge=mode == 'purge', indexing_kb=int(indexing_kb))\n"
)


def _optimize_elsewhere(path: Path, dimension: int, *, purge: bool) -> None:
    """`optimize_shard` in a child process, so the GIL it holds is not this process's."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(path),
            str(dimension),
            "purge" if purge else "index",
            str(INDEXING_THRESHOLD_KB),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        check=False,
    )
    if done.returncode != 0:
        raise Unavailable(
            f"Qdrant Edge could not optimize a copy of its shard at {path} (exit "
            f"{done.returncode}): {done.stderr.strip()[-500:]}; {_CHECK}"
        )


def _sibling(path: Path, kind: str, tag: str = "") -> Path:
    return path.with_name(f".{path.name}.{kind}{'-' + tag if tag else ''}")


def _leftovers(path: Path) -> list[Path]:
    """Directories a rebuild of `path` leaves while it runs (work, ready, old)."""
    prefix = f".{path.name}."
    return sorted(
        p
        for p in path.parent.glob(prefix + "*")
        if p.is_dir() and p.name[len(prefix) :].split("-")[0] in ("work", "ready", "old")
    )


def _recover(path: Path) -> None:
    """Finish a swap a crash cut short (the shard was moved away: its ready copy becomes
    the shard, or without one the shard moves back), then delete every leftover of a
    rebuild."""
    leftovers = _leftovers(path)
    ready = [p for p in leftovers if p.name.startswith(f".{path.name}.ready-")]
    old = [p for p in leftovers if p.name.startswith(f".{path.name}.old-")]
    if not path.exists() and (ready or old):
        (ready or old)[-1].rename(path)
        log.warning("Qdrant Edge: finished an interrupted swap of %s", path)
    for leftover in leftovers:
        if leftover.exists():
            shutil.rmtree(leftover)


def _remove(path: Path) -> None:
    """Delete the shard at `path`, a rebuild's leftovers and its lock file (which the
    caller holds)."""
    if path.exists():
        shutil.rmtree(path)
    for leftover in _leftovers(path):
        shutil.rmtree(leftover)
    _sibling(path, "lock").unlink(missing_ok=True)


def _lock(path: Path) -> int:
    """Hold the shard's lock file (beside it); Unavailable when another holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_sibling(path, "lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise Unavailable(
            f"Qdrant Edge shard {path} is open in another process (or another client in "
            f"this one); {_ONE_PROCESS}"
        ) from exc
    return fd


def _local_mode_collection(root: Path, name: str) -> bool:
    """Whether qdrant-client's local mode (the embedded engine before Qdrant Edge) left a
    collection `name` in `root`."""
    return (root / "collection" / name / "storage.sqlite").is_file()


def _import_local_mode(root: Path, name: str, index: EdgeIndex | None) -> None:
    """Copy the points of the local-mode collection `name` into `index` (None: nothing to
    copy them into, the version is dropped), then delete that collection's files."""
    if not _local_mode_collection(root, name):
        return
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(root))
    try:
        offset: Any = None
        while index is not None:
            points, offset = client.scroll(
                name, limit=WRITE_BATCH, offset=offset, with_payload=True, with_vectors=True
            )
            rows = [p for p in points if p.payload and "chunk_id" in p.payload]
            if rows:
                index.upsert(
                    [str(p.payload["chunk_id"]) for p in rows],  # type: ignore[index]
                    np.array([p.vector for p in rows], dtype=np.float32),
                    [
                        {k: v for k, v in p.payload.items() if k != "chunk_id"}  # type: ignore[union-attr]
                        for p in rows
                    ],
                )
            if offset is None:
                index.save()
                log.info("Qdrant Edge: imported local-mode collection %s into its shard", name)
                break
        client.delete_collection(name)
    finally:
        client.close()


def _damaged(archive: Path, exc: BaseException) -> InvalidInput:
    return InvalidInput(
        f"{archive.name} is not a readable Qdrant shard snapshot ({str(exc)[:300]}); it may "
        "be truncated or damaged: export it again or check its sha256"
    )


def unpack_snapshot(archive: Path, target: Path) -> Path:
    """Unpack the shard snapshot `archive` into `target` (which must not exist) and make
    it loadable: a server's snapshot has no Edge config, which Edge derives from its
    segments. InvalidInput when it is not a readable shard snapshot; `target` is
    removed then."""
    from qdrant_edge import EdgeShard

    if target.exists():
        raise Conflict(f"{target} exists already")
    try:
        try:
            EdgeShard.unpack_snapshot(str(archive), str(target))
            if not (target / SEGMENTS_DIR).is_dir():
                raise ValueError("it holds no segments/ folder")
            if not (target / CONFIG_FILE).is_file():
                EdgeShard.load(str(target)).close()
        except Exception as exc:
            raise _damaged(archive, exc) from exc
        except BaseException as exc:  # a panic inside the engine (pyo3's PanicException)
            if type(exc).__name__ != "PanicException":
                raise
            raise _damaged(archive, exc) from exc
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def inspect_unpacked(path: Path, dimension: int | None = None) -> tuple[int, bool, int]:
    """(dimension, lexical, points) of the unpacked shard at `path`, loading it once to
    prove its segments read. InvalidInput when it holds other vectors than ragops writes
    (or, given `dimension`, another dimension) or cannot be loaded."""
    from qdrant_edge import CountRequest, EdgeShard

    archive = Path(path.name)
    try:
        stored = json.loads((path / CONFIG_FILE).read_text())
        size = int(stored["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"the snapshot holds no single unnamed dense vector ragops can serve ({exc})"
        ) from exc
    if dimension is not None and size != dimension:
        raise InvalidInput(
            f"the snapshot holds vectors of dimension {size}, the target needs {dimension}; "
            "restore it into a knowledge base whose embedding model has that dimension"
        )
    want = size
    try:
        lexical = _check_stored(path, want)
    except Unavailable as exc:
        raise _damaged(archive, exc) from exc
    try:
        try:
            shard = EdgeShard.load(str(path), _config(want))
            try:
                points = int(shard.count(CountRequest(exact=True)))
            finally:
                shard.close()
        except Exception as exc:
            raise _damaged(archive, exc) from exc
    except BaseException as exc:
        if isinstance(exc, RagopsError) or type(exc).__name__ != "PanicException":
            raise
        raise _damaged(archive, exc) from exc
    return want, lexical, points


class EdgeIndex:
    """One index version stored as one Qdrant Edge shard (cosine distance).

    Same contract as FaissIndex and QdrantIndex (`index.base.VectorIndex`). Like a server
    collection, writes apply in place: `copy()` returns self, each update batch is atomic,
    and a failed write keeps its earlier batches (see `index.store`). `save()` flushes and
    has HNSW built when it pays off; `erase` purges (module docstring). Open it through
    `EdgeShards.open`, which keeps one per shard in a process.

    Example::

        shards = EdgeShards(Path("data/qdrant"))
        idx = shards.open("kb1_v1", 384)
        idx.upsert(["c1"], vectors, [{"document_id": "d1"}])
        idx.save()
        idx.search(vectors[0], top_k=5, filters={"document_id": ["d1", "d2"]})
    """

    backend = "qdrant"
    engine = ENGINE

    def __init__(
        self, path: Path, dimension: int, shard: EdgeShard, lock_fd: int, *, lexical: bool = False
    ) -> None:
        self.path = path
        self.collection = path.name
        self.dimension = dimension
        self.lexical = lexical  # holds BM25 sparse vectors (`index.sparse.HybridSearch`)
        self._shard: EdgeShard | None = shard
        self._lock_fd: int | None = lock_fd
        self._lock = threading.Lock()  # one call on the shard at a time, and the swap
        self._writing = threading.RLock()  # writes, saves and rebuilds, one at a time
        self._dropped = False
        # unindexed vectors the last optimize left as they were (it found no work there)
        self._left_unindexed = 0

    @classmethod
    def _open(cls, path: Path, dimension: int, *, lexical: bool = False) -> EdgeIndex:
        fd = _lock(path)
        try:
            with _translated(f"open shard {path.name!r}", path):
                _recover(path)
                shard, lexical = _load(path, dimension, lexical=lexical)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, dimension, shard, fd, lexical=lexical)

    @property
    def is_open(self) -> bool:
        return self._shard is not None

    @contextmanager
    def _using(self, action: str) -> Iterator[EdgeShard]:
        with _translated(action, self.path), self._lock:
            if self._shard is None:
                if self._dropped:
                    raise NotFound(f"Qdrant Edge shard {self.collection!r} was dropped")
                raise Unavailable(f"Qdrant Edge shard {self.collection!r} is closed; open it again")
            yield self._shard

    # -- writes -----------------------------------------------------------------------
    def upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        texts: list[str] | None = None,
    ) -> None:
        """As `index.base.VectorIndex.upsert`; on a lexical shard each point with a text
        also gets the text's BM25 sparse vector (`index.sparse.encode_document`)."""
        from qdrant_edge import Point, SparseVector, UpdateOperation

        if not ids:
            return
        action = f"upsert into {self.collection!r}"
        with _translated(action, self.path):
            matrix, latest = checked_upsert(ids, vectors, payloads, self.dimension)
            sparse = (
                encode_documents(texts, len(ids)) if self.lexical and texts is not None else None
            )

            def vector(i: int) -> Any:
                if sparse is None or not sparse[i][0]:
                    return matrix[i]
                return {"": matrix[i], SPARSE_VECTOR: SparseVector(*sparse[i])}

            points = [
                Point(point_id(chunk_id), vector(i), {**payloads[i], "chunk_id": chunk_id})
                for chunk_id, i in latest.items()
            ]
        with self._writing:
            for start in range(0, len(points), WRITE_BATCH):
                batch = points[start : start + WRITE_BATCH]
                with self._using(action) as shard:
                    shard.update(UpdateOperation.upsert_points(batch))

    def delete(self, ids: list[str]) -> None:
        from qdrant_edge import UpdateOperation

        if not ids:
            return
        action = f"delete from {self.collection!r}"
        with _translated(action, self.path):
            keys: list[Any] = [point_id(i) for i in dict.fromkeys(checked_ids(ids))]
        with self._writing:
            for start in range(0, len(keys), WRITE_BATCH):
                with self._using(action) as shard:
                    shard.update(UpdateOperation.delete_points(keys[start : start + WRITE_BATCH]))

    def erase(self, ids: list[str], *, document_ids: Iterable[str] = ()) -> int:
        """Delete the points of `ids` and of every chunk whose payload's `document_id` is
        in `document_ids`, then rebuild the shard so that no file keeps a byte of them
        (or of any point deleted before). Returns how many were present (erasing again
        returns 0). Raises as `delete` does."""
        from qdrant_edge import CountRequest, UpdateOperation

        documents = sorted(set(document_ids))
        with self._writing:
            present = len(self.present(ids))
            self.delete(ids)
            if documents:
                selector = to_edge_filter({"document_id": documents})
                with self._using(f"delete from {self.collection!r}") as shard:
                    found = int(shard.count(CountRequest(exact=True, filter=selector)))
                    if found:
                        shard.update(UpdateOperation.delete_points_by_filter(selector))
                present += found
            self._rebuild(purge=True)
        return present

    def present(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        action = f"retrieve from {self.collection!r}"
        with _translated(action, self.path):
            wanted = {point_id(i): i for i in checked_ids(ids)}
        keys: list[Any] = list(wanted)
        found: set[str] = set()
        for start in range(0, len(keys), WRITE_BATCH):
            with self._using(action) as shard:
                records = shard.retrieve(
                    keys[start : start + WRITE_BATCH], with_payload=False, with_vector=False
                )
            found |= {wanted[str(r.id)] for r in records if str(r.id) in wanted}
        return found

    # -- persistence ------------------------------------------------------------------
    def save(self) -> None:
        """Flush the writes to disk; then, once INDEXING_THRESHOLD_KB of vectors wait
        unindexed, have HNSW built in a child process (module docstring)."""
        with self._writing:
            with self._using(f"flush {self.collection!r}") as shard:
                shard.flush()
                waiting = _unindexed(shard.info(), lexical=self.lexical)
            threshold = INDEXING_THRESHOLD_KB * 1024 // (4 * self.dimension)
            if waiting - self._left_unindexed >= threshold:
                self._rebuild(purge=False)

    def copy(self) -> EdgeIndex:
        """Self: writes apply in place, as on a server (see the class docstring)."""
        return self

    def copy_files(self, dest: Path) -> None:
        """Flush, then copy the shard's files to `dest` (holes kept) while no write,
        save or rebuild of this index runs: a consistent copy to snapshot
        (`index.snapshots`). Searches go on meanwhile; they do not change the files."""
        with self._writing:
            with self._using(f"flush {self.collection!r}") as shard:
                shard.flush()
            with _translated(f"copy shard {self.collection!r}", self.path):
                shutil.copytree(self.path, dest, copy_function=_copy_file)

    def chunk_ids(self) -> list[str]:
        """Every point's chunk id (its payload's `chunk_id`), in point id order."""
        from qdrant_edge import ScrollRequest

        found: list[str] = []
        offset: Any = None
        action = f"scroll {self.collection!r}"
        while True:
            request = ScrollRequest(
                offset=offset, limit=WRITE_BATCH, with_payload=True, with_vector=False
            )
            with self._using(action) as shard:
                records, offset = shard.scroll(request)
            found += [
                str(r.payload["chunk_id"]) for r in records if r.payload and "chunk_id" in r.payload
            ]
            if offset is None:
                return found

    def _rebuild(self, *, purge: bool) -> None:
        """Optimize a copy of the shard in a child process and swap it in (module
        docstring): work copy → `optimize_shard` → ready → the shard moves to old, ready
        to the shard → old deleted. Readers use the shard as it was until the swap."""
        tag = uuid.uuid4().hex[:12]
        work, ready = _sibling(self.path, "work", tag), _sibling(self.path, "ready", tag)
        old = _sibling(self.path, "old", tag)
        action = f"rebuild {self.collection!r}"
        with self._writing:
            try:
                with self._using(f"flush {self.collection!r}") as shard:
                    shard.flush()
                with _translated(action, self.path):
                    for leftover in _leftovers(self.path):
                        shutil.rmtree(leftover)
                    shutil.copytree(self.path, work, copy_function=_copy_file)
                _optimize_elsewhere(work, self.dimension, purge=purge)
                with _translated(action, self.path):
                    work.rename(ready)
                with self._using(action) as shard:
                    self._shard = None
                    try:
                        shard.close()
                        self.path.rename(old)
                        ready.rename(self.path)
                        self._shard, self.lexical = _load(self.path, self.dimension)
                    except BaseException:
                        self._release()  # the next open finishes or undoes the swap
                        raise
                    self._left_unindexed = _unindexed(self._shard.info(), lexical=self.lexical)
                with _translated(f"delete the replaced files of {self.collection!r}", old):
                    shutil.rmtree(old)
            finally:
                shutil.rmtree(work, ignore_errors=True)
                if self.path.exists():  # else the next open needs it (`_recover`)
                    shutil.rmtree(ready, ignore_errors=True)

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        from qdrant_edge import CountRequest

        with self._using(f"count {self.collection!r}") as shard:
            return int(shard.count(CountRequest(exact=True)))

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        from qdrant_edge import Query, QueryRequest

        action = f"search {self.collection!r}"
        with _translated(action, self.path):
            query = checked_query(vector, top_k, self.dimension)
            filters = check_filters(filters, allow_empty_lists=True)
            if matches_nothing(top_k, filters):
                return []
            request = QueryRequest(
                limit=int(top_k),
                query=Query.Nearest(query[0].tolist()),
                filter=to_edge_filter(filters),
                with_payload=True,
            )
        with self._using(action) as shard:
            points = shard.query(request)
        return _hits(points)

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
        """One query: the dense and the sparse prefetch (`candidates` each, both filtered)
        fused by the engine per `fusion` (`index.sparse.HybridSearch`)."""
        from qdrant_edge import Fusion, Prefetch, Query, QueryRequest, SparseVector

        action = f"search {self.collection!r}"
        with _translated(action, self.path):
            query = checked_query(vector, top_k, self.dimension)
            filters = check_filters(filters, allow_empty_lists=True)
            limit = checked_candidates(candidates, top_k)
            if not self.lexical:
                raise ValueError(lexical_refused(self.collection))
            if matches_nothing(top_k, filters):
                return []
            selector = to_edge_filter(filters)
            indices, values = encode_query(text)
            dense = Query.Nearest(query[0].tolist())
            prefetches = [Prefetch(limit=limit, query=dense, filter=selector)]
            if indices:
                sparse = Query.Nearest(SparseVector(indices, values), using=SPARSE_VECTOR)
                prefetches.append(Prefetch(limit=limit, query=sparse, filter=selector))
            if fusion.method == "dbsf":
                fuse: Any = Fusion.Dbsf()
            else:  # without words, the dense list alone, in its own order
                weights = list(fusion.weights) if fusion.weights and indices else None
                fuse = Fusion.Rrf(k=fusion.k, weights=weights)
            request = QueryRequest(
                limit=int(top_k), prefetches=prefetches, query=fuse, with_payload=True
            )
        with self._using(action) as shard:
            points = shard.query(request)
        return _hits(points)

    def search_lexical(
        self, text: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        """The sparse side alone: BM25 scores, IDF applied by the engine."""
        from qdrant_edge import Query, QueryRequest, SparseVector

        action = f"search {self.collection!r}"
        with _translated(action, self.path):
            top_k = checked_top_k(top_k)
            filters = check_filters(filters, allow_empty_lists=True)
            if not self.lexical:
                raise ValueError(lexical_refused(self.collection))
            indices, values = encode_query(text)
            if top_k <= 0 or not indices:
                return []
            if filters and any(isinstance(v, list) and not v for v in filters.values()):
                return []
            request = QueryRequest(
                limit=int(top_k),
                query=Query.Nearest(SparseVector(indices, values), using=SPARSE_VECTOR),
                filter=to_edge_filter(filters),
                with_payload=True,
            )
        with self._using(action) as shard:
            points = shard.query(request)
        return _hits(points)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Flush and close the shard and release its lock (other processes may open it)."""
        with self._writing, self._lock:
            shard, self._shard = self._shard, None
            try:
                if shard is not None:
                    shard.close()  # flushes first
            finally:
                self._release()

    def _drop(self) -> None:
        """Close the shard and delete its directory (still holding its lock)."""
        with self._writing, self._lock:
            shard, self._shard = self._shard, None
            self._dropped = True
            try:
                if shard is not None:
                    shard.close()
                with _translated(f"drop shard {self.collection!r}", self.path):
                    _remove(self.path)
            finally:
                self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _hits(points: Iterable[Any]) -> list[Hit]:
    return [
        Hit(chunk_id=p.payload["chunk_id"], score=float(p.score), payload=dict(p.payload))
        for p in points
        if p.payload is not None
    ]


class EdgeShards:
    """The embedded Qdrant engine's folder: one Edge shard per collection name under
    `root`, opened once per process (`open`), plus the aliases that name the live version
    of each knowledge base (`aliases.json`, the server's collection aliases). What
    `index.qdrant_index.make_client(path=...)` returns; close it with `close`.

    Example::

        shards = EdgeShards(Path("data/qdrant"))
        index = shards.open(collection_name(kb.id, 1, version.id), 384)
        shards.set_alias(f"ragops_{kb.id}_live", index.collection)
        shards.close()
    """

    engine = ENGINE

    def __init__(self, root: Path) -> None:
        self.root = root
        self.closed = False
        self._indexes: dict[str, EdgeIndex] = {}
        self._guard = threading.Lock()

    def shard_path(self, collection: str) -> Path:
        if not NAME_RE.fullmatch(collection):
            raise InvalidInput(
                f"Qdrant Edge shard name {collection!r} must be letters, digits, _ or -"
            )
        return self.root / collection

    def exists(self, collection: str) -> bool:
        """Whether the shard (or the one an alias of that name points at) exists, without
        creating it."""
        name = self.resolve_alias(collection) or collection
        path = self.shard_path(name)
        swapped = (f".{name}.ready-", f".{name}.old-")  # a swap cut short, see `_recover`
        return (
            (path / CONFIG_FILE).is_file()
            or any(p.name.startswith(swapped) for p in _leftovers(path))
            or _local_mode_collection(self.root, name)  # imported when opened
        )

    def open(self, collection: str, dimension: int, *, lexical: bool = False) -> EdgeIndex:
        """The process's index on the shard `collection` (or the one an alias of that name
        points at), creating the shard when missing, with BM25 sparse vectors when
        `lexical` (an existing shard keeps what it was created with; one imported from
        local mode has none, its texts being unknown here). Raises InvalidInput when it
        holds vectors of another dimension, Unavailable when another process holds it or
        its files cannot be read."""
        name = self.resolve_alias(collection) or collection
        path = self.shard_path(name)
        with self._guard:
            if self.closed:
                raise Unavailable(f"the Qdrant Edge folder {self.root} was closed")
            index = self._indexes.get(name)
            if index is not None and index.is_open:
                if index.dimension != dimension:
                    raise InvalidInput(
                        f"shard {name!r} has dimension {index.dimension}, expected {dimension}"
                    )
                return index
            lexical = lexical and not _local_mode_collection(self.root, name)
            index = EdgeIndex._open(path, dimension, lexical=lexical)
            self._indexes[name] = index
        with _translated(f"import local-mode collection {name!r}", self.root):
            _import_local_mode(self.root, name, index)
        return index

    def drop(self, collection: str) -> None:
        """Delete the shard `collection` and the aliases that point at it; nothing when it
        does not exist. Unavailable when another process holds it."""
        path = self.shard_path(collection)
        with self._guard:
            index = self._indexes.pop(collection, None)
        if index is not None and index.is_open:
            index._drop()
        elif path.exists() or _leftovers(path):
            fd = _lock(path)
            try:
                with _translated(f"drop shard {collection!r}", path):
                    _remove(path)
            finally:
                os.close(fd)
        with _translated(f"drop local-mode collection {collection!r}", self.root):
            _import_local_mode(self.root, collection, None)
        self._forget_aliases_of(collection)

    def restore(self, collection: str, archive: Path, dimension: int) -> EdgeIndex:
        """A new shard `collection` made from the Qdrant shard snapshot `archive` (one of
        ours, `index.snapshot_archive`, or a server's), opened. The archive is unpacked
        beside the shard and checked (readable, one unnamed cosine vector of
        `dimension`), and only then moved into place: a bad archive leaves nothing
        behind. Raises InvalidInput for an archive that is not a readable shard snapshot
        or holds other vectors, Conflict when the shard exists, Unavailable when the
        folder cannot be written."""
        path = self.shard_path(collection)
        if self.exists(collection):
            raise Conflict(f"Qdrant Edge shard {collection!r} exists already")
        fd = _lock(path)
        work = _sibling(path, "work", uuid.uuid4().hex[:12])  # `_recover` deletes leftovers
        try:
            inspect_unpacked(unpack_snapshot(archive, work), dimension)
            with _translated(f"restore shard {collection!r}", path):
                work.rename(path)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            _sibling(path, "lock").unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return self.open(collection, dimension)

    def close(self) -> None:
        """Close every open shard (waiting for calls in flight on it)."""
        with self._guard:
            indexes, self._indexes = list(self._indexes.values()), {}
            self.closed = True
        for index in indexes:
            try:
                index.close()
            except Exception:  # noqa: BLE001 - closing the others matters more
                log.exception("closing Qdrant Edge shard %s failed", index.path)

    # -- aliases ------------------------------------------------------------------------
    def _aliases(self) -> dict[str, str]:
        file = self.root / ALIASES_FILE
        try:
            data = json.loads(file.read_text()) if file.is_file() else {}
        except (OSError, ValueError) as exc:
            raise Unavailable(f"Qdrant Edge could not read {file}: {exc}; {_CHECK}") from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        file = self.root / ALIASES_FILE
        with _translated("write its aliases", file):
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f".{ALIASES_FILE}.{uuid.uuid4().hex[:8]}")
            tmp.write_text(json.dumps(aliases, indent=1, sort_keys=True))
            os.replace(tmp, file)

    def resolve_alias(self, alias: str) -> str | None:
        """The shard `alias` points at, or None when there is no such alias."""
        return self._aliases().get(alias)

    def set_alias(self, alias: str, collection: str) -> None:
        """Point `alias` at `collection` (one file replaced atomically). NotFound when the
        shard does not exist."""
        with self._guard:
            if not (self.shard_path(collection) / CONFIG_FILE).is_file():
                raise NotFound(f"Qdrant Edge has no shard {collection!r} to point {alias!r} at")
            self._write_aliases({**self._aliases(), alias: collection})

    def _forget_aliases_of(self, collection: str) -> None:
        with self._guard:
            aliases = self._aliases()
            kept = {a: c for a, c in aliases.items() if c != collection}
            if kept != aliases:
                self._write_aliases(kept)
