"""Expand an uploaded ZIP into its documents, refusing archives built to hurt us.

Every guard is checked against the central directory before a byte is inflated, and
again while inflating (a member may lie about its size in the directory). Python's
`zipfile` stops inflating at the declared size and checks the CRC, so the declared sizes
bound the work; the running total is a second line of defence.

`check_container` applies the size and ratio guards to the ZIP inside an Office or
OpenDocument file (a DOCX is a ZIP too, and a DOCX bomb is as cheap to make).

Example::

    for path, data in expand_archive(upload, "reports.zip", limits=ArchiveLimits()):
        ...  # path == "reports.zip/2024/q1.pdf"
"""

from __future__ import annotations

import io
import posixpath
import stat
import zipfile
from dataclasses import dataclass

from core.errors import ArchiveRejected

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record


@dataclass(frozen=True)
class ArchiveLimits:
    """Tuning knobs of the ZIP guards.

    max_ratio: uncompressed/compressed size of one member; deflate tops out near 1032:1,
        so bombs sit far above this while real documents (text, XML) stay below ~30:1.
    ratio_floor_bytes: the ratio guard only applies to members that expand beyond this,
        so a small file of repeated characters is not mistaken for a bomb.
    max_total_bytes: sum of uncompressed sizes of all members, nested archives included.
    max_members: files in the archive tree (directories not counted).
    max_depth: archive levels expanded: 1 is the upload alone, 2 also expands the ZIPs
        inside it, and a ZIP at a deeper level is rejected.
    """

    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024
    max_members: int = 1000
    max_depth: int = 2


# Office files hold highly repetitive XML (a spreadsheet's sheet XML reaches ~100:1), so
# their container guard is looser than an upload's; the parser's memory limit is behind it.
CONTAINER_LIMITS = ArchiveLimits(max_ratio=300.0, max_total_bytes=256 * 1024 * 1024)


# Bytes of each XML part searched for a DTD (it must come before the root element).
_PROLOG_BYTES = 4096


class _Budget:
    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.total = 0
        self.members = 0


def expand_archive(data: bytes, filename: str, *, limits: ArchiveLimits) -> list[tuple[str, bytes]]:
    """Return `(path, bytes)` for every file in the archive, nested ZIPs expanded in place.

    Paths are `filename/inner/path`; directories and macOS `__MACOSX/` resource forks are
    skipped. Raises `ArchiveRejected` naming the guard and the numbers when the archive is
    damaged, too deep, too big, too many files, too compressed, encrypted, or holds a
    symlink or a name that escapes the archive (absolute, `..`, drive letter).
    """
    budget = _Budget(limits)
    out: list[tuple[str, bytes]] = []
    _expand(data, filename, depth=1, budget=budget, out=out)
    return out


def check_container(data: bytes, name: str, *, limits: ArchiveLimits = CONTAINER_LIMITS) -> None:
    """Guards for the ZIP inside a DOCX/PPTX/XLSX/ODT: size and ratio from its directory,
    and no DTD in any XML part. OOXML and ODF never declare one; a DTD there is how an
    entity bomb ("billion laughs") or an external entity gets in."""
    archive = _open(data, name)
    with archive:
        total = 0
        for info in archive.infolist():
            _check_ratio(info, name, limits)
            total += info.file_size
            if total > limits.max_total_bytes:
                raise _rejected(
                    "size",
                    f"{name}: expands to more than {limits.max_total_bytes} bytes "
                    f"(at least {total} bytes uncompressed)",
                )
        for info in archive.infolist():
            if info.filename.endswith((".xml", ".rels")) and not info.is_dir():
                _check_no_dtd(archive, info, name)


