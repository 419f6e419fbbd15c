"""The real corpus of `ragops bench index --scale`: chunks of real text, their
all-MiniLM-L6-v2 vectors, and real questions with their query vectors.

Sources, in this order, until the asked number of chunks is reached:
1. the multilingual QA set's passages (`tests/bench/data/mlqa/passages.jsonl`: GNOME Help,
   the Debian FAQ, BoolQ's Wikipedia passages and Wikipedia/handbook distractors, in
   English, Spanish and Russian), split into chunks;
2. the manual pages installed on this machine (`/usr/share/man`: the English sections 1-8,
   then the Spanish and Russian ones), troff markup stripped, split into chunks.

A chunk is at most CHUNK_CHARS characters cut at line and sentence ends; its document is
the passage's source document (the id before `#`) or the manual page's file. Queries are
the QA set's questions (real text for the BM25 side, embedded as queries).

Embedding 100k chunks on 2 CPU cores takes minutes, so the texts and vectors are cached
under `data/bench-cache/` (git-ignored), keyed by the chunk count and a digest of the
texts: a rerun on the same machine loads them in a second. The manual pages differ from
machine to machine, so the report carries the corpus digest.

Example::

    corpus = load_corpus(100_000, root=Path("."))
    corpus.vectors.shape, corpus.documents[:3], corpus.queries[0]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.embed import Embedder

log = logging.getLogger(__name__)

MODEL = "all-MiniLM-L6-v2"
CHUNK_CHARS = 320
DIMENSION = 384
BLOCK = 2048  # chunks per cache file
MAN_ROOT = Path("/usr/share/man")
MAN_DIRS = [f"man{i}" for i in range(1, 9)] + [
    f"{lang}/man{i}" for lang in ("es", "ru") for i in (1, 5, 8)
]
MLQA = Path("tests") / "bench" / "data" / "mlqa"
CACHE = Path("data") / "bench-cache"
# Google Cloud SDK's 16k generated pages (alpha / beta / GA copies of each command) would
# make most of the corpus near-duplicates of each other.
SKIP_PAGES = ("gcloud",)

# troff requests whose arguments are not text (definitions, registers, conditionals, ...)
_SKIP_REQUESTS = frozenset(
    "ds nr if ie el tr rm ft ne nh ad na hy so de am ig in ti sp br fi nf ce ll ps vs "
    "ta tm mso TH Dd Dt Os ss cs bd ev rn di da wh ch it lf pso ftr fam RS RE PD UC".split()
)
_BREAK_REQUESTS = frozenset("SH SS PP LP P TP IP HP Sh Ss Pp Bl El It RS RE".split())
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d"), ""),  # size changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # string interpolation
    (re.compile(r"\\\((..)"), " "),  # special characters
    (re.compile(r"\\\[[^\]]*\]"), " "),
    (re.compile(r"\\[-e]"), "-"),
    (re.compile(r"\\[&|^%]"), ""),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[a-zA-Z]"), ""),
    (re.compile(r"\\"), ""),
]
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


@dataclass
class Corpus:
    """Chunk texts, their documents and unit vectors (float32, one row per chunk); the
    questions (text, language) and their query vectors; `digest` names the texts."""

    texts: list[str]
    documents: list[str]
    languages: list[str]
    vectors: np.ndarray
    queries: list[str]
    query_languages: list[str]
    query_vectors: np.ndarray
    digest: str
    sources: dict[str, int]


def man_text(raw: str) -> list[str]:
    """The paragraphs of a troff manual page, markup stripped (a rough reading: enough to
    give real sentences, not a renderer)."""
    paragraphs: list[list[str]] = [[]]
    skipping = False
    for line in raw.splitlines():
        if skipping:
            skipping = line.strip() != ".."
            continue
        if line.startswith(('.\\"', "'\\\"", '.\\"', '\\"')):
            continue
        if line.startswith((".", "'")):
            request, _, args = line[1:].strip().partition(" ")
            if request in ("de", "am", "ig"):
                skipping = True
                continue
            if request in _BREAK_REQUESTS and paragraphs[-1]:
                paragraphs.append([])
            if request in _SKIP_REQUESTS or request.startswith(("if", "ie", "el", "\\")):
                continue
            line = args.replace('"', "")
        for pattern, repl in _ESCAPES:
            line = pattern.sub(repl, line)
        line = " ".join(line.split())
        if line:
            paragraphs[-1].append(line)
    return [" ".join(p) for p in paragraphs if p]


def split_chunks(paragraphs: list[str], limit: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs packed into chunks of at most `limit` characters, cut between sentences
    (a sentence longer than `limit` is cut between words)."""
    pieces: list[str] = []
    for paragraph in paragraphs:
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > limit // 2 else limit
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
        pieces.append("\n")  # a paragraph end: a good place to cut
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if piece == "\n":
            if len(current) >= limit // 2:
                chunks.append(current)
                current = ""
            continue
        if current and len(current) + 1 + len(piece) > limit:
            chunks.append(current)
            current = ""
        current = f"{current} {piece}" if current else piece
    if current:
        chunks.append(current)
    return [c for c in chunks if len(c) >= 40]  # bare headings and option names say little


