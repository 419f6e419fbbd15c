"""FAISS segments: the immutable files a FAISS index version is made of, the manifest that
names the live ones, and the policy that merges them.

A version directory holds:
- `meta.json`: the manifest and the commit point. It names the live segments oldest
  first, the index type and params, the dimension and a sequence number `seq` that every
  switch bumps. It is only ever replaced whole: written to `.meta-<random>.tmp`, fsynced,
  `os.replace`d over the old one, then the directory is fsynced.
- `seg-<seq>-<token>.seg`: one segment, written once under a fresh name and never changed.
  It holds the rows one write (or one merge) added: their chunk ids, payloads and a
  serialised FAISS structure of their vectors, plus the ids that write deleted from older
  segments (its tombstones). Format: `SEGMENT_MAGIC`, the header length (8 bytes, little
  endian), a JSON header (`kind`, `dimension`, `ids`, `payloads`, `deletes`,
  `index_bytes`), then `index_bytes` bytes of `faiss.serialize_index`.
- `.compact-<token>.seg`: a merged segment still being built; renamed to `seg-...` under
  the writers' lock right before the switch that publishes it.
- files of the single-file layouts before segments (`index-<token>.faiss`,
  `payloads-<token>.json`, `labels-<token>.npy`, or `index.faiss` + `payloads.json`):
  opened as one legacy segment until a merge rewrites them.

Reading the manifest's segments oldest first and applying each (its rows replace any
older row of the same id, its deletes remove older rows) gives the index; so a row is
live exactly when no newer segment adds or deletes its id. Replacing a contiguous run of
segments by one segment of the run's live rows (plus the deletes that still hit older
segments) gives the same index, which is what a merge does.

A switch deletes the files that neither the new nor the previous manifest names (a
reader that just read the previous manifest can still load it), `.compact-` files only
once they are older than `ORPHAN_GRACE_S` (another process may still be building one).
Erasure (`purge`) deletes at once every data file the current manifest does not name,
`.compact-` files of any age included: a reader that read the previous manifest finds a
file gone and reads the manifest again, and a merge whose file was deleted cannot publish.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from core.errors import InvalidInput, Unavailable
from index.base import is_number, matches
from index.payload_columns import PayloadColumns

log = logging.getLogger(__name__)

MANIFEST_FILE = "meta.json"
MANIFEST_FORMAT = 2
SEGMENT_MAGIC = b"RAGOPS-SEGMENT-1\n"
SEGMENT_SUFFIX = ".seg"
BUILDING_PREFIX = ".compact-"

# Filtered searches on approximate segments scan the allowed vectors exactly when there
# are at most this many: exact and faster than a graph walk that skips most nodes.
EXACT_FILTER_MAX = 4096
# A search skips up to this many dead rows of a segment by asking it for that many more
# hits (no selector: a GPU flat index can serve it); beyond it an id selector, built once
# per snapshot and segment, excludes them.
OVERFETCH_MAX = 32
# Segments with fewer rows are always exact (flat): an HNSW graph or IVF-PQ codes only
# pay off on larger sets, and merges promote rows into the configured type anyway.
APPROX_MIN_ROWS = 1024
# Merge policy (see `plan_merge`): a segment absorbs everything newer once the newer
# segments together weigh (MERGE_FACTOR - 1) times as much, so sizes grow geometrically,
# a row is rewritten about log_MERGE_FACTOR(rows / rows per write) times and a version
# holds about (MERGE_FACTOR - 1) segments per power of MERGE_FACTOR.
MERGE_FACTOR = 4
# More segments than this are merged regardless (a guard; the factor rule stays below).
MAX_SEGMENTS = 32
# A segment whose dead rows exceed this share is rewritten (with everything newer):
# dead rows still cost memory and search time.
PURGE_RATIO = 0.2
# `.compact-` files older than this belong to a crashed merge and are deleted.
ORPHAN_GRACE_S = 600.0


def corrupt(path: Path, exc: Exception | str) -> Unavailable:
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else exc
    return Unavailable(
        f"FAISS index at {path} is corrupt ({reason}); restore the directory from a backup "
        "or build a new version"
    )


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def _selector(ids: np.ndarray) -> Any:
    import faiss

    return faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))


def _exact_top_k(
    vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int
) -> list[tuple[int, float]]:
    scores = vectors @ query[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


class Exclusion:
    """The dead ids of one segment in one snapshot, with the FAISS selectors built from
    them kept for the next query (the set is immutable, so they stay valid)."""

    def __init__(self, ids: frozenset[int]) -> None:
        self.set = ids
        self.ids = np.array(sorted(ids), dtype=np.int64)
        self.selectors: dict[str, Any] = {}


# -- engines: the FAISS structure of one segment, labelled by chunk int ids -------------


class Engine(Protocol):
    """Searches one segment's vectors; hits are (chunk int id, score), best first.

    `allowed` restricts the search to those ids (all present in the segment);
    `excluded` skips those (dead) ids. Engines are built once and never change.
    """

    index: Any

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: Exclusion | None
    ) -> list[tuple[int, float]]: ...

    def vectors(self) -> np.ndarray | None:
        """The exact vectors in the segment's row order; None when the engine keeps only
        compressed codes (IVF-PQ)."""
        ...


class FlatEngine:
    """Exact inner product (IndexFlatIP behind an IndexIDMap2)."""

    def __init__(self, dimension: int, index: Any = None) -> None:
        import faiss

        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._gpu_index: Any = None  # built on first unfiltered search when faiss-gpu works

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def vectors(self) -> np.ndarray:
        import faiss

        flat = faiss.downcast_index(self.index.index)
        return flat.reconstruct_n(0, flat.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

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
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: Exclusion | None
    ) -> list[tuple[int, float]]:
        import faiss

        sel = None
        if allowed is not None:
            sel = _selector(allowed)
        elif excluded is not None:
            sel = excluded.selectors.get("not")
            if sel is None:
                sel = excluded.selectors["not"] = faiss.IDSelectorNot(_selector(excluded.ids))
        params = None if sel is None else faiss.SearchParameters(sel=sel)
        # Selector-filtered searches stay on the CPU: GPU indexes don't take id selectors.
        index = self.index if params is not None else self._search_index()
        scores, ids = index.search(query, k, params=params)
        return [(i, s) for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True) if i >= 0]


class HnswEngine:
    """HNSW graph whose node n holds chunk `labels[n]`; -1 marks a node deleted in the
    single-file layout (new segments never hold one)."""

    def __init__(
        self, dimension: int, params: dict[str, int], index: Any = None, labels: Any = None
    ) -> None:
        self.dimension = dimension
        self.params = params
        if index is None:
            import faiss

            index = faiss.IndexHNSWFlat(dimension, params["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params["ef_construction"]
        self.index = index
        self.labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        self.node_of = {int(i): n for n, i in enumerate(self.labels.tolist()) if i >= 0}
        self._tombstones = np.flatnonzero(self.labels < 0)

    @property
    def dead_nodes(self) -> int:
        """Graph nodes of rows deleted in the single-file layout: their vectors are still
        in the file, and no id says whose they were."""
        return int(self._tombstones.size)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        start = int(self.index.ntotal)
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.labels = np.concatenate([self.labels, ids.astype(np.int64)])
        for offset, i in enumerate(ids.tolist()):
            self.node_of[int(i)] = start + offset

    def vectors(self) -> np.ndarray:
        live = np.flatnonzero(self.labels >= 0)
        if live.size == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        return self.index.reconstruct_batch(live)

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: Exclusion | None
    ) -> list[tuple[int, float]]:
        import faiss

        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            return self._exact(query, k, allowed)
        if allowed is not None:
            sel = _selector(self._nodes(allowed))
        else:
            sel = self._skip_selector(excluded)
        params = faiss.SearchParametersHNSW(efSearch=max(self.params["ef_search"], k), sel=sel)
        scores, nodes = self.index.search(query, k, params=params)
        hits = [
            (int(self.labels[n]), s)
            for s, n in zip(scores[0].tolist(), nodes[0].tolist(), strict=True)
            if n >= 0
        ]
        dead = excluded.set if excluded is not None else frozenset()
        live_count = len(self.node_of) - len(dead)
        wanted = min(k, live_count if allowed is None else len(allowed))
        if len(hits) < wanted:  # the graph walk lost touch with the allowed nodes
            if allowed is None:
                allowed = np.array([i for i in self.node_of if i not in dead], dtype=np.int64)
            return self._exact(query, k, allowed)
        return hits

    def _skip_selector(self, excluded: Exclusion | None) -> Any:
        import faiss

        if excluded is None and not self._tombstones.size:
            return None
        if excluded is not None and "hnsw" in excluded.selectors:
            return excluded.selectors["hnsw"]
        skip = self._tombstones
        if excluded is not None:
            skip = np.union1d(skip, self._nodes(excluded.ids))
        sel = faiss.IDSelectorNot(_selector(skip))
        if excluded is not None:
            excluded.selectors["hnsw"] = sel
        return sel

    def _exact(self, query: np.ndarray, k: int, ids: np.ndarray) -> list[tuple[int, float]]:
        nodes = self._nodes(ids)
        return _exact_top_k(self.index.reconstruct_batch(nodes), self.labels[nodes], query, k)

    def _nodes(self, ids: np.ndarray) -> np.ndarray:
        """Graph nodes holding `ids`: a dict lookup for few ids, one vectorised pass over
        the labels for many (tombstones are labelled -1, never an id)."""
        if len(ids) * 16 < self.labels.size:
            return np.array(sorted(self.node_of[int(i)] for i in ids), dtype=np.int64)
        return np.flatnonzero(np.isin(self.labels, ids))


class IvfPqEngine:
    """Trained IVF-PQ: approximate search over product-quantised codes. Every IVF-PQ
    segment of a version shares one codebook (the first training's), so merges move codes
    between segments without decoding them."""

    def __init__(self, dimension: int, params: dict[str, int], index: Any) -> None:
        self.dimension = dimension
        self.params = params
        self.index = index
        self._template: Any = None

    @classmethod
    def train(
        cls, dimension: int, params: dict[str, int], ids: np.ndarray, vectors: np.ndarray
    ) -> IvfPqEngine:
        import faiss

        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(
            quantizer,
            dimension,
            params["nlist"],
            params["m"],
            params["nbits"],
            faiss.METRIC_INNER_PRODUCT,
        )
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        log.info("trained IVF-PQ on %d vectors", len(ids))
        return cls(dimension, params, index)

    def empty(self) -> Any:
        """A new, empty IVF-PQ index with this one's codebook."""
        import faiss

        if self._template is None:
            template = faiss.clone_index(self.index)
            template.reset()
            self._template = template
        return faiss.clone_index(self._template)

    def vectors(self) -> None:
        return None

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: Exclusion | None
    ) -> list[tuple[int, float]]:
        import faiss

        if allowed is not None:
            sel = _selector(allowed)
        elif excluded is not None:
            sel = excluded.selectors.get("not")
            if sel is None:
                sel = excluded.selectors["not"] = faiss.IDSelectorNot(_selector(excluded.ids))
        else:
            sel = None
        nlist = int(self.index.nlist)
        dead = len(excluded.ids) if excluded is not None else 0
        wanted = min(k, int(self.index.ntotal) - dead if allowed is None else len(allowed))
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


