"""Ingestion throughput: our pipeline vs llama-index's IngestionPipeline on one corpus.

Both sides get the same Markdown documents and the same packaged all-MiniLM-L6-v2. The
baseline is what a hand-rolled LlamaIndex pipeline does: SentenceSplitter (tiktoken
tokens) → HuggingFaceEmbedding (arrival-order batches). Ours parses with unstructured,
cleans, optionally redacts with Presidio, chunks in the model's own tokens, dedupes and
embeds length-sorted with bf16 autocast where the CPU supports it. We report both with
redaction on (our default: more work) and off (like for like), and a re-ingest that the
embedding cache serves.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from api.runtime import Runtime
from core.config import Settings
from ingest.config import IngestionConfig
from ingest.embed import resolve_model_path
from ingest.pipeline import build_pipeline

_TOPICS = {
    "volcano": "magma chamber eruption lava basalt crater ash plume caldera tephra vent",
    "bees": "hive forager nectar pollen queen drone waggle comb royal jelly swarm",
    "press": "movable type ink press guild printer paper typeface Gutenberg book page",
    "bread": "sourdough starter flour hydration crumb crust oven proof yeast gluten",
    "light": "lighthouse lens keeper beam coast harbour fog signal lantern tower",
    "chess": "opening gambit pawn knight bishop castle endgame tempo rook defence",
}


def make_corpus(n_docs: int, words_per_doc: int, seed: int = 0) -> list[tuple[str, str]]:
    """(filename, markdown) pairs of distinct text, with a little personal data."""
    rng = random.Random(seed)
    filler = (
        "the of a and in to is was for on with as by at from that this which when "
        "where during after before because while"
    ).split()
    docs = []
    for i in range(n_docs):
        topic = rng.choice(list(_TOPICS))
        vocab = _TOPICS[topic].split()
        paragraphs = [f"# {topic.title()} notes {i}"]
        words = 0
        while words < words_per_doc:
            sentence = " ".join(
                rng.choice(vocab if rng.random() < 0.5 else filler)
                for _ in range(rng.randint(8, 18))
            )
            paragraphs.append(sentence.capitalize() + ".")
            words += len(sentence.split())
        paragraphs.append(f"Contact Maria Lopez at maria{i}@example.org for details.")
        docs.append((f"doc-{i:04d}.md", "\n\n".join(paragraphs)))
    return docs


def _run_ours(rt: Any, docs: list[tuple[str, str]], *, redact: bool, cache: bool) -> dict[str, Any]:

    config = IngestionConfig.defaults(rt.settings).merged({"redaction": {"enabled": redact}})
    pipeline = build_pipeline(
        config,
        embedder=rt.embedder(config.embedding_model),
        cache=rt.embedding_cache if cache else None,
        redactor_factory=rt.redactor,
        parser=rt.parser(),
    )
    seconds: dict[str, float] = {}
    chunks = 0
    t0 = time.perf_counter()
    for name, text in docs:
        result = pipeline.run(text.encode(), media_type="text/markdown", filename=name)
        chunks += len(result.chunks)
        for stage, secs in result.report.seconds.items():
            seconds[stage] = seconds.get(stage, 0.0) + secs
    return {
        "seconds": time.perf_counter() - t0,
        "chunks": chunks,
        "stages": {k: round(v, 3) for k, v in seconds.items()},
    }


def _run_llama_index(
    model_path: str, docs: list[tuple[str, str]], *, chunk_size: int, chunk_overlap: int
) -> dict[str, Any]:
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    embed = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    pipeline = IngestionPipeline(
        transformations=[
            SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap),
            embed,
        ]
    )
    documents = [Document(text=text, metadata={"filename": name}) for name, text in docs]
    t0 = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    return {"seconds": time.perf_counter() - t0, "chunks": len(nodes)}


def run(n_docs: int = 40, words_per_doc: int = 600) -> dict[str, Any]:

    docs = make_corpus(n_docs, words_per_doc)
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(Settings(_env_file=None, data_dir=Path(tmp), workers=0, environment="test"))
        rt.start(workers=False)
        try:
            s = rt.settings
            # Warm both paths once so neither side pays model loading in its timing.
            _run_ours(rt, docs[:1], redact=True, cache=False)
            _run_llama_index(
                str(resolve_model_path(s.embedding_model)),
                docs[:1],
                chunk_size=s.chunk_size,
                chunk_overlap=s.chunk_overlap,
            )
            baseline = _run_llama_index(
                str(resolve_model_path(s.embedding_model)),
                docs,
                chunk_size=s.chunk_size,
                chunk_overlap=s.chunk_overlap,
            )
            plain = _run_ours(rt, docs, redact=False, cache=False)
            redacted = _run_ours(rt, docs, redact=True, cache=True)
            cached = _run_ours(rt, docs, redact=True, cache=True)
        finally:
            rt.close()
    words = n_docs * words_per_doc
    rows = {
        "llama-index IngestionPipeline": baseline,
        "ragops, redaction off": plain,
        "ragops, redaction on": redacted,
        "ragops, re-ingest (embedding cache)": cached,
    }
    return {
        "documents": n_docs,
        "words": words,
        "rows": {
            name: {
                **row,
                "docs_per_s": round(n_docs / row["seconds"], 2),
                "speed_vs_baseline": round(baseline["seconds"] / row["seconds"], 2),
            }
            for name, row in rows.items()
        },
    }
