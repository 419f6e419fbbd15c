"""The own readers vs unstructured's partitioners, per format, on the bench corpus:
milliseconds per document (best of `--rounds`) and whether the text is the same
(whitespace-normalised). Both run in this process, one after the other.

    .venv/bin/python tests/bench/bench_parse.py [--docs 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.config import apply_offline_defaults  # noqa: E402

apply_offline_defaults()

from api.bench.corpus import make_documents  # noqa: E402
from core.types import Piece  # noqa: E402
from ingest import parse  # noqa: E402
from ingest.docxread import read_docx  # noqa: E402
from ingest.htmlread import read_html  # noqa: E402
from ingest.pdfread import read_pdf  # noqa: E402
from ingest.textread import read_markdown, read_plain_text  # noqa: E402
from tests.utils.pieces import normalised_text  # noqa: E402

Reader = Callable[[bytes], list[Piece]]


def _unstructured(fmt: str) -> Reader:
    """unstructured as the parse stage called it before the own readers."""
    parse._configure_unstructured()
    if fmt == "pdf":
        from unstructured.partition.pdf import partition_pdf

        return lambda data: parse._to_pieces(
            partition_pdf(file=io.BytesIO(data), strategy="fast", languages=["eng"])
        )
    if fmt == "docx":
        from unstructured.partition.docx import partition_docx

        return lambda data: parse._to_pieces(
            partition_docx(file=io.BytesIO(data), languages=["eng"])
        )
    if fmt == "html":
        from unstructured.partition.html import partition_html

        return lambda data: parse._to_pieces(partition_html(text=data.decode(), languages=["eng"]))
    if fmt == "md":
        from unstructured.partition.md import partition_md

        return lambda data: parse._to_pieces(partition_md(text=data.decode(), languages=["eng"]))
    from unstructured.partition.text import partition_text

    return lambda data: parse._to_pieces(partition_text(text=data.decode(), languages=["eng"]))


OURS: dict[str, Reader] = {
    "pdf": read_pdf,
    "docx": read_docx,
    "html": lambda data: read_html(data.decode()),
    "md": lambda data: read_markdown(data.decode()),
    "txt": lambda data: read_plain_text(data.decode()),
}


def _best_ms(reader: Reader, docs: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for data in docs:
            reader(data)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus = make_documents(args.docs, words=600)
    print("| format | documents | unstructured ms/doc | own reader ms/doc | × | same text |")
    print("|---|---|---|---|---|---|")
    for fmt, ours in OURS.items():
        docs = [d.data for d in corpus if d.filename.endswith("." + fmt)]
        theirs = _unstructured(fmt)
        theirs(docs[0])  # lazy imports and model loading out of the timing
        same = sum(normalised_text(ours(d)) == normalised_text(theirs(d)) for d in docs)
        slow, fast = _best_ms(theirs, docs, args.rounds), _best_ms(ours, docs, args.rounds)
        print(
            f"| {fmt} | {len(docs)} | {slow:.1f} | {fast:.2f} | {slow / fast:.0f} "
            f"| {same}/{len(docs)} |"
        )


if __name__ == "__main__":
    main()