# -- segments ---------------------------------------------------------------------------


class Segment:
    """One immutable segment: rows (chunk int ids, payloads and the engine that searches
    their vectors) and the ids its write deleted from older segments. Shared by every
    snapshot that lists it; nothing here changes after construction except caches of
    values derived from it."""

    def __init__(
        self,
        name: str,
        kind: str,
        engine: Engine | None,
        ids: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        deletes: np.ndarray,
        *,
        entry: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind  # flat | hnsw | ivfpq: the engine type
        self.engine = engine
        self.ids = ids
        self.id_list: list[int] = ids.tolist()
        # By column: a few bytes a row instead of a dict (`index.payload_columns`).
        self.payloads = (
            payloads if isinstance(payloads, PayloadColumns) else PayloadColumns.from_rows(payloads)
        )
        self.deletes = deletes
        self.delete_list: list[int] = deletes.tolist()
        self.row_of = {int_id: row for row, int_id in enumerate(self.id_list)}
        # what the manifest lists for this segment
        self.entry = entry or {
            "file": name,
            "kind": kind,
            "rows": len(self.id_list),
            "deletes": len(self.delete_list),
        }
        self._postings: dict[str, dict[tuple[str, Any], np.ndarray]] = {}

    @property
    def rows(self) -> int:
        return len(self.id_list)

    @property
    def files(self) -> set[str]:
        return entry_files(self.entry)

    def payload(self, int_id: int) -> dict[str, Any]:
        return self.payloads[self.row_of[int_id]]

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        excluded: Exclusion | None,
    ) -> list[tuple[int, float]]:
        """The best `k` live rows ((int id, score), best first); `allowed` (sorted live ids
        of this segment) restricts them, `excluded` (its dead ids) is skipped."""
        if self.engine is None or k <= 0:
            return []
        if allowed is not None:
            return self.engine.search(query, min(k, len(allowed)), allowed, None)
        dead = len(excluded.ids) if excluded is not None else 0
        k = min(k, self.rows - dead)
        if k <= 0:
            return []
        if excluded is None:
            return self.engine.search(query, k, None, None)
        if dead <= OVERFETCH_MAX:
            hits = self.engine.search(query, k + dead, None, None)
            return [h for h in hits if h[0] not in excluded.set][:k]
        return self.engine.search(query, k, None, excluded)

    def allowed(self, filters: dict[str, Any]) -> np.ndarray:
        """Sorted ids of rows whose payload passes `matches(payload, filters)`, from
        per-key postings built on first use (the segment never changes, so they are kept
        for the life of the segment)."""
        result: np.ndarray | None = None
        for key, want in filters.items():
            if isinstance(want, dict):  # a range: no postings, scan
                values = self.payloads.column(key)
                found = np.array(
                    sorted(
                        i
                        for i, v in zip(self.id_list, values, strict=True)
                        if v is not None and matches({key: v}, {key: want})
                    ),
                    dtype=np.int64,
                )
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
        for i, value in zip(self.id_list, self.payloads.column(key), strict=True):
            for element in value if isinstance(value, list) else [value]:
                term = _term(element)
                if term is not None:
                    lists.setdefault(term, set()).add(i)
        postings = {t: np.array(sorted(ids), dtype=np.int64) for t, ids in lists.items()}
        self._postings[key] = postings
        return postings


