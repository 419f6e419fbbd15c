"""Dense scores on one scale: e5's narrow cosine band mapped to [0, 1], MiniLM unchanged."""

import pytest

from retrieval.calibration import E5_SMALL, dense_score

pytestmark = pytest.mark.unit


def test_minilm_keeps_its_cosine():
    for cosine in (-0.2, 0.0, 0.37, 0.99):
        assert dense_score("all-MiniLM-L6-v2", cosine) == cosine


def test_e5_is_mapped_monotonically_and_clipped():
    cosines = [0.5, 0.73, 0.76, 0.83, 0.89, 0.93, 0.99]
    scores = [dense_score("multilingual-e5-small", c) for c in cosines]
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 1.0
    assert dense_score("multilingual-e5-small", 0.83) == pytest.approx(0.5)
    # A right passage (median cosine 0.89) clears Dify's 0.5; random text (0.76) does not.
    assert E5_SMALL(0.89) > 0.5 > 0.2 > E5_SMALL(0.76)
    assert dense_score("intfloat/multilingual-e5-small", 0.89) == E5_SMALL(0.89)
