"""The malloc arena cap really bounds the arenas threads get (glibc only)."""

from __future__ import annotations

import ctypes.util
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.memory import limit_malloc_arenas

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc arenas are a glibc feature",
)

_SCRIPT = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys, threading
    sys.path.insert(0, {root!r})
    from core.memory import limit_malloc_arenas
    cap = int(sys.argv[1])
    if cap:
        assert limit_malloc_arenas(cap)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    kept = []
    # All alive at once: an exited thread's arena is handed to the next new thread.
    together = threading.Barrier(6)
    def work():
        kept.append(libc.malloc(4096))
        together.wait(timeout=30)
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc.malloc_stats()
    """
)


def _arenas(cap: int) -> int:
    script = _SCRIPT.format(root=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script, str(cap)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return len(re.findall(r"^Arena \d+:", done.stderr, flags=re.M))


def test_cap_bounds_the_arenas_of_new_threads() -> None:
    assert _arenas(0) > 2  # glibc's default: a new arena for each new thread
    assert _arenas(2) <= 2


def test_zero_or_negative_leaves_the_default() -> None:
    assert ctypes.util.find_library("c")
    assert limit_malloc_arenas(0) is False
    assert limit_malloc_arenas(-3) is False


def test_release_free_memory_gives_freed_heap_pages_back():
    # Heap blocks (under glibc's mmap threshold) each followed by a small survivor: freed,
    # they leave holes glibc keeps (nothing at the heap's top to trim) until trimmed.
    import gc

    from core.memory import release_free_memory

    release_free_memory()
    before = _rss_kb()
    blocks, survivors = [], []
    for _ in range(8000):  # ~500 MB
        blocks.append(bytearray(64 * 1024))
        survivors.append(bytearray(600))
    grown = _rss_kb()
    del blocks
    gc.collect()
    kept = _rss_kb()
    assert release_free_memory() is True
    after = _rss_kb()
    assert grown - before > 400_000
    assert kept - before > 400_000  # freed but still held: what the trim is for
    assert after - before < (grown - before) / 4, (before, grown, kept, after)
    assert len(survivors) == 8000


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