def segment_kind(index_type: str, rows: int, trained: bool) -> str:
    """The engine a new segment of `rows` rows gets: exact below APPROX_MIN_ROWS, else
    the configured type (IVF-PQ only once a codebook is trained)."""
    if rows >= APPROX_MIN_ROWS:
        if index_type == "hnsw":
            return "hnsw"
        if index_type == "ivfpq" and trained:
            return "ivfpq"
    return "flat"


def build_segment(
    name: str,
    kind: str,
    dimension: int,
    params: dict[str, int],
    ids: np.ndarray,
    vectors: np.ndarray,
    payloads: Sequence[dict[str, Any]],
    deletes: np.ndarray,
    *,
    codebook: IvfPqEngine | None = None,
) -> Segment:
    """A segment of `kind` over these rows; `ivfpq` encodes with `codebook`'s codebook,
    or trains a new one on these vectors when there is none."""
    engine: Engine
    if kind == "hnsw":
        engine = HnswEngine(dimension, params)
        if len(ids):
            engine.add(ids, vectors)
    elif kind == "ivfpq":
        if codebook is None:
            engine = IvfPqEngine.train(dimension, params, ids, vectors)
        else:
            engine = IvfPqEngine(dimension, params, codebook.empty())
            if len(ids):
                engine.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
    else:
        engine = FlatEngine(dimension)
        if len(ids):
            engine.add(ids, vectors)
    return Segment(name, kind, engine, ids, payloads, deletes)


