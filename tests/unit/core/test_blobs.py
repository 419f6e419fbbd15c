"""The local blob store writes a blob whole or not at all: a write the OS refuses
half-way leaves neither the blob nor its temp file. The refusal is real: a child process
whose file-size limit (RLIMIT_FSIZE, which binds root too) is below the blob's size."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.blobs import LocalBlobStore

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def _limit_file_size() -> None:
    # Over the limit a write fails with EFBIG instead of the process being killed.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_write_refused_half_way_leaves_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from core.blobs import LocalBlobStore
        try:
            LocalBlobStore(Path({str(tmp_path)!r})).put("ab" + "0" * 62, b"x" * 65536)
        except OSError as exc:
            print("refused", exc.errno)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=60,
    )
    assert done.stdout.strip() == "refused 27", done.stdout + done.stderr  # EFBIG
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []

    store = LocalBlobStore(tmp_path)  # no limit here: the same write succeeds
    store.put("ab" + "0" * 62, b"x" * 65536)
    assert store.get("ab" + "0" * 62) == b"x" * 65536
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["ab" + "0" * 62]


def test_check_writable_leaves_nothing_and_fails_where_nothing_can_be_written(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    store.check_writable()
    assert list((tmp_path / "blobs").iterdir()) == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        LocalBlobStore(tmp_path / "file").check_writable()
