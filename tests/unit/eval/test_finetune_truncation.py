"""Fine-tuning bounds a step's memory by the tokens per text (`max_seq_length`): the
training batches are tokenized at that length, and the model keeps its own limit for
everything else (dev measurement, the saved model)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from eval.finetune import FineTuneParams, _truncated
from ingest.embed import Embedder

pytestmark = [pytest.mark.slow]

LONG = " ".join(["honey bees dance to show where the flowers are"] * 40)


def test_training_batches_are_cut_to_max_seq_length_and_the_model_keeps_its_own():
    model = Embedder("all-MiniLM-L6-v2").model
    own = model.max_seq_length
    assert len(model.preprocess([LONG])["input_ids"][0]) == own
    with _truncated(model, 32):
        assert len(model.preprocess([LONG])["input_ids"][0]) == 32
    assert model.max_seq_length == own
    # Never longer than the model's own limit.
    with _truncated(model, 4096):
        assert len(model.preprocess([LONG])["input_ids"][0]) == own


def test_max_seq_length_is_bounded():
    assert FineTuneParams(max_seq_length=16).check().max_seq_length == 16
    with pytest.raises(InvalidInput, match="max_seq_length must be between 16 and 512"):
        FineTuneParams(max_seq_length=8).check()
