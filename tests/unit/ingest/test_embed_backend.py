"""Embedder backends on the real packaged all-MiniLM-L6-v2: OpenVINO against torch fp32.

openvino is a dependency, so nothing here is skipped when it is missing: a missing
openvino must fail these tests, not hide them."""

import logging

import numpy as np
import pytest

import ingest.embed as embed_module
from api.components import Components
from core.errors import InvalidInput
from ingest.embed import Embedder, _cpu_has_bf16
from tests.conftest import make_settings

pytestmark = pytest.mark.unit

MODEL = "all-MiniLM-L6-v2"

SENTENCES = [
    "Magma rises through the crust of Iceland and feeds the chamber below Hekla.",
    "The quarterly report shows revenue growth of 12% in the northern region.",
    "La biblioteca municipal abre de lunes a viernes de nueve a ocho.",
    "Los glaciares de la Patagonia retroceden cada año por el calentamiento.",
    "Московское метро перевозит миллионы пассажиров каждый день.",
    "Река Волга впадает в Каспийское море.",
]


def fp32_reference(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """torch fp32 through sentence-transformers itself (no autocast)."""
    vectors = embedder.model.encode(
        texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def ov_embedder() -> Embedder:
    emb = Embedder(MODEL, device="cpu", backend="openvino")
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    emb = Embedder(MODEL, device="cpu", backend="torch")
    emb.warm_up()
    return emb


def test_openvino_matches_torch_fp32_on_english_spanish_and_russian(ov_embedder):
    assert ov_embedder.backend == "openvino"
    assert ov_embedder.precision == ("openvino-bf16" if _cpu_has_bf16() else "openvino-f32")
    vectors = ov_embedder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert row_cosines(vectors, fp32_reference(ov_embedder, SENTENCES)).min() >= 0.999


def test_mixed_lengths_across_batches_keep_input_order_and_truncation(ov_embedder):
    words = "lava basalt crater fjord glacier tundra harbour lantern".split()
    # 1 to ~400 words: several batches of 32, heavy padding, and texts past the model's
    # 256-token limit (truncated exactly as sentence-transformers does).
    texts = [
        " ".join(words[(i + j) % len(words)] for j in range(1 + (i * 37) % 400)) for i in range(70)
    ]
    texts += SENTENCES + ["", "x"]
    assert max(ov_embedder.count_tokens(t) for t in texts) > ov_embedder.max_tokens
    vectors = ov_embedder.encode(texts)
    reference = fp32_reference(ov_embedder, texts)
    # Each row matches its own text's reference: order is preserved.
    assert row_cosines(vectors, reference).min() >= 0.999
    one_by_one = np.stack([ov_embedder.encode([t])[0] for t in SENTENCES])
    assert row_cosines(one_by_one, vectors[70:76]).min() >= 0.9999
    assert ov_embedder.encode([]).shape == (0, 384)


def test_torch_model_stays_usable_after_conversion(ov_embedder, torch_embedder):
    # embedder.model (tokenizer, max_seq_length, training) is the torch model, untouched.
    assert ov_embedder.model.max_seq_length == 256
    a = fp32_reference(ov_embedder, SENTENCES)
    b = fp32_reference(torch_embedder, SENTENCES)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_torch_backend_still_works_and_digest_follows_the_backend(ov_embedder, torch_embedder):
    assert torch_embedder.backend == "torch"
    assert torch_embedder.precision == ("bf16-autocast" if _cpu_has_bf16() else "fp32")
    vectors = torch_embedder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert row_cosines(vectors, fp32_reference(torch_embedder, SENTENCES)).min() >= 0.99
    # Vectors differ slightly between backends: so must the embedding cache key.
    assert ov_embedder.digest != torch_embedder.digest
    assert len(ov_embedder.digest) == len(torch_embedder.digest) == 64


def test_openvino_backend_without_openvino_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(embed_module, "_import_openvino", lambda: None)
    emb = Embedder(MODEL, device="cpu", backend="openvino")
    with pytest.raises(InvalidInput, match="openvino package is not installed"):
        emb.warm_up()
    # auto falls back to torch.
    auto = Embedder(MODEL, device="cpu")
    auto.warm_up()
    assert auto.backend == "torch" and auto.precision in ("bf16-autocast", "fp32")
    assert auto.encode(SENTENCES[:2]).shape == (2, 384)


def test_openvino_with_cuda_or_an_unknown_backend_is_refused():
    with pytest.raises(InvalidInput, match="not one of"):
        Embedder(MODEL, backend="onnx")
    with pytest.raises(InvalidInput, match="cannot be combined"):
        Embedder(MODEL, device="cuda", backend="openvino")


def test_failed_fidelity_guard_falls_back_to_torch(monkeypatch, caplog):
    monkeypatch.setattr(embed_module, "_GUARD_MIN_COSINE", 1.01)  # no backend can pass
    emb = Embedder(MODEL, device="cpu", backend="openvino")
    with caplog.at_level(logging.WARNING, logger="ingest.embed"):
        emb.warm_up()
    assert "differ from torch fp32" in caplog.text
    assert emb.backend == "torch" and emb.precision in ("bf16-autocast", "fp32")
    assert emb.encode(SENTENCES[:2]).shape == (2, 384)


def test_a_model_whose_first_module_is_not_a_transformer_runs_on_torch(tmp_path, caplog):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    base = SentenceTransformer(str(embed_module.resolve_model_path(MODEL)), device="cpu")
    static = StaticEmbedding(base.tokenizer.backend_tokenizer, embedding_dim=16)
    SentenceTransformer(modules=[static], device="cpu").save(str(tmp_path / "static"))
    emb = Embedder(str(tmp_path / "static"), device="cpu", backend="openvino")
    with caplog.at_level(logging.WARNING, logger="ingest.embed"):
        emb.warm_up()
    assert "OpenVINO is not used" in caplog.text and "not a Transformer" in caplog.text
    assert emb.backend == "torch"
    vectors = emb.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 16)


def test_setting_reaches_the_embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGOPS_EMBEDDING_BACKEND", "torch")
    settings = make_settings(tmp_path / "data")
    assert settings.embedding_backend == "torch"
    components = Components()
    try:
        emb = components.embedder(settings)
        assert emb.requested_backend == "torch"
        other = components.embedder(make_settings(tmp_path / "data", embedding_backend="openvino"))
        assert other is not emb and other.requested_backend == "openvino"
    finally:
        components.close()


def test_auto_takes_openvino_with_or_without_native_bf16(ov_embedder):
    auto = Embedder(MODEL, device="cpu", backend="auto")
    auto.warm_up()
    assert auto.backend == "openvino" and auto.precision == ov_embedder.precision
    assert auto.digest == ov_embedder.digest  # the same vectors: the same cache key
