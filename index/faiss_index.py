"""FAISS backend: one directory per index version.

Files in a version directory:
- `meta.json`: index type and params, dimension and the names of the current data files.
  It is written last and atomically, so it is the commit point of a save.
- `index-<token>.faiss`, `payloads-<token>.json` (chunk id and filterable metadata per
  vector) and, for HNSW, `labels-<token>.npy` (which chunk each graph node holds).

Index types (`index_type`, tuned by `index_params`):
- `flat`: exact inner product (IndexFlatIP behind an IndexIDMap2). Params: none.
- `hnsw`: IndexHNSWFlat, inner product; approximate search, exact scores. Params:
  `M` (graph degree, default 32), `ef_construction` (default 40), `ef_search` (default 64).
  HNSW cannot remove vectors, so deletes and updates leave tombstones that searches skip;
  `save()` rebuilds the graph from live vectors once tombstones exceed 20%.
- `ivfpq`: IndexIVFPQ, inner product on product-quantised codes; approximate search and
  approximate scores. Params: `nlist` (default 256), `m` (sub-quantisers, must divide the
  dimension; default the largest divisor <= dimension / 8), `nbits` (default 8), `nprobe`
  (lists scanned per query, default 16). It needs training data: until
  `training_threshold` vectors are present the index stays exact (flat) and `trained` is
  False; the first `save()` past the threshold trains and rebuilds it.

Directories written before `meta.json` existed (`index.faiss` + `payloads.json`) open as
`flat`.

Errors (the `index.base` contract): bad input raises InvalidInput; a directory or file
that cannot be read or written (permissions, a missing mount, a full disk; FAISS reports
its own I/O failures as RuntimeError) or a corrupt file raises Unavailable naming the
path. Storage failures are Unavailable rather than InvalidInput because the caller cannot
fix them by changing the request: an operator has to fix the volume (or rebuild the
version).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from core.errors import InvalidInput, RagopsError, Unavailable
from index.base import (
    Hit,
    check_filters,
    checked_ids,
    checked_query,
    checked_upsert,
    is_number,
    matches,
)

log = logging.getLogger(__name__)

IndexType = Literal["flat", "hnsw", "ivfpq"]
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivfpq")
META_FILE = "meta.json"
META_FORMAT = 1

# HNSW: rebuild the graph at save() once this share of its nodes are tombstones; dead
# nodes still cost memory and traversal time, a rebuild costs one full re-insert.
HNSW_REBUILD_RATIO = 0.2
# Filtered searches on approximate indexes scan the allowed vectors exactly when there
# are at most this many: exact and faster than a graph walk that skips most nodes.
EXACT_FILTER_MAX = 4096

# Knobs that only affect searching, so a saved index may be reopened with new values.
SEARCH_TIME_PARAMS = frozenset({"ef_search", "nprobe"})

_PARAM_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 64},
    "ivfpq": {"nlist": 256, "m": 0, "nbits": 8, "nprobe": 16},  # m=0: derived from dimension
}


def faiss_id(chunk_id: str) -> int:
    """Stable positive int64 for any chunk id (60 bits of its sha256: collisions are
    negligible at any realistic index size)."""
    return int(hashlib.sha256(chunk_id.encode()).hexdigest()[:15], 16)


def _gpu_resources() -> Any | None:
    """faiss-gpu's resources when it is installed and a GPU is visible, else None."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return None
    try:
        if faiss.get_num_gpus() < 1:
            return None
        return faiss.StandardGpuResources()
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop the CPU path
        log.warning("faiss-gpu is installed but unusable; searching on the CPU")
        return None


