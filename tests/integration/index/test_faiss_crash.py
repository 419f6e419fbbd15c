"""kill -9 a FAISS writer at any point: the version opens and holds exactly the committed
writes (index/segments.py, "Crash safety" in index/faiss_index.py).

The writer is this file run as a script (`python test_faiss_crash.py PATH ...`): it
continues a deterministic sequence of writes (each adds a document, updates one chunk of
an older one, deletes two chunks of another; see `model`) from wherever the directory
is, saves each (merging inline, with a merge factor of 2 so merges run all the time) and
prints its number once `save()` returned. The test kills it and checks that the
directory holds the state after every printed write, plus at most the one in flight.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import segments
from index.faiss_index import FaissIndex

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
DIM = 8
CHUNKS = 5


def vector(chunk_id: str, rev: int) -> np.ndarray:
    seed = sum(ord(c) * 31**i for i, c in enumerate(chunk_id)) % 2**32 + 7919 * rev
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def apply_write(ix: FaissIndex, n: int) -> None:
    ids = [f"d{n}-c{j}" for j in range(CHUNKS)]
    payloads = [{"n": n, "j": j} for j in range(CHUNKS)]
    ix.upsert(ids, np.vstack([vector(i, 0) for i in ids]), payloads)
    if n >= 2:
        chunk = f"d{n - 2}-c4"
        ix.upsert([chunk], vector(chunk, n).reshape(1, -1), [{"n": n - 2, "j": 4, "rev": n}])
    if n >= 3:
        ix.delete([f"d{n - 3}-c0", f"d{n - 3}-c1"])


def model(writes: int) -> dict[str, dict[str, Any]]:
    """chunk id → payload after writes 0..writes-1."""
    state: dict[str, dict[str, Any]] = {}
    for n in range(writes):
        for j in range(CHUNKS):
            state[f"d{n}-c{j}"] = {"n": n, "j": j, "chunk_id": f"d{n}-c{j}"}
        if n >= 2:
            chunk = f"d{n - 2}-c4"
            state[chunk] = {"n": n - 2, "j": 4, "rev": n, "chunk_id": chunk}
        if n >= 3:
            state.pop(f"d{n - 3}-c0", None)
            state.pop(f"d{n - 3}-c1", None)
    return state


def stored(ix: FaissIndex) -> dict[str, dict[str, Any]]:
    if ix.count() == 0:
        return {}
    hits = ix.search(vector("probe", 0), ix.count())
    return {h.chunk_id: h.payload for h in hits}


def committed_writes(path: Path) -> int:
    """Open the directory as a reader would and check it holds exactly the first k
    writes for some k (returned): same chunks, payloads and vectors."""
    ix = FaissIndex.open(path, DIM)
    found = stored(ix)
    writes = 1 + max((p["n"] for p in found.values()), default=-1)
    assert found == model(writes)
    for chunk_id, payload in list(found.items())[:: max(1, len(found) // 40)]:
        top = ix.search(vector(chunk_id, payload.get("rev", 0)), 1)[0]
        assert top.chunk_id == chunk_id and top.score > 0.999
    return writes


def run_writer(path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def listed(path: Path) -> set[str]:
    return {s["file"] for s in FaissIndex.open(path, DIM).layout()["segments"]}


def test_sigkill_at_random_points_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "v"
    rng = random.Random(1234)
    for _ in range(8):
        proc = run_writer(path, "loop")
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # imports done, directory opened
        assert ready.startswith("ready"), proc.stderr.read() if proc.stderr else ""
        printed = [int(proc.stdout.readline()) for _ in range(rng.randint(0, 40))]
        time.sleep(rng.uniform(0, 0.03))  # somewhere inside the next write or merge
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        printed += [int(line) for line in out.split()]
        writes = committed_writes(path)
        if printed:
            # every printed write is there; the one in flight may be too
            assert printed[-1] + 1 <= writes <= printed[-1] + 2, (printed[-1], writes)
    assert committed_writes(path) >= 40
    # the next clean write deletes what the killed ones left behind: every file left is
    # named by the manifest or by the one before it
    before = listed(path)
    ix = FaissIndex.open(path, DIM)
    apply_write(ix, committed_writes(path))
    ix.save(compact=False)  # one switch
    names = set(os.listdir(path))
    assert {n for n in names if n.startswith("seg-")} <= before | listed(path)
    assert not [n for n in names if n.startswith(".meta-")]


def _ops(path: Path, *args: str) -> tuple[int, list[int], str]:
    proc = run_writer(path, *args)
    out, err = proc.communicate(timeout=120)
    printed = [int(line) for line in out.split() if line.isdigit()]
    return proc.returncode, printed, err


def test_a_kill_before_any_file_operation_loses_nothing_committed(tmp_path: Path) -> None:
    """Deterministic crash points: the writer kills itself right before its k-th fsync,
    rename, replace or unlink, for k spread over four writes and their merges."""
    path = tmp_path / "v"
    code, printed, err = _ops(path, "count", "4")
    assert code == 0, err
    total = int(err.strip().splitlines()[-1].split()[-1])  # "file operations: N"
    assert total >= 20 and printed == [0, 1, 2, 3]
    assert committed_writes(path) == 4
    for k in sorted({*range(1, total + 1, max(1, total // 14)), total}):
        before = committed_writes(path)
        code, printed, err = _ops(path, "crash", "4", str(k))
        assert code == -signal.SIGKILL, err
        writes = committed_writes(path)
        assert writes == before + len(printed) or writes == before + len(printed) + 1
    # and a clean run afterwards picks up from there
    before = committed_writes(path)
    code, printed, err = _ops(path, "count", "3")
    assert code == 0, err
    assert committed_writes(path) == before + 3


# -- the writer (run as a script) -------------------------------------------------------


def _hook_file_operations(crash_at: int | None) -> list[int]:
    calls = [0]

    def wrap(fn: Any) -> Any:
        def hooked(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if crash_at is not None and calls[0] == crash_at:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return hooked

    for name in ("fsync", "replace", "rename", "unlink"):
        setattr(os, name, wrap(getattr(os, name)))
    return calls


def main(argv: list[str]) -> None:
    path, mode = Path(argv[0]), argv[1]
    segments.MERGE_FACTOR = 2  # merge after most writes, so kills land inside merges too
    ix = FaissIndex.open(path, DIM)
    start = 1 + max((p["n"] for p in stored(ix).values()), default=-1)
    if mode == "loop":
        print("ready", flush=True)
        for n in range(start, 10**9):
            apply_write(ix, n)
            ix.save()
            print(n, flush=True)
    writes = int(argv[2])
    calls = _hook_file_operations(int(argv[3]) if mode == "crash" else None)
    for n in range(start, start + writes):
        apply_write(ix, n)
        ix.save()
        print(n - start, flush=True)
    print(f"file operations: {calls[0]}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