def _check_no_dtd(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> None:
    try:
        with archive.open(info) as stream:
            prolog = stream.read(_PROLOG_BYTES)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise _rejected(
            "damaged", f"{name}: part {info.filename!r} cannot be read ({exc})"
        ) from None
    # A DTD must precede the root element, so it shows in the first bytes; UTF-16 parts
    # are checked in their own encoding.
    if prolog.startswith((b"\xff\xfe", b"\xfe\xff")):
        prolog = prolog.decode("utf-16", "replace").encode("utf-8")
    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
        raise _rejected(
            "xml",
            f"{name}: part {info.filename!r} declares a DTD (<!DOCTYPE>/<!ENTITY>), "
            "which Office files never do; refusing a possible XML entity bomb",
        )


def _open(data: bytes, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _rejected("damaged", f"{name}: not a readable ZIP archive ({exc})") from None


def _expand(
    data: bytes, name: str, *, depth: int, budget: _Budget, out: list[tuple[str, bytes]]
) -> None:
    limits = budget.limits
    if depth > limits.max_depth:
        raise _rejected(
            "depth",
            f"{name}: archives nested more than {limits.max_depth} deep; "
            "unpack the inner archive and upload its files",
        )
    archive = _open(data, name)
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        # Directory pass first: reject before inflating anything.
        declared = budget.total
        for info in infos:
            _check_name(info, name)
            _check_kind(info, name)
            _check_ratio(info, name, limits)
            declared += info.file_size
        if budget.members + len(infos) > limits.max_members:
            raise _rejected(
                "members",
                f"{name}: more than {limits.max_members} files "
                f"({budget.members + len(infos)} so far); split the archive",
            )
        if declared > limits.max_total_bytes:
            raise _rejected("size", _size_message(name, declared, limits))
        for info in infos:
            member = _member_path(info.filename)
            if member.split("/", 1)[0] == "__MACOSX":
                continue
            path = f"{name}/{member}"
            content = _read(archive, info, path, budget)
            if content[:4] in ZIP_MAGIC and member.lower().endswith(".zip"):
                _expand(content, path, depth=depth + 1, budget=budget, out=out)
            else:
                budget.members += 1
                out.append((path, content))


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, budget: _Budget) -> bytes:
    limits = budget.limits
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if budget.total + size > limits.max_total_bytes:
                    raise _rejected("size", _size_message(path, budget.total + size, limits))
                chunks.append(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        # Bad CRC, truncated data, an unsupported compression method (e.g. LZMA variants).
        raise _rejected("damaged", f"{path}: member cannot be read ({exc})") from None
    budget.total += size
    return b"".join(chunks)


def _member_path(raw: str) -> str:
    return "/".join(p for p in raw.replace("\\", "/").split("/") if p not in ("", "."))


def _check_name(info: zipfile.ZipInfo, archive: str) -> None:
    raw = info.filename
    parts = raw.replace("\\", "/").split("/")
    if (
        raw.startswith(("/", "\\"))
        or ".." in parts
        or (len(raw) > 1 and raw[1] == ":")  # C:\...
        or posixpath.isabs(raw)
        or "\x00" in raw
    ):
        raise _rejected(
            "path",
            f"{archive}: member name {raw!r} points outside the archive (absolute path or '..')",
        )
    if not _member_path(raw):
        raise _rejected("path", f"{archive}: member with an empty name")


def _check_kind(info: zipfile.ZipInfo, archive: str) -> None:
    if info.flag_bits & 0x1:
        raise _rejected(
            "encrypted",
            f"{archive}: member {info.filename!r} is encrypted; upload an unencrypted archive",
        )
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):  # 3 = Unix
        raise _rejected("link", f"{archive}: member {info.filename!r} is a symbolic link")


def _check_ratio(info: zipfile.ZipInfo, archive: str, limits: ArchiveLimits) -> None:
    if info.file_size <= limits.ratio_floor_bytes:
        return
    ratio = info.file_size / max(1, info.compress_size)
    if ratio > limits.max_ratio:
        raise _rejected(
            "ratio",
            f"{archive}: member {info.filename!r} expands {ratio:.0f}:1 "
            f"({info.compress_size} -> {info.file_size} bytes; limit {limits.max_ratio:.0f}:1), "
            "which looks like a ZIP bomb",
        )


def _size_message(name: str, total: int, limits: ArchiveLimits) -> str:
    return (
        f"{name}: uncompressed contents exceed {limits.max_total_bytes} bytes "
        f"(at least {total} bytes); split the archive"
    )


def _rejected(guard: str, message: str) -> ArchiveRejected:
    return ArchiveRejected(message, guard=guard)
