"""Knowledge bases of N chunks for the /retrieve latency benchmark, built fast and cached.

The seed is real text: the passages of the multilingual QA set (`tests/bench/data/mlqa`,
3,150 passages in English, Spanish and Russian), embedded once by the real model
(`multilingual-e5-small` by default) and cached under `data/bench-retrieve-http/`. A KB of
N chunks holds the seed passages, then perturbed copies until it has N: copy c of a
passage has the passage's text plus a marker (" [c]") and the passage's vector plus a
small Gaussian perturbation (cosine ≈ 0.99 to the original), renormalised. Embedding
100k chunks with e5 on a 2-core CPU would take long; what the benchmark times is search
over N vectors and N BM25 documents, which this gives, while every query is real text
embedded by the real model at request time.

Rows are written the way ingestion writes them (one live version, documents with an
indexed current revision, chunk rows with the pipeline's config hash, index payloads
from `ingest.revisions.payloads_for`'s shape), so `ragops serve` on the data directory
answers as it would for an ingested KB.

    data_dir = build_kb(Path("data/bench-retrieve-http"), 10_000)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from api.runtime import Runtime
from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    RevisionStatus,
    VersionStatus,
    new_id,
    utcnow,
)
from core.config import Settings
from core.types import sha256_hex
from ingest.config import IngestionConfig
from ingest.knowledge_bases import create_kb
from ingest.revisions import pipeline_for
from tests.bench import mlqa

KB = "bench"
CHUNKS_PER_DOCUMENT = 10
NOISE = 0.1  # norm of the perturbation added to a copy's (unit) vector
SEED = 0


def bench_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_key": None,
        "workers": 0,
        "scheduler_embedded": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def seed_passages(n: int) -> list[mlqa.Passage]:
    """The seed of a KB of `n` chunks: every passage, or the first `n` of a smaller KB."""
    return mlqa.load_passages()[:n]


def seed_vectors(cache: Path, model: str, texts: list[str], rt: Runtime | None) -> np.ndarray:
    """The seed passages' vectors from the real model, computed once per model and text
    (`rt` embeds them when they are not cached yet)."""
    digest = sha256_hex(json.dumps([model, texts]))[:16]
    path = cache / f"seed-{digest}.npy"
    if path.exists():
        return np.load(path)
    if rt is None:
        raise FileNotFoundError(f"{path}: build the KB first (build_kb)")
    vectors = rt.embedder(model).encode(texts, kind="passage").astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def corpus(texts: list[str], vectors: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
    """N chunk texts and unit vectors: the seed, then perturbed copies (see the module doc)."""
    rng = np.random.default_rng(SEED)
    s = len(texts)
    out_texts = [texts[i % s] if i < s else f"{texts[i % s]} [{i // s}]" for i in range(n)]
    out = vectors[np.arange(n) % s].copy()
    if n > s:
        noise = rng.standard_normal((n - s, out.shape[1])).astype(np.float32)
        noise *= NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
        out[s:] += noise
        out[s:] /= np.linalg.norm(out[s:], axis=1, keepdims=True)
    return out_texts, out


def build_kb(cache: Path, n: int) -> Path:
    """A data directory whose KB `bench` holds `n` chunks (built once, then reused)."""
    passages = seed_passages(n)
    texts = [p.text for p in passages]
    data_dir = cache / f"kb-{n}-{sha256_hex(json.dumps(texts))[:12]}"
    if (data_dir / "built").exists():
        return data_dir
    if data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)
    rt = Runtime(bench_settings(data_dir, redaction_enabled=False))
    rt.start(workers=False, warm_ingest=True)
    try:
        vectors = seed_vectors(cache, rt.settings.embedding_model, texts, rt)
        chunk_texts, chunk_vectors = corpus(texts, vectors, n)
        languages = [passages[i % len(passages)].language for i in range(n)]
        _write(rt, chunk_texts, chunk_vectors, languages)
    finally:
        rt.close()
    (data_dir / "built").write_text(str(n))
    return data_dir


def _write(rt: Runtime, texts: list[str], vectors: np.ndarray, languages: list[str]) -> None:
    kb = create_kb(rt, name=KB, changes={"redaction": {"enabled": False}})
    config = IngestionConfig.model_validate(kb.config)
    pipeline = pipeline_for(rt, config)
    embedder = rt.embedder(config.embedding_model)
    version = IndexVersion(
        kb_id=kb.id,
        number=1,
        status=VersionStatus.LIVE,
        backend="faiss",
        embedding_model=config.embedding_model,
        dimension=embedder.dimension,
        config=config.model_dump(),
        config_hash=pipeline.config_hash,
        index_params={"index_type": rt.settings.faiss_index_type},
        progress=1.0,
        ready_at=utcnow(),
        promoted_at=utcnow(),
    )
    with rt.db.session() as s:
        s.add(version)
    docs, revisions, chunks = [], [], []
    ids: list[str] = []
    payloads: list[dict[str, object]] = []
    for start in range(0, len(texts), CHUNKS_PER_DOCUMENT):
        doc_id, rev_id = new_id(), new_id()
        filename = f"doc-{start // CHUNKS_PER_DOCUMENT:06d}.txt"
        body = "\n\n".join(texts[start : start + CHUNKS_PER_DOCUMENT])
        docs.append(
            {"id": doc_id, "kb_id": kb.id, "filename": filename, "current_revision_id": rev_id}
        )
        revisions.append(
            {
                "id": rev_id,
                "document_id": doc_id,
                "number": 1,
                "content_sha256": sha256_hex(body),
                "size_bytes": len(body.encode()),
                "media_type": "text/plain",
                "status": RevisionStatus.INDEXED,
                "chunk_count": min(CHUNKS_PER_DOCUMENT, len(texts) - start),
                "indexed_at": utcnow(),
            }
        )
        for position, i in enumerate(range(start, min(len(texts), start + CHUNKS_PER_DOCUMENT))):
            chunk_id = sha256_hex(f"{doc_id}:{i}")[:32]
            meta = {"position": position, "language": languages[i]}
            chunks.append(
                {
                    "id": chunk_id,
                    "kb_id": kb.id,
                    "document_id": doc_id,
                    "revision_id": rev_id,
                    "position": position,
                    "text": texts[i],
                    "text_hash": sha256_hex(texts[i]),
                    "token_count": len(texts[i].split()),
                    "metadata_": meta,
                    "config_hash": pipeline.config_hash,
                }
            )
            ids.append(chunk_id)
            payloads.append(
                {
                    "document_id": doc_id,
                    "filename": filename,
                    "revision_id": rev_id,
                    "page_number": None,
                    "section": None,
                    "language": languages[i],
                }
            )
    with rt.db.session() as s:
        s.execute(insert(Document), docs)
        s.execute(insert(DocumentRevision), revisions)
        for lo in range(0, len(chunks), 5000):
            s.execute(insert(Chunk), chunks[lo : lo + 5000])
    with rt.indexes.writer(version) as index:
        for lo in range(0, len(ids), 5000):
            index.upsert(ids[lo : lo + 5000], vectors[lo : lo + 5000], payloads[lo : lo + 5000])
    rt.indexes.wait_for_compaction()
