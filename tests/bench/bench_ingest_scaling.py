"""The time to ingest one more document into knowledge bases of 1k, 10k and 100k chunks,
through the service's own job path (upload → worker batch → parse, clean, chunk, embed
→ catalog rows → one FAISS segment publish → indexed).

Each size: a fresh runtime on the embedded default (SQLite catalog, local blobs, FAISS,
in-process workers) and one KB, seeded with N chunks (documents of 20 chunks: catalog
rows and random unit vectors in one bulk write, which is not what is measured); then
`--trials` uploads of one new ~600-word Markdown document, each timed from the upload
call until its revision is indexed. Redaction is off (the cost that could grow with the
KB is the catalog and the index, not the document's own stages).

    .venv/bin/python tests/bench/bench_ingest_scaling.py [--sizes 1000 10000 100000]

Prints one JSON object; `ratio` is the largest size's median over the smallest's
(target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import insert, select  # noqa: E402

from api.bench.corpus import make_documents  # noqa: E402
from api.runtime import Runtime  # noqa: E402
from core.catalog.models import (  # noqa: E402
    Chunk,
    Document,
    DocumentRevision,
    RevisionStatus,
    new_id,
)
from core.config import Settings, apply_offline_defaults  # noqa: E402
from core.kbs import live_version  # noqa: E402
from ingest.documents import submit_upload  # noqa: E402
from ingest.knowledge_bases import create_kb  # noqa: E402

CHUNKS_PER_DOC = 20


def seed(rt: Runtime, kb_id: str, n_chunks: int, config_hash: str) -> None:
    """N chunks in the catalog and the live version, in bulk."""
    rng = np.random.default_rng(0)
    with rt.db.session() as s:
        version = live_version(session=s, kb_id=kb_id)
    for start in range(0, n_chunks, 20_000):
        count = min(20_000, n_chunks - start)
        docs, revs, chunks = [], [], []
        for d in range(count // CHUNKS_PER_DOC):
            doc_id, rev_id = new_id(), new_id()
            docs.append(
                {
                    "id": doc_id,
                    "kb_id": kb_id,
                    "filename": f"seed-{start + d}.md",
                    "metadata_": {},
                    "current_revision_id": rev_id,
                }
            )
            revs.append(
                {
                    "id": rev_id,
                    "document_id": doc_id,
                    "number": 1,
                    "content_sha256": rev_id * 2,
                    "size_bytes": 1,
                    "media_type": "text/markdown",
                    "status": RevisionStatus.INDEXED,
                    "report": {},
                    "chunk_count": CHUNKS_PER_DOC,
                }
            )
            for p in range(CHUNKS_PER_DOC):
                chunks.append(
                    {
                        "id": new_id(),
                        "kb_id": kb_id,
                        "document_id": doc_id,
                        "revision_id": rev_id,
                        "position": p,
                        "text": f"seed text {start + d} {p}",
                        "text_hash": "0" * 64,
                        "token_count": 5,
                        "metadata_": {"position": p},
                        "config_hash": config_hash,
                    }
                )
        with rt.db.session() as s:
            s.execute(insert(Document), docs)
            s.execute(insert(DocumentRevision), revs)
            s.execute(insert(Chunk), chunks)
        vectors = rng.standard_normal((len(chunks), version.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with rt.indexes.writer(version) as index:
            index.upsert(
                [c["id"] for c in chunks],
                vectors,
                [{"document_id": c["document_id"]} for c in chunks],
            )


def wait_indexed(rt: Runtime, revision_id: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            status = s.execute(
                select(DocumentRevision.status).where(DocumentRevision.id == revision_id)
            ).scalar_one()
        if status == RevisionStatus.INDEXED:
            return
        if status == RevisionStatus.FAILED:
            raise RuntimeError(f"revision {revision_id} failed")
        time.sleep(0.01)
    raise TimeoutError(f"revision {revision_id} not indexed in {timeout}s")


def run_size(n_chunks: int, trials: int) -> dict[str, Any]:
    docs = [d for d in make_documents(4 * trials + 4, words=600) if d.filename.endswith(".md")]
    with tempfile.TemporaryDirectory(prefix="ragops-scale-") as tmp:
        settings = Settings(
            _env_file=None, data_dir=Path(tmp), redaction_enabled=False, scheduler_embedded=False
        )
        rt = Runtime(settings)
        rt.start(workers=True)
        try:
            kb = create_kb(rt, name="scale", changes={"redaction": {"enabled": False}})
            warm = docs[0]
            out = submit_upload(
                rt, kb=kb, filename=warm.filename, data=warm.data, media_type=warm.media_type
            )
            wait_indexed(rt, out.revision_id)  # creates version 1, warms every stage
            with rt.db.session() as s:
                config_hash = live_version(session=s, kb_id=kb.id).config_hash
            t0 = time.perf_counter()
            seed(rt, kb.id, n_chunks, config_hash)
            seed_s = time.perf_counter() - t0
            times = []
            for doc in docs[1 : trials + 1]:
                t0 = time.perf_counter()
                out = submit_upload(
                    rt, kb=kb, filename=doc.filename, data=doc.data, media_type=doc.media_type
                )
                wait_indexed(rt, out.revision_id)
                times.append(time.perf_counter() - t0)
            with rt.db.session() as s:
                vectors = rt.indexes.reader(live_version(session=s, kb_id=kb.id)).count()
        finally:
            rt.close()
    return {
        "chunks": n_chunks,
        "vectors_after": vectors,
        "seed_s": round(seed_s, 1),
        "p50_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "trials": [round(t, 3) for t in times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    apply_offline_defaults()
    rows = [run_size(n, args.trials) for n in args.sizes]
    print(
        json.dumps(
            {"rows": rows, "ratio": round(rows[-1]["p50_s"] / rows[0]["p50_s"], 2)}, indent=2
        )
    )


if __name__ == "__main__":
    main()
