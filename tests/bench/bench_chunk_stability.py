"""Chunk fill vs edit stability of the content-anchored chunker (ingest/chunk.py), for a
few anchor settings: average tokens per chunk on the bench corpus, and how many chunks
change when one paragraph of a long document is replaced, grown or inserted.

    .venv/bin/python tests/bench/bench_chunk_stability.py 2:0.25 2:0.5 4:0.5

Each argument is ANCHOR_MODULUS:ANCHOR_MIN_SPAN. Prints, per setting, the corpus's chunk
count and fill, then per language and edit kind the mean and max chunks changed and the
share of edits that changed at most 3.
"""

from __future__ import annotations

import collections
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.corpus import make_documents  # noqa: E402
from core.types import Piece, StageReport  # noqa: E402
from ingest.chunk import SentenceChunker  # noqa: E402
from ingest.embed import Embedder  # noqa: E402


def pieces(paragraphs: list[str], language: str) -> list[Piece]:
    meta = {"page_number": 1, "section": "S", "language": language}
    return [Piece(p, dict(meta)) for p in paragraphs]


def changed(before: list[Piece], after: list[Piece]) -> int:
    a = collections.Counter(p.text for p in before)
    b = collections.Counter(p.text for p in after)
    return max(sum((b - a).values()), sum((a - b).values()))


def main() -> None:
    settings = [tuple(arg.split(":")) for arg in sys.argv[1:]] or [("2", "0.25")]
    embedder = Embedder("all-MiniLM-L6-v2", device="cpu")
    corpus = make_documents(60, words=600)
    long_docs = make_documents(6, words=3000, seed=7)
    donors: dict[str, list[str]] = collections.defaultdict(list)
    for d in make_documents(30, words=600, seed=99):
        donors[d.language].extend(d.paragraphs[:-1])
    for modulus, span in settings:
        SentenceChunker.ANCHOR_MODULUS = int(modulus)
        SentenceChunker.ANCHOR_MIN_SPAN = float(span)
        chunker = SentenceChunker(
            embedder.tokenize, chunk_size=200, chunk_overlap=32, max_tokens=embedder.max_tokens
        )
        chunks = [
            c
            for d in corpus
            for c in chunker(pieces(list(d.paragraphs), d.language), StageReport())
        ]
        fill = statistics.mean(c.token_count or 0 for c in chunks)
        stats: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
        for d in long_docs:
            paragraphs = list(d.paragraphs)
            base = chunker(pieces(paragraphs, d.language), StageReport())
            pool = donors[d.language]
            for i in range(len(paragraphs) // 4, 3 * len(paragraphs) // 4):
                for kind in ("replace", "grow", "insert"):
                    edited = list(paragraphs)
                    if kind == "replace":
                        edited[i] = pool[i % len(pool)]
                    elif kind == "grow":
                        edited[i] += " " + pool[i % len(pool)] + " " + pool[(i + 1) % len(pool)]
                    else:
                        edited.insert(i, pool[i % len(pool)])
                    out = chunker(pieces(edited, d.language), StageReport())
                    stats[(d.language, kind)].append(changed(base, out))
        print(f"modulus {modulus}, min span {span}: {len(chunks)} chunks, fill {fill:.1f} tokens")
        for (language, kind), values in sorted(stats.items()):
            within = sum(v <= 3 for v in values) / len(values)
            print(
                f"  {language} {kind:7s} mean {statistics.mean(values):.2f} max {max(values)} "
                f"<=3: {within:.0%} (n={len(values)})"
            )


if __name__ == "__main__":
    main()
