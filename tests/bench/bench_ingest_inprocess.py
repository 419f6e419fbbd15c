"""Ingest N generated documents through an in-process runtime (the job path without
HTTP) and print the wall time; settings come from the environment, so knobs can be
compared quickly, e.g.:

    RAGOPS_PARSE_PROCESSES=2 .venv/bin/python tests/bench/bench_ingest_inprocess.py 150 off
    RAGOPS_WORKERS=1 .venv/bin/python tests/bench/bench_ingest_inprocess.py 150 off

With `--flushes`, each embedding flush is logged (documents, chunks, and seconds spent
embedding, saving rows, writing the index and finishing).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psutil  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from api.bench.corpus import make_documents  # noqa: E402
from api.runtime import Runtime  # noqa: E402
from core.catalog.models import DocumentRevision  # noqa: E402
from core.config import Settings, apply_offline_defaults  # noqa: E402
from ingest.documents import submit_uploads  # noqa: E402
from ingest.knowledge_bases import create_kb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", type=int)
    parser.add_argument("redaction", choices=["off", "on"])
    parser.add_argument("--flushes", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)7.0f %(message)s")
    if args.flushes:
        logging.getLogger("ingest.stream").setLevel(logging.DEBUG)
    redact = args.redaction == "on"
    docs = make_documents(args.documents, words=600)
    with tempfile.TemporaryDirectory(prefix="ragops-inproc-") as tmp:
        settings = Settings(data_dir=Path(tmp), redaction_enabled=redact, scheduler_embedded=False)
        rt = Runtime(settings)
        rt.start(workers=True)
        try:
            kb = create_kb(rt, name="bench", changes={"redaction": {"enabled": redact}})
            t0 = time.perf_counter()
            cpu0 = _tree_cpu_seconds()
            for i in range(0, len(docs), 50):
                files = [(d.filename, d.data, d.media_type) for d in docs[i : i + 50]]
                submit_uploads(rt, kb=kb, files=files)
            while True:
                with rt.db.session() as s:
                    done = s.execute(
                        select(func.count())
                        .select_from(DocumentRevision)
                        .where(DocumentRevision.status.in_(["indexed", "failed"]))
                    ).scalar_one()
                if done >= len(docs):
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            cpu = _tree_cpu_seconds() - cpu0
            print(
                f"{len(docs)} documents in {wall:.1f} s, {cpu:.1f} CPU s "
                f"({cpu / wall:.2f} cores busy on average)"
            )
        finally:
            rt.close()


def _tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (the parsers)."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


if __name__ == "__main__":
    apply_offline_defaults()
    main()
