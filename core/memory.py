"""Process-wide memory settings that must be made before threads start allocating."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)

# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for threads created from now on; True when applied.

    Why: glibc gives each new thread that meets lock contention an arena of its own, up
    to 8 per core, and freed memory stays in the arena it came from. A service whose
    ingest batches run on fresh prepare threads, next to tokenizers, spaCy and OpenVINO
    threads, grew by hundreds of MB of such arenas. Two arenas cost no measurable
    throughput here. 0 leaves glibc's default; other C libraries ignore it (False).
    """
    if arenas <= 0:
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_ARENA_MAX, arenas))
    if applied:
        log.debug("malloc arenas capped at %d", arenas)
    return applied


def release_free_memory() -> bool:
    """Collect garbage, then hand glibc's free heap pages back to the system; True when
    trimmed.

    Why: after a large, short-lived job (training a model, a benchmark) Python frees its
    objects but glibc keeps the pages in its arenas, so the process stays gigabytes
    larger than what it holds. A worker that trains now and then should not keep the
    peak of every run. Other C libraries have no malloc_trim (False).
    """
    import gc

    gc.collect()
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)  # returns whether pages were released; either way the heap is trimmed
    return True


def _glibc_function(name: str) -> Any:
    """The C library's function `name`, or None where it has none (musl, macOS)."""
    path = ctypes.util.find_library("c")
    if not path:
        return None
    try:
        return getattr(ctypes.CDLL(path), name)
    except (OSError, AttributeError):
        return None
