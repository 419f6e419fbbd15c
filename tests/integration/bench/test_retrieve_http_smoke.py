"""The /retrieve HTTP benchmark's corpus builder: copies keep their seed and perturb it
only slightly. (An end-to-end run of the bench on a tiny KB took 2.5 minutes of the suite's
15: run `python -m tests.bench.bench_retrieve_http --chunks 60 --seconds 1 --clients 2`
after changing it; the full figures come from the same command with its defaults.)"""

import numpy as np
import pytest

from tests.bench.retrieve_http_corpus import corpus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_copies_keep_the_seed_and_perturb_it_slightly():
    rng = np.random.default_rng(1)
    seed = rng.standard_normal((3, 384)).astype(np.float32)
    seed /= np.linalg.norm(seed, axis=1, keepdims=True)
    texts, vectors = corpus(["a", "b", "c"], seed, 8)

    assert texts[:4] == ["a", "b", "c", "a [1]"] and texts[7] == "b [2]"
    assert np.array_equal(vectors[:3], seed)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors[3:] * seed[np.arange(3, 8) % 3], axis=1)
    assert np.all((cosines > 0.98) & (cosines < 0.9999))