def merge_segments(
    name: str,
    kind: str,
    dimension: int,
    params: dict[str, int],
    run: list[Segment],
    dead: dict[str, frozenset[int]],
    older: list[Segment],
    *,
    codebook: IvfPqEngine | None = None,
) -> Segment | None:
    """One segment equivalent to the contiguous `run` (oldest first) on top of `older`:
    the run's live rows, and the ids it touched without keeping them that still have a
    row in an older segment (as deletes). None when that is nothing at all.

    `kind == "ivfpq"`: IVF-PQ segments of the run keep their codes (same codebook), exact
    vectors of the others are encoded with `codebook`; with no codebook one is trained
    on the run's vectors (all exact then: nothing is encoded before the first training).
    """
    import faiss

    ids_parts: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []
    vector_parts: list[tuple[np.ndarray, np.ndarray]] = []
    code_parts: list[tuple[Segment, np.ndarray]] = []
    touched: set[int] = set()
    for segment in run:
        gone = dead.get(segment.name, frozenset())
        touched.update(segment.id_list)
        touched.update(segment.delete_list)
        keep = np.fromiter((i not in gone for i in segment.id_list), bool, segment.rows)
        ids = segment.ids[keep]
        ids_parts.append(ids)
        payloads.extend(p for p, k in zip(segment.payloads, keep.tolist(), strict=True) if k)
        if segment.kind == "ivfpq":
            code_parts.append((segment, segment.ids[~keep]))
        else:
            vectors = segment.engine.vectors() if segment.engine is not None else None
            if vectors is not None and len(ids):
                vector_parts.append((ids, vectors[keep]))
    ids = np.concatenate(ids_parts) if ids_parts else np.empty(0, np.int64)
    live = set(ids.tolist())
    deletes = np.array(
        sorted(i for i in touched - live if any(i in s.row_of for s in older)), dtype=np.int64
    )
    if not ids.size and not deletes.size and kind != "ivfpq":
        return None
    if kind != "ivfpq" or codebook is None:
        vectors = (
            np.vstack([v for _, v in vector_parts])
            if vector_parts
            else np.empty((0, dimension), np.float32)
        )
        # vector parts cover every row here (code parts need a codebook)
        return build_segment(
            name, kind, dimension, params, ids, vectors, payloads, deletes, codebook=codebook
        )
    engine = IvfPqEngine(dimension, params, codebook.empty())
    for segment, gone in code_parts:
        codes = faiss.clone_index(segment.engine.index)
        if gone.size:
            codes.remove_ids(_selector(gone))
        engine.index.merge_from(codes, 0)
    for part_ids, vectors in vector_parts:
        engine.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), part_ids)
    return Segment(name, kind, engine, ids, payloads, deletes)


