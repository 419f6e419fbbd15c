"""Raw uploaded bytes, content-addressed by sha256 (a local directory by default)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store the bytes under `key`, all or nothing: a failure (OSError) leaves
        neither the blob nor a partial file behind."""
        ...

    def get(self, key: str) -> bytes:
        """Raises FileNotFoundError when the blob is gone."""
        ...

    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def check_writable(self) -> None:
        """Write and remove a small file where blobs go; OSError when that fails."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write, flush to disk, then rename: neither a crash nor a full disk leaves a
        # half-written blob under its key, and a failed write removes its temp file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def check_writable(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".probe-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"ok")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.unlink(tmp)
