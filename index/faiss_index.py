"""FAISS backend: one directory per index version, made of immutable segments.

On disk (details in `index.segments`): `meta.json`, the manifest, names the live segment
files oldest first; each `seg-*.seg` holds the rows one write added (vectors in a FAISS
structure, chunk ids, payloads) and the ids that write deleted from older segments (its
tombstones). A row is live when no newer segment adds or deletes its id.

Writes cost what changed. `upsert`/`delete` go to a private in-memory overlay (older rows
they replace or delete are masked at once, so this object reads its own writes);
`save()` publishes the overlay as one new segment file, fsynced, then atomically switches
the manifest to list it. Nothing already written is rewritten: the bytes of a publish
grow with the rows it touched, not with the index.

Reads search every segment (skipping its dead rows) and merge the best `top_k`.

Compaction merges segments so there stay few of them (`index.segments.plan_merge`:
size tiers of factor MERGE_FACTOR, a cap on their number, a rewrite of segments with
over PURGE_RATIO dead rows). A merge builds one segment of the run's live rows, writes it
under a temporary name, then publishes it by the same manifest switch; the replaced files
are deleted one switch later. Snapshots taken before keep answering from their loaded
segments. `save()` compacts inline when due (`save(compact=False)` does not; the
`index.store.IndexStore` compacts in a background thread instead), `compact()` on demand.

Erasure (`erase`): a `delete` only adds tombstones, and a merge leaves the replaced
files for one more switch, so a deleted row's vector and payload stay on disk for a
while. `erase` deletes the ids, rewrites every segment when any file still holds one of
them (live or already dead, as a row or a tombstone) and then deletes every data file
the new manifest does not name (`index.segments.purge`).

Crash safety: segment files are written under fresh names and fsynced before the manifest
names them; the manifest is replaced by an atomic rename. A process killed at any point
leaves the previous manifest or the new one, and files no manifest names are ignored and
deleted by a later switch. One writer per directory at a time (`IndexStore` holds a file
lock); readers need no lock.

Index types (`index_type`, tuned by `index_params`). Segments under APPROX_MIN_ROWS rows
are exact (flat) whatever the type; larger ones, written or merged, get the type:
- `flat`: exact inner product (IndexFlatIP behind an IndexIDMap2). Params: none.
- `hnsw`: IndexHNSWFlat, inner product; approximate search, exact scores. Params:
  `M` (graph degree, default 32), `ef_construction` (default 40), `ef_search` (default
  256: recall@10 0.97 at 0.4-0.5 ms on 100k real chunks and at 1M, where 64 gave 0.93 and
  0.86; docs/benchmarks.md).
- `ivfpq`: IndexIVFPQ, inner product on product-quantised codes; approximate search and
  approximate scores. Params: `nlist` (default 256), `m` (sub-quantisers, must divide the
  dimension; default the largest divisor <= dimension / 8), `nbits` (default 8), `nprobe`
  (lists scanned per query, default 16). It needs training data: until
  `training_threshold` vectors are present the index stays exact (flat) and `trained` is
  False; the first compaction past the threshold trains one codebook on every vector and
  merges them all into an IVF-PQ segment; later IVF-PQ segments share that codebook.

Directories written before segments (`meta.json` naming `index-<token>.faiss`,
`payloads-<token>.json`, `labels-<token>.npy`; or just `index.faiss` + `payloads.json`,
opened as `flat`) open as one legacy segment, which new writes stack segments on and the
first merge that reaches it rewrites.

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
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import InvalidInput, RagopsError, Unavailable
from index.base import Hit, check_filters, checked_ids, checked_query, checked_upsert
from index.segments import (
    BUILDING_PREFIX,
    MANIFEST_FORMAT,
    SEGMENT_SUFFIX,
    Exclusion,
    HnswEngine,
    IvfPqEngine,
    Segment,
    build_segment,
    manifest_files,
    merge_segments,
    plan_merge,
    purge,
    read_manifest,
    read_segment,
    segment_kind,
    switch_manifest,
    write_segment,
)

IndexType = Literal["flat", "hnsw", "ivfpq"]
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivfpq")

# Knobs that only affect searching, so a saved index may be reopened with new values.
SEARCH_TIME_PARAMS = frozenset({"ef_search", "nprobe"})
# Opening retries when a file the manifest named was deleted meanwhile: two switches
# happened between reading the manifest and loading its segments.
OPEN_ATTEMPTS = 5

_PARAM_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 256},
    "ivfpq": {"nlist": 256, "m": 0, "nbits": 8, "nprobe": 16},  # m=0: derived from dimension
}
_PENDING = "<pending>"


def faiss_id(chunk_id: str) -> int:
    """Stable positive int64 for any chunk id (60 bits of its sha256: collisions are
    negligible at any realistic index size)."""
    return int(hashlib.sha256(chunk_id.encode()).hexdigest()[:15], 16)


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


def _seq(manifest: dict[str, Any] | None) -> int:
    return -1 if manifest is None else int(manifest["seq"])


def _replay(segments: list[Segment]) -> dict[str, frozenset[int]]:
    """Dead ids per segment: those a newer segment adds or deletes again."""
    seen: set[int] = set()
    dead: dict[str, frozenset[int]] = {}
    for i in range(len(segments) - 1, -1, -1):
        segment = segments[i]
        dead[segment.name] = frozenset(seen.intersection(segment.id_list)) if seen else frozenset()
        if i:
            seen.update(segment.id_list)
            seen.update(segment.delete_list)
    return dead


@dataclass
class Merge:
    """A merge built by `FaissIndex.prepare_compaction`, not yet published: the run of
    segment files it replaces and the segment replacing them (None: the run held nothing
    that still matters), written as `building` until `apply_compaction` renames it."""

    run: tuple[str, ...]
    segment: Segment | None
    building: str | None
    bytes_written: int

    def discard(self, path: Path) -> None:
        if self.building:
            with contextlib.suppress(OSError):
                os.unlink(path / self.building)


class FaissIndex:
    """A FAISS index of unit vectors scored by inner product, stored as segments (see the
    module docstring for the layout and the index types).

    Filtering runs on payloads through per-segment postings and id selectors, so filtered
    searches still return the best `top_k` matching vectors, not a post-filtered
    remainder.

    Example::

        idx = FaissIndex.open(path, 384, index_type="hnsw", index_params={"M": 16})
        idx.upsert(["c1"], vectors, [{"document_id": "d1"}])
        idx.save()  # one new segment file + a manifest switch
    """

    backend = "faiss"

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        index_type: IndexType = "flat",
        index_params: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.dimension = dimension
        self.index_type = index_type
        with _translated("configure the index", path):
            self.index_params = resolve_params(index_type, dimension, index_params)
        # committed state: the manifest as last read or written (None: nothing on disk
        # yet), its segments oldest first, and per segment the ids no longer live in it
        self._manifest: dict[str, Any] | None = None
        self._segments: list[Segment] = []
        self._dead: dict[str, frozenset[int]] = {}
        self._live = 0
        # the overlay of unsaved writes: rows to add (int id → vector, payload) and the
        # ids whose committed rows they replace or delete (already in `_dead`)
        self._adds: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        self._kills: set[int] = set()
        self._pending: Segment | None = None  # `_adds` as a searchable segment, built lazily
        self._exclusions: dict[str, Exclusion] = {}
        # bytes and files this object wrote (segments, manifests); benches read them
        self.bytes_written = 0
        self.files_written = 0

    @property
    def trained(self) -> bool:
        """False while an `ivfpq` index is still served exactly (too few vectors to train)."""
        return self.index_type != "ivfpq" or self._codebook() is not None

    @property
    def training_threshold(self) -> int:
        """Vectors an `ivfpq` index needs before compaction trains it (0 for other types)."""
        if self.index_type != "ivfpq":
            return 0
        p = self.index_params
        return max(39 * p["nlist"], 2 ** p["nbits"], 256)

    def layout(self) -> dict[str, Any]:
        """The committed segments (file, kind, rows, dead rows, deletes) and the manifest
        sequence number; for tests, benches and operators."""
        return {
            "seq": _seq(self._manifest),
            "count": self._live,
            "segments": [
                {
                    "file": s.name,
                    "kind": s.kind,
                    "rows": s.rows,
                    "dead": len(self._dead[s.name]),
                    "deletes": len(s.delete_list),
                }
                for s in self._segments
            ],
        }

    # -- opening --------------------------------------------------------------------------
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
            return cls._load(path, dimension, index_type, index_params, previous=None)

    def refreshed(self) -> FaissIndex:
        """This index as its directory holds it now: self when the manifest has not moved
        since it was read, else a new snapshot that reuses the segments already loaded
        (only new segment files are read). Unsaved writes are not carried over."""
        with _translated("open the index", self.path):
            if _seq(read_manifest(self.path)) == _seq(self._manifest) and not self._dirty:
                return self
            return self._load(
                self.path, self.dimension, self.index_type, self.index_params, previous=self
            )

    @classmethod
    def _load(
        cls,
        path: Path,
        dimension: int,
        index_type: IndexType,
        index_params: dict[str, Any] | None,
        previous: FaissIndex | None,
    ) -> FaissIndex:
        for attempt in range(OPEN_ATTEMPTS):
            manifest = read_manifest(path)
            if manifest is None:
                return cls(path, dimension, index_type=index_type, index_params=index_params)
            try:
                return cls._from_manifest(
                    path, dimension, index_type, index_params, manifest, previous
                )
            except FileNotFoundError:
                # a file the manifest named is gone: two switches happened since we read
                # it (a switch keeps the previous manifest's files); read the new one
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _from_manifest(
        cls,
        path: Path,
        dimension: int,
        index_type: IndexType,
        index_params: dict[str, Any] | None,
        manifest: dict[str, Any],
        previous: FaissIndex | None,
    ) -> FaissIndex:
        if manifest["index_type"] != index_type:
            raise InvalidInput(
                f"{path} holds a {manifest['index_type']!r} index, not {index_type!r}; "
                "open it with the type it was built with or build a new version"
            )
        saved: dict[str, int] = manifest["index_params"]
        params = {**saved, **(index_params or {})}
        changed = sorted(
            k for k in params if k not in SEARCH_TIME_PARAMS and params[k] != saved.get(k)
        )
        if changed:
            raise InvalidInput(
                f"{path} was built with index_params {saved}; {', '.join(changed)} can only "
                "change by building a new version"
            )
        stored_dimension = manifest.get("dimension")
        if stored_dimension is not None and stored_dimension != dimension:
            raise InvalidInput(f"{path} has dimension {stored_dimension}, expected {dimension}")
        index = cls(path, dimension, index_type=index_type, index_params=params)
        loaded = {s.name: s for s in previous._segments} if previous is not None else {}
        segments = [
            loaded.get(entry["file"]) or read_segment(path, entry, dimension, index.index_params)
            for entry in manifest["segments"]
        ]
        index._install(manifest, segments, previous)
        return index

    def _install(
        self, manifest: dict[str, Any], segments: list[Segment], previous: FaissIndex | None
    ) -> None:
        """Adopt `manifest`'s segments: when they only extend `previous`'s (new writes on
        top), apply just the new ones to its dead sets; otherwise replay them all."""
        self._manifest = manifest
        names = [s.name for s in segments]
        known = [s.name for s in previous._segments] if previous is not None else []
        if previous is not None and not previous._dirty and known and names[: len(known)] == known:
            self._segments = list(previous._segments)
            self._dead = dict(previous._dead)
            self._exclusions = dict(previous._exclusions)
            for segment in segments[len(known) :]:
                self._kill(segment.id_list + segment.delete_list)
                self._segments.append(segment)
                self._dead[segment.name] = frozenset()
        else:
            self._segments = segments
            self._dead = _replay(segments)
        self._live = sum(s.rows - len(self._dead[s.name]) for s in self._segments)

    # -- writes -----------------------------------------------------------------------
    @property
    def _dirty(self) -> bool:
        return bool(self._adds or self._kills)

    def _locate(self, int_id: int) -> str | None:
        """The committed segment holding the live row of `int_id`, if any: only the
        newest segment with a row for it can (every newer row kills the older ones)."""
        for segment in reversed(self._segments):
            if int_id in segment.row_of:
                return None if int_id in self._dead[segment.name] else segment.name
        return None

    def _kill(self, int_ids: Iterable[int]) -> set[int]:
        """Mark the committed live rows of `int_ids` dead; returns the ids that had one."""
        hit: dict[str, set[int]] = {}
        for int_id in int_ids:
            name = self._locate(int_id)
            if name is not None:
                hit.setdefault(name, set()).add(int_id)
        for name, ids in hit.items():
            self._dead[name] = self._dead[name] | ids  # a new set: snapshots share the old
        return set().union(*hit.values()) if hit else set()

    def upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        texts: list[str] | None = None,  # lexical search of FAISS versions: retrieval.bm25
    ) -> None:
        if not ids:
            return
        with _translated("upsert", self.path):
            self._upsert(ids, vectors, payloads)

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        vectors, latest = checked_upsert(ids, vectors, payloads, self.dimension)
        rows = np.fromiter(latest.values(), dtype=np.int64, count=len(latest))
        matrix = vectors[rows]  # a copy: later changes to the caller's array stay out
        int_ids = [faiss_id(c) for c in latest]
        self._kills |= self._kill(int_ids)
        rows_of = zip(int_ids, latest, rows.tolist(), matrix, strict=True)
        for int_id, chunk_id, row, vector in rows_of:
            self._adds.pop(int_id, None)
            self._adds[int_id] = (vector, {**payloads[row], "chunk_id": chunk_id})
        self._pending = None

    def delete(self, ids: list[str]) -> None:
        if ids:
            with _translated("delete", self.path):
                int_ids = [faiss_id(i) for i in checked_ids(ids)]
                self._kills |= self._kill(int_ids)
                for int_id in int_ids:
                    if self._adds.pop(int_id, None) is not None:
                        self._pending = None

    def present(self, ids: list[str]) -> set[str]:
        return {
            chunk_id
            for chunk_id in checked_ids(ids)
            if (int_id := faiss_id(chunk_id)) in self._adds or self._locate(int_id) is not None
        }

    def erase(self, ids: list[str], *, document_ids: Iterable[str] = ()) -> int:
        """Delete `ids` (and every row, live or dead, whose payload's `document_id` is in
        `document_ids`: vectors of a document's older revisions, whose chunk ids are no
        longer known) and leave no byte of their rows in the directory: rewrite every
        segment when any segment file holds one of them (as a live or dead row or as a
        tombstone), then delete every data file the new manifest does not name, the
        previous switch's and merges being built included. Publishes like `save()` (the
        unsaved writes too). Returns how many of `ids` were present before; erasing
        again returns 0 and changes nothing.

        The caller holds the directory's writer lock, as for `save()`. A merge prepared
        before (from a snapshot still holding the rows) can no longer publish: its run is
        not in the manifest any more (`apply_compaction` returns False). Other snapshots
        keep the rows in memory until they are dropped; readers of other processes reload
        from the new manifest (a file gone under an old one makes them re-read it).

        Limit: an `ivfpq` codebook trained on vectors that are now erased is kept (codes
        cannot be retrained without the exact vectors); it holds centroids, no row.
        Raises Unavailable when a file cannot be written or deleted."""
        with _translated("erase from the index", self.path):
            int_ids = {faiss_id(i) for i in checked_ids(ids)}
            if _seq(read_manifest(self.path)) != _seq(self._manifest):
                self._rebase()  # erase what the directory holds now, not a stale snapshot
            int_ids |= self._rows_of_documents(set(document_ids))
            present = sum(1 for i in int_ids if i in self._adds or self._locate(i) is not None)
            self._kills |= self._kill(int_ids)
            for int_id in int_ids:
                if self._adds.pop(int_id, None) is not None:
                    self._pending = None
            if self._dirty:
                self._commit()
            if self._holds(int_ids):
                self._rewrite()
            if self.path.is_dir():
                purge(self.path, keep=manifest_files(self._manifest))
            return present

    def _rows_of_documents(self, document_ids: set[str]) -> set[int]:
        """Ids of every row (live or dead, in any committed segment or unsaved) whose
        payload names one of `document_ids`."""
        if not document_ids:
            return set()
        wanted = {"document_id": sorted(document_ids)}
        found = {i for segment in self._segments for i in segment.allowed(wanted).tolist()}
        found |= {i for i, (_, p) in self._adds.items() if p.get("document_id") in document_ids}
        return found

    def _holds(self, int_ids: set[int]) -> bool:
        """Whether a committed segment file holds a row or tombstone of `int_ids` (live
        or dead), or rows no id names (a single-file HNSW graph's deleted nodes)."""
        for segment in self._segments:
            if not int_ids.isdisjoint(segment.row_of) or not int_ids.isdisjoint(
                segment.delete_list
            ):
                return True
            if isinstance(segment.engine, HnswEngine) and segment.engine.dead_nodes:
                return True
        return False

    def _rewrite(self) -> None:
        """Merge every committed segment into one of the live rows only (or none)."""
        merge = self._prepare(full=True, rewrite=True)
        if merge is not None and not self._apply(merge):
            raise Unavailable(
                f"FAISS could not rewrite the segments at {self.path} (its merge file "
                "vanished); retry the erasure"
            )

    # -- persistence ------------------------------------------------------------------
    def save(self, *, compact: bool = True) -> None:
        """Publish the unsaved writes: one new segment file (their rows and tombstones),
        fsynced, then an atomic switch of the manifest to list it. A crash at any point
        leaves the previous manifest naming the previous, untouched files. Cost: the
        rows written, never the size of the index.

        `compact=True` then merges segments inline while the policy asks for it (that is
        also when an `ivfpq` index past its training threshold is trained).

        Raises Unavailable when the directory cannot be written (nothing is committed).
        """
        with _translated("save the index", self.path):
            self._commit()
        if compact:
            self.compact()

    def _commit(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if _seq(read_manifest(self.path)) != _seq(self._manifest):
            self._rebase()  # another writer switched since we read it: write on top
        if self._manifest is not None and not self._dirty:
            return
        seq = max(_seq(self._manifest), 0) + 1
        count = self.count()
        deletes = np.array(sorted(self._kills - self._adds.keys()), dtype=np.int64)
        segment = None
        if self._adds or deletes.size:
            ids = np.fromiter(self._adds, dtype=np.int64, count=len(self._adds))
            vectors = (
                np.vstack([v for v, _ in self._adds.values()])
                if self._adds
                else np.empty((0, self.dimension), np.float32)
            )
            kind = segment_kind(self.index_type, len(ids), self.trained)
            name = f"seg-{seq:08d}-{secrets.token_hex(4)}{SEGMENT_SUFFIX}"
            segment = build_segment(
                name,
                kind,
                self.dimension,
                self.index_params,
                ids,
                vectors,
                [p for _, p in self._adds.values()],
                deletes,
                codebook=self._codebook() if kind == "ivfpq" else None,
            )
            self._wrote(write_segment(self.path, name, segment))
        segments = self._segments + ([segment] if segment is not None else [])
        manifest = self._manifest_for(seq, segments, count)
        self._wrote(switch_manifest(self.path, manifest, self._manifest))
        if segment is not None:
            self._dead[segment.name] = frozenset()
        self._segments = segments
        self._manifest = manifest
        self._live = count
        self._adds, self._kills, self._pending = {}, set(), None

    def _rebase(self) -> None:
        """Reload the committed state from disk and re-apply the unsaved writes on it."""
        fresh = self._load(
            self.path, self.dimension, self.index_type, self.index_params, previous=self
        )
        touched = self._kills | self._adds.keys()
        self._manifest, self._segments, self._dead = fresh._manifest, fresh._segments, fresh._dead
        self._live, self._exclusions = fresh._live, fresh._exclusions
        self._kills = self._kill(touched)
        self._pending = None

    def _manifest_for(self, seq: int, segments: list[Segment], count: int) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "seq": seq,
            "index_type": self.index_type,
            "index_params": self.index_params,
            "dimension": self.dimension,
            "trained": self.index_type != "ivfpq" or any(s.kind == "ivfpq" for s in segments),
            "count": count,
            "segments": [s.entry for s in segments],
        }

    def _wrote(self, size: int) -> None:
        self.bytes_written += size
        self.files_written += 1

    def _codebook(self) -> IvfPqEngine | None:
        for segment in self._segments:
            if isinstance(segment.engine, IvfPqEngine):
                return segment.engine
        return None

    # -- compaction -------------------------------------------------------------------
    def _plan(self) -> tuple[int, int, bool] | None:
        """The run [start, stop) to merge next and whether the merge trains the IVF-PQ
        codebook (then the run is everything), or None."""
        if not self._segments:
            return None
        if not self.trained and self._live >= self.training_threshold:
            return (0, len(self._segments), True)
        plan = plan_merge(
            [(s.rows - len(self._dead[s.name]), len(s.delete_list), s.rows) for s in self._segments]
        )
        return None if plan is None else (*plan, False)

    def compaction_due(self) -> bool:
        """Whether the merge policy asks for a merge of the committed segments."""
        return self._plan() is not None

    def compact(self, *, full: bool = False) -> bool:
        """Save unsaved writes, then merge segments while the policy asks for it, each
        merge published by its own manifest switch (`full`: merge everything into one
        segment, e.g. before archiving a version). Returns whether anything merged."""
        with _translated("compact the index", self.path):
            self._commit()
            merged = False
            while (merge := self._prepare(full=full)) is not None:
                if not self._apply(merge):
                    break
                merged = True
                full = False
            return merged

    def prepare_compaction(self) -> Merge | None:
        """Plan the next merge of the committed segments and build its segment file under
        a temporary name; None when none is due. Publishes nothing, takes no lock and
        changes nothing here: run it off the writers' path and pass the result to
        `apply_compaction` of the then-current index."""
        with _translated("compact the index", self.path):
            return self._prepare()

    def _prepare(self, *, full: bool = False, rewrite: bool = False) -> Merge | None:
        """`full`: one merge of every segment unless they are a single tidy one;
        `rewrite` (with `full`): even then."""
        if self._dirty:
            raise InvalidInput("save() the unsaved writes before compacting")
        plan = self._plan()
        only = self._segments[0] if len(self._segments) == 1 else None
        tidy = not rewrite and only is not None and not (self._dead[only.name] or only.delete_list)
        if full and self._segments and not tidy and (plan is None or not plan[2]):
            plan = (0, len(self._segments), False)
        if plan is None:
            return None
        start, stop, training = plan
        run = self._segments[start:stop]
        if training or any(s.kind == "ivfpq" for s in run):
            kind = "ivfpq"
        else:
            live = sum(s.rows - len(self._dead[s.name]) for s in run)
            kind = segment_kind(self.index_type, live, self.trained)
        token = secrets.token_hex(4)
        name = f"seg-{_seq(self._manifest) + 1:08d}-{token}{SEGMENT_SUFFIX}"
        segment = merge_segments(
            name,
            kind,
            self.dimension,
            self.index_params,
            run,
            self._dead,
            self._segments[:start],
            codebook=None if training else self._codebook(),
        )
        building = f"{BUILDING_PREFIX}{token}{SEGMENT_SUFFIX}" if segment is not None else None
        size = write_segment(self.path, building, segment) if building and segment else 0
        return Merge(tuple(s.name for s in run), segment, building, size)

    def apply_compaction(self, merge: Merge) -> bool:
        """Publish `merge` on this index (committed, and the writer of its directory):
        rename its file into place and switch the manifest to list it instead of its run.
        False (and the merge's file deleted) when the run is no longer in the manifest
        (another merge replaced part of it) or its file was pruned as stale; segments
        written since the merge was planned stay and still apply on top of it."""
        with _translated("compact the index", self.path):
            return self._apply(merge)

    def _apply(self, merge: Merge) -> bool:
        if self._dirty:
            raise InvalidInput("save() the unsaved writes before compacting")
        if _seq(read_manifest(self.path)) != _seq(self._manifest):
            self._rebase()
        names = [s.name for s in self._segments]
        run = list(merge.run)
        start = names.index(run[0]) if run[0] in names else -1
        if start < 0 or names[start : start + len(run)] != run:
            merge.discard(self.path)
            return False
        after = self._segments[start + len(run) :]
        replaced: list[Segment] = []
        if merge.segment is not None:
            assert merge.building is not None
            try:
                os.rename(self.path / merge.building, self.path / merge.segment.name)
            except FileNotFoundError:
                return False  # deleted as a stale leftover meanwhile
            replaced = [merge.segment]
            self.bytes_written += merge.bytes_written
            self.files_written += 1
        segments = self._segments[:start] + replaced + after
        manifest = self._manifest_for(_seq(self._manifest) + 1, segments, self.count())
        self._wrote(switch_manifest(self.path, manifest, self._manifest))
        for name in run:
            self._dead.pop(name, None)
            self._exclusions.pop(name, None)
        if merge.segment is not None:
            # rows written since the merge was planned may replace or delete merged rows
            rows = merge.segment.row_of
            touched = {i for s in after for i in s.id_list + s.delete_list if i in rows}
            self._dead[merge.segment.name] = frozenset(touched)
        self._segments = segments
        self._manifest = manifest
        self._live = sum(s.rows - len(self._dead[s.name]) for s in segments)
        return True

    def copy(self) -> FaissIndex:
        """A snapshot to write on while readers keep searching this one; O(segments), as
        segments are shared and never change."""
        clone = FaissIndex(
            self.path, self.dimension, index_type=self.index_type, index_params=self.index_params
        )
        clone._manifest = self._manifest
        clone._segments = list(self._segments)
        clone._dead = dict(self._dead)
        clone._live = self._live
        clone._adds = dict(self._adds)
        clone._kills = set(self._kills)
        clone._pending = self._pending
        clone._exclusions = dict(self._exclusions)
        clone.bytes_written, clone.files_written = self.bytes_written, self.files_written
        return clone

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        return self._live - len(self._kills) + len(self._adds)

    def _pending_segment(self) -> Segment | None:
        if self._pending is None and self._adds:
            self._pending = build_segment(
                _PENDING,
                "flat",
                self.dimension,
                self.index_params,
                np.fromiter(self._adds, dtype=np.int64, count=len(self._adds)),
                np.vstack([v for v, _ in self._adds.values()]),
                [p for _, p in self._adds.values()],
                np.empty(0, np.int64),
            )
        return self._pending

    def _exclusion(self, name: str) -> Exclusion | None:
        dead = self._dead.get(name)
        if not dead:
            return None
        exclusion = self._exclusions.get(name)
        if exclusion is None or exclusion.set is not dead:
            exclusion = self._exclusions[name] = Exclusion(dead)
        return exclusion

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        with _translated("search", self.path):
            return self._search(vector, top_k, filters)

    def _search(self, vector: Any, top_k: int, filters: dict[str, Any] | None) -> list[Hit]:
        query = checked_query(vector, top_k, self.dimension)
        top_k = int(top_k)
        filters = check_filters(filters, allow_empty_lists=True)
        if self.count() == 0 or top_k <= 0:
            return []
        segments = list(self._segments)
        pending = self._pending_segment()
        if pending is not None:
            segments.append(pending)
        found: list[tuple[float, int, Segment]] = []
        for segment in segments:
            excluded = self._exclusion(segment.name)
            allowed = None
            if filters:
                allowed = segment.allowed(filters)
                if excluded is not None and allowed.size:
                    allowed = allowed[~np.isin(allowed, excluded.ids, assume_unique=True)]
                if not allowed.size:
                    continue
                excluded = None
            for int_id, score in segment.search(query, top_k, allowed, excluded):
                found.append((score, int_id, segment))
        found.sort(key=lambda hit: -hit[0])
        hits = []
        for score, int_id, segment in found[:top_k]:
            payload = dict(segment.payload(int_id))
            hits.append(Hit(chunk_id=payload["chunk_id"], score=float(score), payload=payload))
        return hits
