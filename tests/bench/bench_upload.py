"""Upload latency while ingestion runs: queue a few hundred small documents, wait until
the workers are writing results, then time upload requests of 50 new small files each.

    python tests/bench/bench_upload.py [--queued 200] [--files 50] [--rounds 5]
        [--workers 2] [--contention 0] [--hold-ms 20] [--database-url URL]

The app runs in-process (TestClient) with the real components and its in-process worker
threads on the embedded default (SQLite catalog under a temp data dir, FAISS); pass
`--database-url postgresql+psycopg://...` (an empty schema) to measure PostgreSQL.

`--contention N` adds N threads that each take the catalog's write lock for `--hold-ms`,
again and again: a stand-in for a busier deployment (more workers, a slower disk), where
the lock is rarely free. SQLite has one writer at a time and its busy handler polls with
growing sleeps instead of queueing, so a request that needs the lock once per file can
wait many times over what a request that needs it once waits.

Prints, per round: the latency, how many committed transactions wrote revision rows
(the upload's own transactions: workers never insert revisions) and the queue before;
then the median and the max, and the KB's ingestion queue at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from core.config import Settings, apply_offline_defaults  # noqa: E402
from tests.utils.components import SHARED_COMPONENTS  # noqa: E402

TOPICS = ["harbour", "orchard", "library", "glacier", "bakery", "observatory", "vineyard"]


def small_doc(prefix: str, i: int) -> bytes:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"Note {prefix}-{i} about the {topic}. The {topic} opens at {7 + i % 5} in the morning "
        f"and closes at {17 + i % 4}. Visitors should bring item number {i * 7919 % 10007}."
    ).encode()


def files(prefix: str, start: int, count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", (f"{prefix}-{i:05d}.txt", small_doc(prefix, i), "text/plain"))
        for i in range(start, start + count)
    ]


class RevisionCommits:
    """Counts committed transactions that inserted document revisions."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", lambda conn: conn.info.pop("wrote_revisions", None))

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DOCUMENT_REVISIONS"):
            conn.info["wrote_revisions"] = True

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("wrote_revisions", False):
            with self._lock:
                self.count += 1


def hold_write_lock(engine: Engine, stop: threading.Event, hold: float) -> None:
    """Take the catalog's write lock for `hold` seconds, again and again, until `stop`."""
    while not stop.is_set():
        with engine.begin() as conn:
            # Matches no row, but still makes this transaction the writer.
            conn.exec_driver_sql("UPDATE jobs SET message = message WHERE id = 'bench-none'")
            time.sleep(hold)
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queued", type=int, default=200, help="documents queued first")
    parser.add_argument("--files", type=int, default=50, help="files per timed upload")
    parser.add_argument("--rounds", type=int, default=5, help="timed uploads")
    parser.add_argument("--workers", type=int, default=2, help="ingestion worker threads")
    parser.add_argument("--contention", type=int, default=0, help="extra lock-taking writers")
    parser.add_argument("--hold-ms", type=float, default=20.0, help="how long each holds it")
    parser.add_argument("--database-url", default="", help="catalog URL (default: SQLite)")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    apply_offline_defaults()
    with tempfile.TemporaryDirectory(prefix="ragops-bench-upload-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp) / "data",
            environment="test",
            admin_key=None,
            database_url=args.database_url,
            workers=args.workers,
            scheduler_embedded=False,
            max_request_files=max(100, args.files),
        )
        with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
            rt = client.app.state.runtime
            commits = RevisionCommits(rt.db.engine)
            assert client.post("/v1/kbs", json={"name": "bench"}).status_code == 201
            started = time.perf_counter()
            for start in range(0, args.queued, 100):
                count = min(100, args.queued - start)
                r = client.post("/v1/kbs/bench/documents", files=files("queued", start, count))
                assert r.status_code == 202, r.text
            print(f"queued {args.queued} documents in {time.perf_counter() - started:.2f}s")
            deadline = time.monotonic() + 180
            # Time uploads only once the workers are writing results (models warm).
            while client.get("/v1/kbs/bench/ingestion").json()["jobs"]["succeeded"] < 3:
                assert time.monotonic() < deadline, "ingestion never got going"
                time.sleep(0.1)
            stop = threading.Event()
            hold = args.hold_ms / 1000
            holders = [
                threading.Thread(target=hold_write_lock, args=(rt.db.engine, stop, hold))
                for _ in range(args.contention)
            ]
            for t in holders:
                t.start()
            latencies = []
            try:
                for n in range(args.rounds):
                    jobs = client.get("/v1/kbs/bench/ingestion").json()["jobs"]
                    before = commits.count
                    t0 = time.perf_counter()
                    r = client.post(
                        "/v1/kbs/bench/documents", files=files(f"round{n}", 0, args.files)
                    )
                    elapsed = time.perf_counter() - t0
                    assert r.status_code == 202, r.text
                    assert len(r.json()["documents"]) == args.files
                    latencies.append(elapsed)
                    print(
                        f"round {n + 1}: {args.files} files in {elapsed:.3f}s, "
                        f"{commits.count - before} transaction(s) wrote revisions; queue "
                        f"before: {jobs['queued']} queued, {jobs['running']} running"
                    )
                    time.sleep(0.5)
            finally:
                stop.set()
                for t in holders:
                    t.join()
            print(
                f"{args.files}-file upload while ingesting (contention {args.contention}): "
                f"median {statistics.median(latencies):.3f}s, max {max(latencies):.3f}s "
                f"over {len(latencies)} rounds"
            )
            status = client.get("/v1/kbs/bench/ingestion").json()
            print("ingestion queue:", status.get("queue"), "jobs:", status["jobs"])


if __name__ == "__main__":
    main()
