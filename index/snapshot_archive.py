"""The Qdrant shard snapshot archive: what `EdgeShard.unpack_snapshot` reads and a Qdrant
server's `POST /collections/{name}/shards/{id}/snapshots/upload` recovers.

Layout (checked against qdrant-edge-py 0.9.0's unpacking; the server shares that code, but
no server runs here to confirm it):

    segments/<segment id>/files/<the segment's files>   (the "streamable" segment format)
    wal/                                                (empty: every write is in segments)
    replica_state.json  shard_config.json               (what a server's recovery reads)
    edge_config.json                                    (Edge's shard config; servers ignore it)

Edge preallocates 32 MB chunk files that are mostly holes, so a plain tar of a 20-point
shard is 134 MB of zeros. Files are written as GNU sparse entries (type `S`, the old GNU
sparse format, which the `tar` crate behind both unpackers restores, holes included):
only the data regions are stored. Python's `tarfile` reads the result too.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BLOCK = 512
SEGMENTS_DIR = "segments"
# Files at the top of an Edge shard that belong in the archive (its config; no WAL: Edge
# shards here run without one, `index.edge_index`).
TOP_FILES = ("edge_config.json",)
# A single-node server restores a shard only from a replica state that says it is local.
REPLICA_STATE = {"is_local": True, "this_peer_id": 0, "peers": {"0": "Active"}}
SHARD_CONFIG = {"type": "replica_set"}


def _regions(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of each data region of the open file, holes left out."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)] if size else []
    regions = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        regions.append((start, end - start))
        offset = end
    return regions


def _octal(value: int, width: int) -> bytes:
    """A GNU numeric field: octal when it fits, else base-256 (big files)."""
    text = f"{value:0{width - 1}o}".encode()
    if len(text) < width:
        return text + b"\0"
    out = bytearray(value.to_bytes(width, "big"))
    out[0] |= 0x80
    return bytes(out)


def _sparse_entries(regions: list[tuple[int, int]]) -> bytes:
    return b"".join(_octal(off, 12) + _octal(length, 12) for off, length in regions)


def _sparse_header(
    name: str, mode: int, mtime: int, realsize: int, regions: list[tuple[int, int]]
) -> bytes:
    """The header blocks of one GNU sparse member: a regular header from `tarfile` (with
    its GNU long-name block when the name is long), patched into type `S` with the first
    four regions, then extension blocks of 21 regions each."""
    info = tarfile.TarInfo(name)
    info.size = sum(length for _, length in regions)
    info.mode = mode
    info.mtime = mtime
    blocks = bytearray(info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict"))
    header = bytearray(blocks[-BLOCK:])
    header[156:157] = tarfile.GNUTYPE_SPARSE
    first, rest = regions[:4], regions[4:]
    header[386 : 386 + 24 * len(first)] = _sparse_entries(first)
    header[482:483] = b"\1" if rest else b"\0"
    header[483:495] = _octal(realsize, 12)
    header[148:156] = b" " * 8
    checksum = sum(header)
    header[148:156] = f"{checksum:06o}".encode() + b"\0 "
    blocks[-BLOCK:] = header
    while rest:
        chunk, rest = rest[:21], rest[21:]
        ext = bytearray(BLOCK)
        ext[: 24 * len(chunk)] = _sparse_entries(chunk)
        ext[504:505] = b"\1" if rest else b"\0"
        blocks += ext
    return bytes(blocks)


def _add_file(out: BinaryIO, path: Path, name: str) -> None:
    with open(path, "rb") as src:
        stat = os.fstat(src.fileno())
        regions = _regions(src.fileno(), stat.st_size)
        # GNU tar ends a sparse map with the file's end, so a trailing hole is restored.
        if not regions or sum(regions[-1]) < stat.st_size:
            regions.append((stat.st_size, 0))
        out.write(
            _sparse_header(name, stat.st_mode & 0o7777, int(stat.st_mtime), stat.st_size, regions)
        )
        written = 0
        for offset, length in regions:
            src.seek(offset)
            left = length
            while left:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise OSError(f"{path} shrank while it was archived")
                out.write(chunk)
                left -= len(chunk)
            written += length
        out.write(b"\0" * (-written % BLOCK))


def _add_dir(out: BinaryIO, name: str) -> None:
    info = tarfile.TarInfo(name.rstrip("/") + "/")
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    out.write(info.tobuf(format=tarfile.GNU_FORMAT))


def _add_bytes(out: BinaryIO, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    out.write(info.tobuf(format=tarfile.GNU_FORMAT))
    out.write(data + b"\0" * (-len(data) % BLOCK))


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            yield path, path.relative_to(root).as_posix()


def write_shard_archive(shard: Path, out: BinaryIO) -> None:
    """Write the closed (or copied) Edge shard directory `shard` to `out` as a shard
    snapshot (module docstring). Raises OSError when a file cannot be read."""
    segments = shard / SEGMENTS_DIR
    _add_dir(out, SEGMENTS_DIR)
    for segment in sorted(
        p for p in segments.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        base = f"{SEGMENTS_DIR}/{segment.name}/files"
        _add_dir(out, f"{SEGMENTS_DIR}/{segment.name}")
        _add_dir(out, base)
        for path, rel in _walk(segment):
            _add_file(out, path, f"{base}/{rel}")
    _add_dir(out, "wal")
    for name in TOP_FILES:
        if (shard / name).is_file():
            _add_file(out, shard / name, name)
    _add_bytes(out, "replica_state.json", json.dumps(REPLICA_STATE).encode())
    _add_bytes(out, "shard_config.json", json.dumps(SHARD_CONFIG).encode())
    out.write(b"\0" * (2 * BLOCK))


def shard_archive_bytes(shard: Path) -> bytes:
    """`write_shard_archive` into memory (small shards, tests)."""
    buffer = io.BytesIO()
    write_shard_archive(shard, buffer)
    return buffer.getvalue()