def resolve_params(
    index_type: str, dimension: int, index_params: dict[str, Any] | None
) -> dict[str, int]:
    """Defaults merged with `index_params`, validated; ValueError names the bad key/value
    (FaissIndex raises it as InvalidInput)."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type {index_type!r} is not one of {', '.join(INDEX_TYPES)}")
    defaults = _PARAM_DEFAULTS[index_type]
    given = dict(index_params or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ValueError(f"unknown {index_type} index_params {unknown}; allowed: {allowed}")
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"index_params {key}={value!r} must be a positive integer")
    params = {**defaults, **given}
    if index_type == "ivfpq":
        if params["m"] == 0:
            params["m"] = max(m for m in range(1, max(1, dimension // 8) + 1) if dimension % m == 0)
        if dimension % params["m"]:
            raise ValueError(f"index_params m={params['m']} must divide the dimension {dimension}")
        if params["nbits"] > 16:
            raise ValueError(f"index_params nbits={params['nbits']} must be at most 16")
    return params


@contextlib.contextmanager
def _translated(action: str, path: Path) -> Iterator[None]:
    """The one place FAISS, numpy and file-system exceptions become project errors:
    ValueError/TypeError (bad input) → InvalidInput; OSError and FAISS's RuntimeError
    (I/O) → Unavailable naming the path and what to check."""
    try:
        yield
    except RagopsError:
        raise
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = (reason.strip().splitlines() or [type(exc).__name__])[-1][:300]
        raise Unavailable(
            f"FAISS could not {action} at {path}: {reason}; check that the directory "
            "exists, is readable and writable by this process and the disk has space"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc)) from exc


def _corrupt(path: Path, exc: Exception) -> Unavailable:
    return Unavailable(
        f"FAISS index at {path} is corrupt ({type(exc).__name__}: {exc}); restore the "
        "directory from a backup or build a new version"
    )


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The saved meta.json, a synthetic one for directories saved before it existed, or
    None when nothing was ever saved. Unavailable when it is unreadable or malformed."""
    meta_file = path / META_FILE
    if meta_file.exists():
        try:
            meta = dict(json.loads(meta_file.read_text()))
            files = meta["files"]
            names = ["index", "payloads"] + (["labels"] if meta["index_type"] == "hnsw" else [])
            for key in names:
                if not isinstance(files[key], str):
                    raise TypeError(f"files.{key} is not a file name")
            if not isinstance(meta["index_params"], dict):
                raise TypeError("index_params is not an object")
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise _corrupt(meta_file, exc) from exc
        return meta
    if (path / "index.faiss").exists():
        return {
            "index_type": "flat",
            "index_params": {},
            "files": {"index": "index.faiss", "payloads": "payloads.json"},
        }
    return None


def _term(value: Any) -> tuple[str, Any] | None:
    """A payload value's key in the filter postings, typed so that True and 1 stay apart
    while 2 and 2.0 meet (`index.base.same_value`); None for values no equality matches."""
    if isinstance(value, bool):
        return ("bool", value)
    if is_number(value):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return None


def _fsync_file(path: Path | str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _selector(ids: np.ndarray) -> Any:
    import faiss

    return faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))


def _exact_top_k(
    vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int
) -> list[tuple[int, float]]:
    scores = vectors @ query[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


class _Engine(Protocol):
    """The raw FAISS structure of one index type, addressed by int64 chunk ids.

    `add` only sees ids that are absent and `remove` only ids that are present: the
    FaissIndex owns the payload map that decides both.
    """

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]: ...
    def clone(self) -> _Engine: ...
    def compact(self) -> _Engine:
        """The engine to save: rebuilt or trained when that is due, else self."""
        ...

    def write(self, directory: Path, token: str) -> dict[str, str]: ...


class _FlatEngine:
    """Exact search; also what an untrained IVF-PQ index serves from."""

    def __init__(self, dimension: int, index: Any = None) -> None:
        import faiss

        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._gpu_index: Any = None  # built on first unfiltered search when faiss-gpu works

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._gpu_index = None
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        self._gpu_index = None
        self.index.remove_ids(_selector(ids))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        flat = faiss.downcast_index(self.index.index)
        return ids, flat.reconstruct_n(0, flat.ntotal)

    def _search_index(self) -> Any:
        if self._gpu_index is None:
            res = _gpu_resources()
            if res is None:
                self._gpu_index = False
            else:
                import faiss

                self._gpu_index = faiss.index_cpu_to_gpu(res, 0, self.index)
        return self._gpu_index or self.index

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        import faiss

        params = None if allowed is None else faiss.SearchParameters(sel=_selector(allowed))
        # Selector-filtered searches stay on the CPU: GPU indexes don't take id selectors.
        index = self.index if params is not None else self._search_index()
        scores, ids = index.search(query, k, params=params)
        return [(i, s) for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True) if i >= 0]

    def clone(self) -> _FlatEngine:
        import faiss

        return _FlatEngine(self.dimension, faiss.clone_index(self.index))

    def compact(self) -> _FlatEngine:
        return self

    def write(self, directory: Path, token: str) -> dict[str, str]:
        import faiss

        name = f"index-{token}.faiss"
        faiss.write_index(self.index, str(directory / name))
        return {"index": name}


