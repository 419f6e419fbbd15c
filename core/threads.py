"""Process-wide thread-pool settings for the native libraries loaded by the models."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int) -> int:
    """Cap the BLAS libraries loaded so far (numpy's OpenBLAS, and any other) at
    `threads` threads each; returns how many libraries were capped. 0 leaves them as is.

    Why: OpenBLAS starts a thread per core and its idle threads spin. The redaction
    stage (natasha's Russian NER multiplies small numpy matrices) then kept both cores
    of a 2-core machine busy for one core's work, and ingest threads running next to
    the OpenVINO embedder slowed it by half. Measured with one redaction thread beside
    one embedding thread (60 generated en/es/ru documents): 12.4 s at OpenBLAS's
    default, 10.0 s with one BLAS thread, which is the two stages' CPU time packed onto
    two cores. Call it after the models are loaded: a library loaded later is not capped.
    """
    if threads <= 0:
        return 0
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    if not blas:
        return 0
    threadpool_limits(limits=threads, user_api="blas")
    log.debug("BLAS capped at %d thread(s) in %d libraries", threads, len(blas))
    return len(blas)