def _mlqa_documents(root: Path) -> Iterator[tuple[str, str, list[str]]]:
    with open(root / MLQA / "passages.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            paragraphs = [row["title"], *row["text"].split("\n")]
            yield row["id"], row["language"], paragraphs


def _man_documents() -> Iterator[tuple[str, str, list[str]]]:
    for folder in MAN_DIRS:
        language = folder.split("/")[0] if "/" in folder else "en"
        for path in sorted((MAN_ROOT / folder).glob("*.gz")):
            if path.name.startswith(SKIP_PAGES):
                continue
            try:
                raw = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            except (OSError, EOFError):
                continue
            if raw.startswith(".so "):  # an alias of another page
                continue
            yield f"man:{folder}/{path.name}", language, man_text(raw)


def collect_texts(n: int, root: Path) -> tuple[list[str], list[str], list[str], dict[str, int]]:
    """The first `n` chunks of the sources (module docstring): texts, documents and
    languages, and how many chunks each source gave. ValueError when they hold fewer."""
    texts: list[str] = []
    documents: list[str] = []
    languages: list[str] = []
    sources: dict[str, int] = {}
    for name, stream in (("mlqa passages", _mlqa_documents(root)), ("man pages", _man_documents())):
        for doc_id, language, paragraphs in stream:
            document = doc_id.split("#")[0]
            for chunk in split_chunks(paragraphs):
                texts.append(chunk)
                documents.append(document)
                languages.append(language)
                sources[name] = sources.get(name, 0) + 1
                if len(texts) == n:
                    return texts, documents, languages, sources
    raise ValueError(
        f"the real corpus holds {len(texts)} chunks, fewer than the {n} asked for "
        f"(sources: {sources}); use a smaller --scale or the perturbed copies (1m)"
    )


def load_questions(root: Path) -> tuple[list[str], list[str]]:
    """The QA set's questions and their languages, in file order."""
    questions, languages = [], []
    with open(root / MLQA / "questions.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            questions.append(row["question"])
            languages.append(row["language"])
    return questions, languages


def _embedder() -> Any:

    embedder = Embedder(MODEL, batch_size=64)
    embedder.warm_up()
    return embedder


def _block_path(root: Path, texts: list[str], kind: str) -> Path:
    digest = hashlib.sha256("\0".join([kind, *texts]).encode()).hexdigest()[:20]
    return root / CACHE / f"minilm-{kind}-{digest}.npy"


def embed_cached(
    texts: list[str], kind: str, root: Path, *, deadline: float | None = None
) -> np.ndarray:
    """Unit vectors of `texts` (embedded as `kind`), BLOCK texts per cache file under
    `data/bench-cache/` (named by a digest of the block's texts, so any run that asks
    for the same prefix of the corpus reuses them). With a `deadline`
    (time.monotonic()), stops embedding once it passes and returns the rows done so
    far: a contiguous prefix, fewer rows than `texts`."""
    blocks: list[np.ndarray] = []
    embedder = None
    started, done = time.perf_counter(), 0
    for lo in range(0, len(texts), BLOCK):
        block = texts[lo : lo + BLOCK]
        path = _block_path(root, block, kind)
        if path.is_file():
            blocks.append(np.load(path))
            continue
        if deadline is not None and time.monotonic() > deadline:
            break
        if embedder is None:
            embedder = _embedder()
        vectors = np.asarray(embedder.encode(block, kind=kind), dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, vectors)
        tmp.rename(path)
        blocks.append(vectors)
        done += len(block)
        rate = done / (time.perf_counter() - started)
        log.info("embedded %d / %d %ss (%.1f/s)", lo + len(block), len(texts), kind, rate)
    if not blocks:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    return np.vstack(blocks)


def spread(count: int, total: int) -> list[int]:
    """`count` positions spread evenly over range(total) (all of them when count >= total)."""
    if count >= total:
        return list(range(total))
    return [int(i * total / count) for i in range(count)]


def load_corpus(n: int, root: Path, *, queries: int = 500) -> Corpus:
    """`n` real chunks with their vectors and `queries` questions (spread over the QA
    set: every language and source) with theirs, embedded or from the cache (module
    docstring). ValueError when fewer than `n` chunks are embedded yet and `n` is over
    the cached prefix (run `python -m api.bench.scale_corpus --embed N` first)."""
    texts, documents, languages, sources = collect_texts(n, root)
    whole = -(-n // BLOCK) * BLOCK
    if whole != n:  # a larger run's whole block holding these chunks, when cached
        try:
            larger = collect_texts(whole, root)
        except ValueError:
            larger = None
        if larger and _block_path(root, larger[0][whole - BLOCK :], "passage").is_file():
            texts, documents, languages, sources = larger
    vectors = embed_cached(texts, "passage", root)[:n]
    texts, documents, languages = texts[:n], documents[:n], languages[:n]
    sources = _count_sources(sources, n)
    all_questions, all_languages = load_questions(root)
    picks = spread(queries, len(all_questions))
    questions = [all_questions[i] for i in picks]
    query_vectors = embed_cached(questions, "query", root)
    digest = hashlib.sha256("\0".join(texts + questions).encode()).hexdigest()[:16]
    return Corpus(
        texts,
        documents,
        languages,
        vectors,
        questions,
        [all_languages[i] for i in picks],
        query_vectors,
        digest,
        sources,
    )


def _count_sources(sources: dict[str, int], n: int) -> dict[str, int]:
    """`sources` (chunks per source, in order) cut to the first `n` chunks."""
    out: dict[str, int] = {}
    for name, count in sources.items():
        take = min(count, n - sum(out.values()))
        if take > 0:
            out[name] = take
    return out


def cached_prefix(n: int, root: Path) -> int:
    """How many of the first `n` real chunks have cached vectors (whole blocks)."""
    texts, *_ = collect_texts(n, root)
    count = 0
    for lo in range(0, len(texts), BLOCK):
        block = texts[lo : lo + BLOCK]
        if not _block_path(root, block, "passage").is_file():
            break
        count += len(block)
    return count


def main(argv: list[str] | None = None) -> None:
    """Embed (and cache) the first N real chunks ahead of a benchmark run."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--embed", type=int, default=100_000, help="chunks to embed")
    parser.add_argument("--minutes", type=float, help="stop after this long (resumable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = Path(__file__).resolve().parents[2]
    texts, *_ = collect_texts(args.embed, root)
    deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
    done = embed_cached(texts, "passage", root, deadline=deadline)
    print(f"{len(done)} of {len(texts)} chunks embedded and cached under {root / CACHE}")


if __name__ == "__main__":
    main()
