"""Dense scores on one scale across embedding models.

A cosine means different things per model: all-MiniLM-L6-v2 spreads them widely (a
question and its right passage ≈ 0.6, unrelated text ≈ 0.0), multilingual-e5-small packs
them into a narrow high band (right passage ≈ 0.89, unrelated ≈ 0.76), so one
`score_threshold` (Dify's default is 0.5) cannot serve both. A dense hit's `score` is the
cosine mapped linearly through two anchors of its model, clipped to [0, 1]; the ranking
never changes and `scores["dense"]` keeps the raw cosine.

Anchors for e5 (score 0.5 at cosine 0.83): on the dev split of the multilingual QA set
(`tests/bench/mlqa.py`, questions vs passages in the same language) the cosine of a
question to its right passage is 0.847 at the 5th percentile and 0.892 at the median,
to random passages 0.761 at the median; on the sample corpus' chunks the six sample
questions score 0.84-0.90 with their right chunk and an unrelated question at most
0.80. So Dify's default keeps the right passage of ordinary questions (scores ≈ 0.6-0.85)
and drops unrelated text (≈ 0.15, at most ≈ 0.4). Cross-language questions (Spanish or
Russian against English text) rank the right chunk first but at cosines of 0.77-0.82,
scores ≈ 0.2-0.45: an absolute threshold cannot tell those from unrelated text, so use
a low `score_threshold` (or none) for cross-language search. MiniLM keeps its cosine as
is (existing thresholds and KBs are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """score = (cosine − zero) / (one − zero), clipped to [0, 1]."""

    zero: float  # the cosine that scores 0
    one: float  # the cosine that scores 1

    def __call__(self, cosine: float) -> float:
        return min(1.0, max(0.0, (cosine - self.zero) / (self.one - self.zero)))


E5_SMALL = Calibration(zero=0.73, one=0.93)
CALIBRATIONS: dict[str, Calibration] = {
    "multilingual-e5-small": E5_SMALL,
    "intfloat/multilingual-e5-small": E5_SMALL,
}


def dense_score(embedding_model: str, cosine: float) -> float:
    """The calibrated score of a dense hit (the cosine itself for uncalibrated models)."""
    calibration = CALIBRATIONS.get(embedding_model)
    return cosine if calibration is None else calibration(cosine)