class _HnswEngine:
    """HNSW graph whose node n holds chunk `labels[n]`; -1 marks a tombstone."""

    def __init__(
        self, dimension: int, params: dict[str, int], index: Any = None, labels: Any = None
    ) -> None:
        self.dimension = dimension
        self.params = params
        if index is None:
            index = self._new_graph()
        self.index = index
        self.labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        self.node_of = {int(i): n for n, i in enumerate(self.labels.tolist()) if i >= 0}

    def _new_graph(self) -> Any:
        import faiss

        graph = faiss.IndexHNSWFlat(self.dimension, self.params["M"], faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.params["ef_construction"]
        return graph

    @property
    def tombstones(self) -> int:
        return int(self.labels.size - len(self.node_of))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        start = int(self.index.ntotal)
        self.index.add(vectors)
        self.labels = np.concatenate([self.labels, ids.astype(np.int64)])
        for offset, i in enumerate(ids.tolist()):
            self.node_of[int(i)] = start + offset

    def remove(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            node = self.node_of.pop(int(i))
            self.labels[node] = -1

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        import faiss

        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            return self._exact(query, k, allowed)
        if allowed is not None:
            sel = _selector(self._nodes(allowed))
        elif self.tombstones:
            sel = faiss.IDSelectorNot(_selector(np.flatnonzero(self.labels < 0)))
        else:
            sel = None
        params = faiss.SearchParametersHNSW(efSearch=max(self.params["ef_search"], k), sel=sel)
        scores, nodes = self.index.search(query, k, params=params)
        hits = [
            (int(self.labels[n]), s)
            for s, n in zip(scores[0].tolist(), nodes[0].tolist(), strict=True)
            if n >= 0
        ]
        wanted = min(k, len(self.node_of) if allowed is None else len(allowed))
        if len(hits) < wanted:  # the graph walk lost touch with the allowed nodes
            live = np.array(list(self.node_of) if allowed is None else allowed, dtype=np.int64)
            return self._exact(query, k, live)
        return hits

    def _exact(self, query: np.ndarray, k: int, ids: np.ndarray) -> list[tuple[int, float]]:
        nodes = self._nodes(ids)
        return _exact_top_k(self.index.reconstruct_batch(nodes), self.labels[nodes], query, k)

    def _nodes(self, ids: np.ndarray) -> np.ndarray:
        """Graph nodes holding `ids`: a dict lookup for few ids, one vectorised pass over
        the labels for many (tombstones are labelled -1, never an id)."""
        if len(ids) * 16 < self.labels.size:
            return np.array(sorted(self.node_of[int(i)] for i in ids), dtype=np.int64)
        return np.flatnonzero(np.isin(self.labels, ids))

    def clone(self) -> _HnswEngine:
        import faiss

        return _HnswEngine(self.dimension, self.params, faiss.clone_index(self.index), self.labels)

    def compact(self) -> _HnswEngine:
        if self.labels.size == 0 or self.tombstones / self.labels.size <= HNSW_REBUILD_RATIO:
            return self
        ids = np.array(list(self.node_of), dtype=np.int64)
        rebuilt = _HnswEngine(self.dimension, self.params)
        if ids.size:
            nodes = np.array([self.node_of[int(i)] for i in ids], dtype=np.int64)
            rebuilt.add(ids, self.index.reconstruct_batch(nodes))
        log.info("rebuilt HNSW graph: dropped %d tombstones", self.tombstones)
        return rebuilt

    def write(self, directory: Path, token: str) -> dict[str, str]:
        import faiss

        index_name, labels_name = f"index-{token}.faiss", f"labels-{token}.npy"
        faiss.write_index(self.index, str(directory / index_name))
        with open(directory / labels_name, "wb") as fh:
            np.save(fh, self.labels)
        return {"index": index_name, "labels": labels_name}


class _IvfPqEngine:
    """Trained IVF-PQ: approximate search over product-quantised codes."""

    def __init__(self, dimension: int, params: dict[str, int], index: Any) -> None:
        self.dimension = dimension
        self.params = params
        self.index = index

    @classmethod
    def train(cls, dimension: int, params: dict[str, int], flat: _FlatEngine) -> _IvfPqEngine:
        import faiss

        ids, vectors = flat.vectors()
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(
            quantizer,
            dimension,
            params["nlist"],
            params["m"],
            params["nbits"],
            faiss.METRIC_INNER_PRODUCT,
        )
        index.train(vectors)
        index.add_with_ids(vectors, ids)
        log.info("trained IVF-PQ on %d vectors", len(ids))
        return cls(dimension, params, index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove_ids(_selector(ids))

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        import faiss

        sel = None if allowed is None else _selector(allowed)
        nlist = int(self.index.nlist)
        wanted = min(k, int(self.index.ntotal) if allowed is None else len(allowed))
        hits: list[tuple[int, float]] = []
        # A selective filter can leave the probed lists empty: widen to every list then.
        for nprobe in dict.fromkeys((min(self.params["nprobe"], nlist), nlist)):
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
            scores, ids = self.index.search(query, k, params=params)
            hits = [
                (i, s) for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True) if i >= 0
            ]
            if len(hits) >= wanted:
                break
        return hits

    def clone(self) -> _IvfPqEngine:
        import faiss

        return _IvfPqEngine(self.dimension, self.params, faiss.clone_index(self.index))

    def compact(self) -> _IvfPqEngine:
        return self

    def write(self, directory: Path, token: str) -> dict[str, str]:
        import faiss

        name = f"index-{token}.faiss"
        faiss.write_index(self.index, str(directory / name))
        return {"index": name}


class FaissIndex:
    """A FAISS index of unit vectors scored by inner product (see the module docstring
    for the index types).

    Filtering runs on payloads through an id selector, so filtered searches still
    return the best `top_k` matching vectors, not a post-filtered remainder.

    Example::

        idx = FaissIndex.open(path, 384, index_type="hnsw", index_params={"M": 16})
        idx.upsert(["c1"], vectors, [{"document_id": "d1"}])
        idx.save()
    """

    backend = "faiss"

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        index_type: IndexType = "flat",
        index_params: dict[str, Any] | None = None,
        engine: _Engine | None = None,
        payloads: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.dimension = dimension
        self.index_type = index_type
        with _translated("configure the index", path):
            self.index_params = resolve_params(index_type, dimension, index_params)
        if engine is None:
            if index_type == "hnsw":
                engine = _HnswEngine(dimension, self.index_params)
            else:
                engine = _FlatEngine(dimension)
        self._engine: _Engine = engine
        self._payloads: dict[int, dict[str, Any]] = payloads or {}
        # filter key → {`_term` of a payload value → sorted ids}, built on first use and
        # dropped by any write
        self._postings: dict[str, dict[tuple[str, Any], np.ndarray]] = {}

    @property
    def trained(self) -> bool:
        """False while an `ivfpq` index is still served exactly (too few vectors to train)."""
        return self.index_type != "ivfpq" or isinstance(self._engine, _IvfPqEngine)

    @property
    def training_threshold(self) -> int:
        """Vectors an `ivfpq` index needs before save() trains it (0 for other types)."""
        if self.index_type != "ivfpq":
            return 0
        p = self.index_params
        return max(39 * p["nlist"], 2 ** p["nbits"], 256)

    # -- persistence ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path,
        dimension: int,
        *,
        index_type: IndexType = "flat",
        index_params: dict[str, Any] | None = None,
    ) -> FaissIndex:
        """Load the version directory, or start empty when it has never been saved.

        `index_params=None` uses the saved params (defaults for a new index). Given
        params may change the search-time knobs (`ef_search`, `nprobe`) of a saved index.
        Raises InvalidInput for bad params or when the saved index has another dimension,
        index type or build-time params than asked for; Unavailable when the directory
        cannot be read or holds corrupt files.
        """
        with _translated("open the index", path):
            resolve_params(index_type, dimension, index_params)  # validate early
            try:
                return cls._load(path, dimension, index_type, index_params)
            except FileNotFoundError:
                # a concurrent save replaced meta.json and pruned the files we were about
                # to read (it keeps one previous set, so this needs two saves in between)
                return cls._load(path, dimension, index_type, index_params)

    @classmethod
    def _load(
        cls,
        path: Path,
        dimension: int,
        index_type: IndexType,
        index_params: dict[str, Any] | None,
    ) -> FaissIndex:
        import faiss

        meta = _read_meta(path)
        if meta is None:
            return cls(path, dimension, index_type=index_type, index_params=index_params)
        if meta["index_type"] != index_type:
            raise InvalidInput(
                f"{path} holds a {meta['index_type']!r} index, not {index_type!r}; "
                "open it with the type it was built with or build a new version"
            )
        saved: dict[str, int] = meta["index_params"]
        params = {**saved, **(index_params or {})}
        changed = sorted(k for k in params if k not in SEARCH_TIME_PARAMS and params[k] != saved[k])
        if changed:
            raise InvalidInput(
                f"{path} was built with index_params {saved}; {', '.join(changed)} can only "
                "change by building a new version"
            )
        files = meta["files"]
        raw = faiss.read_index(str(path / files["index"]))
        if raw.d != dimension:
            raise InvalidInput(
                f"{path / files['index']} has dimension {raw.d}, expected {dimension}"
            )
        engine: _Engine
        params = resolve_params(index_type, dimension, params)
        try:
            if index_type == "hnsw":
                engine = _HnswEngine(dimension, params, raw, np.load(path / files["labels"]))
            elif isinstance(raw, faiss.IndexIVFPQ):
                engine = _IvfPqEngine(dimension, params, raw)
            else:
                engine = _FlatEngine(dimension, raw)
            stored = json.loads((path / files["payloads"]).read_text())
            payloads = {int(k): dict(v) for k, v in stored.items()}
        except (ValueError, TypeError, AttributeError) as exc:  # bad JSON or .npy contents
            raise _corrupt(path, exc) from exc
        return cls(
            path,
            dimension,
            index_type=index_type,
            index_params=params,
            engine=engine,
            payloads=payloads,
        )

    def save(self) -> None:
        """Persist atomically: data files are written under fresh names, fsynced, and only
        then does an atomic rename of meta.json switch to them. A crash at any point
        leaves the previous meta.json naming the previous, untouched files.

        Also the moment for maintenance: an `ivfpq` index past its training threshold is
        trained here, an `hnsw` graph with too many tombstones is rebuilt.

        Raises Unavailable when the directory cannot be written (nothing is committed).
        """
        with _translated("save the index", self.path):
            self._save()

    def _save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.trained and len(self._payloads) >= self.training_threshold:
            assert isinstance(self._engine, _FlatEngine)
            self._engine = _IvfPqEngine.train(self.dimension, self.index_params, self._engine)
        self._engine = self._engine.compact()

        token = secrets.token_hex(6)
        files = self._engine.write(self.path, token)
        files["payloads"] = f"payloads-{token}.json"
        with open(self.path / files["payloads"], "w") as fh:
            json.dump({str(k): v for k, v in self._payloads.items()}, fh)
        for name in files.values():
            _fsync_file(self.path / name)
        previous = (_read_meta(self.path) or {}).get("files", {})
        meta = {
            "format": META_FORMAT,
            "index_type": self.index_type,
            "index_params": self.index_params,
            "dimension": self.dimension,
            "trained": self.trained,
            "count": self.count(),
            "files": files,
        }
        fd, tmp_meta = tempfile.mkstemp(dir=self.path, prefix=".meta-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_meta, self.path / META_FILE)
        _fsync_dir(self.path)
        self._prune(keep=set(files.values()) | set(previous.values()))

    def _prune(self, keep: set[str]) -> None:
        """Delete data files of older saves (and leftovers of crashed ones), keeping the
        current and the previous set so a reader that just read the old meta.json can
        still load what it names."""
        for entry in self.path.iterdir():
            name = entry.name
            stale_data = name.startswith(("index-", "labels-", "payloads-")) or name in (
                "index.faiss",
                "payloads.json",
            )
            crashed_tmp = name.startswith((".meta-", ".index-", ".payloads-"))
            if (stale_data and name not in keep) or crashed_tmp:
                entry.unlink(missing_ok=True)

    def copy(self) -> FaissIndex:
        with _translated("copy the index", self.path):
            engine = self._engine.clone()
        return FaissIndex(
            self.path,
            self.dimension,
            index_type=self.index_type,
            index_params=self.index_params,
            engine=engine,
            payloads={k: dict(v) for k, v in self._payloads.items()},
        )

    # -- writes -----------------------------------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        if not ids:
            return
        with _translated("upsert", self.path):
            self._upsert(ids, vectors, payloads)

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        vectors, latest = checked_upsert(ids, vectors, payloads, self.dimension)
        rows = np.fromiter(latest.values(), dtype=np.int64, count=len(latest))
        int_ids = np.array([faiss_id(c) for c in latest], dtype=np.int64)
        self._remove(int_ids)
        self._postings = {}
        self._engine.add(int_ids, np.ascontiguousarray(vectors[rows]))
        for int_id, chunk_id, row in zip(int_ids.tolist(), latest, rows.tolist(), strict=True):
            self._payloads[int_id] = {**payloads[row], "chunk_id": chunk_id}

    def delete(self, ids: list[str]) -> None:
        if ids:
            with _translated("delete", self.path):
                int_ids = [faiss_id(i) for i in checked_ids(ids)]
                self._remove(np.array(int_ids, dtype=np.int64))

    def _remove(self, int_ids: np.ndarray) -> None:
        present = list(dict.fromkeys(i for i in int_ids.tolist() if i in self._payloads))
        if not present:
            return
        self._engine.remove(np.array(present, dtype=np.int64))
        self._postings = {}
        for i in present:
            del self._payloads[i]

    # -- reads ------------------------------------------------------------------------
    def _allowed(self, filters: dict[str, Any]) -> np.ndarray:
        """Ids whose payload passes `matches(payload, filters)`, from per-key postings so
        a filtered query costs O(matching ids), not a scan of every payload."""
        result: np.ndarray | None = None
        for key, want in filters.items():
            if isinstance(want, dict):  # a range: no postings, scan
                ids = [i for i, p in self._payloads.items() if matches(p, {key: want})]
                found = np.array(sorted(ids), dtype=np.int64)
            else:
                postings = self._postings_for(key)
                terms = [_term(w) for w in (want if isinstance(want, list) else [want])]
                parts = [postings[t] for t in terms if t in postings]
                found = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
            result = found if result is None else np.intersect1d(result, found, assume_unique=True)
            if result.size == 0:
                break
        return result if result is not None else np.empty(0, np.int64)

    def _postings_for(self, key: str) -> dict[tuple[str, Any], np.ndarray]:
        """`_term` → ids whose payload holds it under `key` (each element of a list value;
        missing keys and values no equality matches are left out, as in `matches`)."""
        if key in self._postings:
            return self._postings[key]
        lists: dict[tuple[str, Any], set[int]] = {}
        for i, payload in self._payloads.items():
            value = payload.get(key)
            for element in value if isinstance(value, list) else [value]:
                term = _term(element)
                if term is not None:
                    lists.setdefault(term, set()).add(i)
        postings = {t: np.array(sorted(ids), dtype=np.int64) for t, ids in lists.items()}
        self._postings[key] = postings
        return postings

    def count(self) -> int:
        return len(self._payloads)

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        with _translated("search", self.path):
            return self._search(vector, top_k, filters)

    def _search(self, vector: Any, top_k: int, filters: dict[str, Any] | None) -> list[Hit]:
        query = checked_query(vector, top_k, self.dimension)
        top_k = int(top_k)
        filters = check_filters(filters, allow_empty_lists=True)
        n = self.count()
        if n == 0 or top_k <= 0:
            return []
        allowed = None
        if filters:
            allowed = self._allowed(filters)
            if allowed.size == 0:
                return []
        k = min(top_k, n if allowed is None else len(allowed))
        hits = []
        for int_id, score in self._engine.search(query, k, allowed):
            payload = self._payloads[int_id]
            hits.append(Hit(chunk_id=payload["chunk_id"], score=float(score), payload=payload))
        return hits