def write_segment(directory: Path, filename: str, segment: Segment) -> int:
    """Write and fsync `segment` as `filename` (which must not exist); returns the bytes
    written."""
    import faiss

    body = (
        faiss.serialize_index(segment.engine.index)
        if segment.engine is not None
        else np.empty(0, np.uint8)
    )
    header = json.dumps(
        {
            "kind": segment.kind,
            "dimension": int(getattr(segment.engine, "dimension", 0) or 0),
            "ids": segment.id_list,
            "payloads": list(segment.payloads),
            "deletes": segment.delete_list,
            "index_bytes": int(body.nbytes),
        },
        separators=(",", ":"),
    ).encode()
    with open(directory / filename, "xb") as fh:
        fh.write(SEGMENT_MAGIC)
        fh.write(len(header).to_bytes(8, "little"))
        fh.write(header)
        fh.write(memoryview(body))
        fh.flush()
        os.fsync(fh.fileno())
    return len(SEGMENT_MAGIC) + 8 + len(header) + int(body.nbytes)


def read_segment(
    directory: Path, entry: dict[str, Any], dimension: int, params: dict[str, int]
) -> Segment:
    """Load the segment a manifest entry names. Raises InvalidInput when it holds
    vectors of another dimension, Unavailable when it is corrupt; OSError and FAISS's
    RuntimeError propagate (the caller translates them)."""
    if "legacy" in entry:
        return _read_legacy(directory, entry, dimension, params)
    path = directory / entry["file"]
    with open(path, "rb") as fh:
        return _read_segment_file(path, fh, entry, dimension, params)


def _read_segment_file(
    path: Path, fh: BinaryIO, entry: dict[str, Any], dimension: int, params: dict[str, int]
) -> Segment:
    import faiss

    start = len(SEGMENT_MAGIC) + 8
    prefix = fh.read(start)
    if len(prefix) < start or not prefix.startswith(SEGMENT_MAGIC):
        raise corrupt(path, "not a segment file")
    length = int.from_bytes(prefix[len(SEGMENT_MAGIC) :], "little")
    try:
        header = json.loads(fh.read(length))
        kind = header["kind"]
        ids = np.array(header["ids"], dtype=np.int64).reshape(-1)
        deletes = np.array(header["deletes"], dtype=np.int64).reshape(-1)
        payloads = PayloadColumns.from_rows(dict(p) for p in header.pop("payloads"))
        size = int(header["index_bytes"])
        if kind not in ("flat", "hnsw", "ivfpq") or len(payloads) != len(ids):
            raise ValueError(f"bad header (kind {kind!r}, {len(payloads)} payloads)")
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise corrupt(path, exc) from exc
    found = os.fstat(fh.fileno()).st_size - start - length
    if found != size:
        raise corrupt(path, f"expected {size} index bytes, found {found} (truncated)")
    engine: Engine | None = None
    if size:
        # Streamed from the file into FAISS's structures: a million-row HNSW segment
        # (~1.8 GB) is not held twice more on the way (bytes, then a reader's copy).
        raw = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
        if raw.d != dimension:
            raise InvalidInput(f"{path} has dimension {raw.d}, expected {dimension}")
        if kind == "hnsw":
            engine = HnswEngine(dimension, params, raw, ids)
        elif kind == "ivfpq":
            engine = IvfPqEngine(dimension, params, raw)
        else:
            engine = FlatEngine(dimension, raw)
        if raw.ntotal != len(ids):
            raise corrupt(path, f"{raw.ntotal} vectors for {len(ids)} ids")
    return Segment(entry["file"], kind, engine, ids, payloads, deletes, entry=dict(entry))


def _read_legacy(
    directory: Path, entry: dict[str, Any], dimension: int, params: dict[str, int]
) -> Segment:
    """A directory saved before segments: one index file, one payload file and, for
    HNSW, the labels of the graph nodes."""
    import faiss

    files = entry["legacy"]
    index_file = directory / files["index"]
    if not index_file.exists():  # FAISS would say RuntimeError; callers retry on this
        raise FileNotFoundError(2, "No such file or directory", str(index_file))
    raw = faiss.read_index(str(index_file))
    if raw.d != dimension:
        raise InvalidInput(f"{index_file} has dimension {raw.d}, expected {dimension}")
    try:
        stored = json.loads((directory / files["payloads"]).read_text())
        by_id = {int(k): dict(v) for k, v in stored.items()}
        engine: Engine
        if "labels" in files:
            engine = HnswEngine(dimension, params, raw, np.load(directory / files["labels"]))
            ids = engine.labels[engine.labels >= 0]
            kind = "hnsw"
        elif isinstance(raw, faiss.IndexIVFPQ):
            engine = IvfPqEngine(dimension, params, raw)
            ids = np.array(list(by_id), dtype=np.int64)
            kind = "ivfpq"
        else:
            engine = FlatEngine(dimension, raw)
            ids = engine.ids()
            kind = "flat"
        payloads = [by_id[i] for i in ids.tolist()]
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # bad JSON or .npy
        raise corrupt(directory, exc) from exc
    return Segment(
        entry["file"], kind, engine, ids, payloads, np.empty(0, np.int64), entry=dict(entry)
    )


# -- the manifest -----------------------------------------------------------------------


def entry_files(entry: dict[str, Any]) -> set[str]:
    if "legacy" in entry:
        return set(entry["legacy"].values())
    return {entry["file"]}


def manifest_files(manifest: dict[str, Any] | None) -> set[str]:
    if not manifest:
        return set()
    return set().union(*(entry_files(e) for e in manifest["segments"]))


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of the version directory `path` (the single-file layouts before
    segments read as a manifest of one legacy segment, `seq` 0), or None when nothing
    was ever saved. Unavailable when it is malformed; OSError propagates."""
    meta_file = path / MANIFEST_FILE
    try:
        text = meta_file.read_text()
    except (FileNotFoundError, NotADirectoryError):
        if (path / "index.faiss").exists():  # the layout before meta.json
            legacy = {"index": "index.faiss", "payloads": "payloads.json"}
            return _manifest_of_legacy("flat", {}, None, legacy)
        return None
    try:
        meta = dict(json.loads(text))
        if not isinstance(meta["index_type"], str):
            raise TypeError("index_type is not a string")
        if not isinstance(meta["index_params"], dict):
            raise TypeError("index_params is not an object")
        if meta.get("format", 1) < MANIFEST_FORMAT:
            files = meta["files"]
            names = ["index", "payloads"] + (["labels"] if meta["index_type"] == "hnsw" else [])
            for key in names:
                if not isinstance(files[key], str):
                    raise TypeError(f"files.{key} is not a file name")
            legacy = {key: files[key] for key in names}
            return _manifest_of_legacy(
                meta["index_type"], meta["index_params"], meta.get("dimension"), legacy
            )
        if not isinstance(meta["seq"], int) or not isinstance(meta["segments"], list):
            raise TypeError("seq or segments missing")
        for entry in meta["segments"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise TypeError(f"segment entry {entry!r} names no file")
            if "legacy" in entry and not isinstance(entry["legacy"], dict):
                raise TypeError(f"segment entry {entry!r} has bad legacy files")
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise corrupt(meta_file, exc) from exc
    return meta


def _manifest_of_legacy(
    index_type: str, params: dict[str, Any], dimension: int | None, files: dict[str, str]
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "seq": 0,
        "index_type": index_type,
        "index_params": params,
        "dimension": dimension,
        "segments": [{"file": files["index"], "kind": "legacy", "legacy": files}],
    }


def switch_manifest(path: Path, manifest: dict[str, Any], previous: dict[str, Any] | None) -> int:
    """Make `manifest` the version's state: write it under a temporary name, fsync,
    rename it over meta.json (atomic) and fsync the directory, so a crash at any point
    leaves either the previous manifest or this one. Then delete what neither names.
    Returns the bytes written. The caller holds the version's writer lock."""
    data = json.dumps(manifest, indent=1).encode()
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".meta-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / MANIFEST_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path)
    prune(path, keep=manifest_files(manifest) | manifest_files(previous))
    return len(data)


_DATA_PREFIXES = ("seg-", "index-", "labels-", "payloads-")
_LEGACY_NAMES = ("index.faiss", "payloads.json")
_STALE_TMP_PREFIXES = (".meta-", ".index-", ".payloads-")


def _is_data(name: str) -> bool:
    """Whether `name` is a file some write of an index wrote: a segment, a single-file
    layout's file or a crashed write's temporary file (not `.compact-`, not meta.json)."""
    return name.startswith(_DATA_PREFIXES + _STALE_TMP_PREFIXES) or name in _LEGACY_NAMES


def prune(path: Path, keep: Iterable[str]) -> None:
    """Delete data files not in `keep` (older switches' segments, crashed writes'
    leftovers) and `.compact-` files older than ORPHAN_GRACE_S. Best effort: a file
    that cannot be deleted now is deleted by a later switch."""
    keep = set(keep)
    now = time.time()
    for entry in os.scandir(path):
        name = entry.name
        if name in keep:
            continue
        stale = _is_data(name)
        if not stale and name.startswith(BUILDING_PREFIX):
            with contextlib.suppress(OSError):
                stale = now - entry.stat().st_mtime > ORPHAN_GRACE_S
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def purge(path: Path, keep: Iterable[str]) -> list[str]:
    """Delete now every data file not in `keep` (the current manifest's files): the
    previous switches' segments, single-file layouts, crashed writes' temporary files
    and merges being built, whatever their age. Unlike `prune` a file that cannot be
    deleted raises (OSError): erasure must not report success while one remains.
    Returns the names deleted. The caller holds the version's writer lock."""
    keep = set(keep)
    deleted: list[str] = []
    for entry in os.scandir(path):
        name = entry.name
        if name in keep or not (_is_data(name) or name.startswith(BUILDING_PREFIX)):
            continue
        with contextlib.suppress(FileNotFoundError):  # a merge discarded its own file
            os.unlink(entry.path)
        deleted.append(name)
    if deleted:
        fsync_dir(path)
    return deleted


# -- merge policy -----------------------------------------------------------------------


def plan_merge(segments: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """Which run of segments to merge next: `segments` holds (live rows, deletes, rows)
    per segment, oldest first; the answer is a slice [start, stop) (always a suffix, so
    merging it keeps the order of everything else), or None when the layout is fine.

    - more than MAX_SEGMENTS: merge the newest ones down to MAX_SEGMENTS;
    - size tiers: the oldest segment that weighs (live rows + deletes) at most
      1 / (MERGE_FACTOR - 1) of everything newer absorbs everything newer;
    - tombstones: a segment whose dead rows exceed PURGE_RATIO is rewritten, with
      everything newer (whose deletes killed them).
    """
    n = len(segments)
    if n > MAX_SEGMENTS:
        return (MAX_SEGMENTS - 1, n)
    weights = [live + deletes for live, deletes, _ in segments]
    newer = sum(weights)
    for i in range(n - 1):
        newer -= weights[i]
        if weights[i] * (MERGE_FACTOR - 1) <= newer:
            return (i, n)
    for i, (live, _, rows) in enumerate(segments):
        if rows and rows - live > PURGE_RATIO * rows:
            return (i, n)
    return None
