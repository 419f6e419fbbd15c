"""The pure parts of the fine-tuning dataset and job: question normalisation (dedup and
gate overlap), the split by document, batches without false negatives, source,
synthetic-question and hyper-parameter validation, the chunk a thumbs-down names, and
the dev metrics on a real (packaged) model."""

from __future__ import annotations

import pytest

from core.catalog.models import Answer, AnswerFeedback
from core.errors import InvalidInput
from eval.finetune import FineTuneParams, batches, dev_metrics, synthetic_testset_name
from eval.finetune_data import (
    DEFAULT_SYNTHETIC_QUESTIONS,
    MAX_SYNTHETIC_QUESTIONS,
    Dataset,
    Pair,
    _Chunks,
    _dedup,
    _supporting_chunk,
    check_sources,
    check_synthetic,
    normalise,
    split_by_document,
)
from eval.testsets import check_name

pytestmark = pytest.mark.unit


def pair(q: str, doc: str, chunk: str | None = None, negatives: list[str] | None = None) -> Pair:
    return Pair(
        question=q,
        positive_id=chunk or f"{doc}-c",
        document_id=doc,
        filename=f"{doc}.md",
        source="feedback_up",
        language="en",
        negative_ids=list(negatives or []),
    )


def test_normalise_ignores_case_punctuation_and_spacing():
    assert normalise("  When was the  Corbrin Light lit?") == normalise(
        "when was the corbrin light lit"
    )
    assert normalise("¿Dónde nace el río?") == normalise("dónde nace el RÍO")
    assert normalise("Who built it?") != normalise("Who owns it?")


def test_dedup_keeps_the_first_source_of_a_question():
    from collections import Counter

    skipped: Counter[str] = Counter()
    first = pair("Who built it?", "d1")
    kept = _dedup([first, pair("who built it", "d2"), pair("Who owns it?", "d2")], skipped)
    assert kept[0] is first and len(kept) == 2 and skipped["duplicate_question"] == 1


def test_split_is_by_document_and_stable():
    pairs = [pair(f"q{d}-{i}", f"doc{d}") for d in range(10) for i in range(3)]
    split_by_document(pairs, dev_fraction=0.2)
    sides: dict[str, set[str]] = {}
    for p in pairs:
        sides.setdefault(p.document_id, set()).add(p.split)
    assert all(len(s) == 1 for s in sides.values()), "a document on both sides"
    dev = [p for p in pairs if p.split == "dev"]
    assert 6 <= len(dev) <= 9 and len(dev) % 3 == 0
    again = [pair(p.question, p.document_id) for p in reversed(pairs)]
    split_by_document(again, dev_fraction=0.2)
    assert {p.question for p in again if p.split == "dev"} == {p.question for p in dev}


def test_split_keeps_one_document_in_train_and_needs_two():
    alone = [pair("q1", "only"), pair("q2", "only")]
    split_by_document(alone)
    assert {p.split for p in alone} == {"train"}
    two = [pair("q1", "a"), pair("q2", "b")]
    split_by_document(two, dev_fraction=0.5)
    assert sorted(p.split for p in two) == ["dev", "train"]


def test_batches_never_hold_a_positive_twice_or_as_a_negative():
    pairs = [
        pair(f"q{i}", f"d{i % 5}", chunk=f"c{i % 5}", negatives=[f"c{(i + 1) % 5}"])
        for i in range(20)
    ]
    made = batches(pairs, size=4, seed=1)
    assert made
    for batch in made:
        positives = [p.positive_id for p in batch]
        assert len(set(positives)) == len(positives)
        assert not set(positives) & {n for p in batch for n in p.negative_ids}
    assert batches(pairs, 4, seed=1) == made  # same seed, same order


def test_sources_are_checked():
    assert check_sources(None, None) == ["feedback"]
    assert check_sources(["feedback", "testsets"], ["smoke"]) == ["feedback", "testsets"]
    assert check_sources(["synthetic"], None) == ["synthetic"]
    assert check_sources(["synthetic", "feedback", "synthetic"], None) == [
        "synthetic",
        "feedback",
    ]
    for sources, testsets, word in [
        (["gossip"], None, "gossip"),
        ([" "], None, "synthetic"),
        (["testsets"], None, "names"),
        (["feedback"], ["smoke"], "not among the sources"),
    ]:
        with pytest.raises(InvalidInput, match=word):
            check_sources(sources, testsets)


def test_synthetic_questions_are_checked():
    assert check_synthetic(["feedback"], None) is None
    assert check_synthetic(["synthetic"], None) == DEFAULT_SYNTHETIC_QUESTIONS == 100
    assert check_synthetic(["feedback", "synthetic"], 1) == 1
    assert check_synthetic(["synthetic"], MAX_SYNTHETIC_QUESTIONS) == MAX_SYNTHETIC_QUESTIONS
    for value in (0, -3, MAX_SYNTHETIC_QUESTIONS + 1, True, "50"):
        with pytest.raises(InvalidInput, match="synthetic_questions must be between 1 and 500"):
            check_synthetic(["synthetic"], value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="'synthetic' is not among the sources"):
        check_synthetic(["feedback"], 20)


def test_the_synthetic_test_set_name_is_a_valid_test_set_name():
    assert synthetic_testset_name("e5-docs-ft1") == "finetune-e5-docs-ft1-synthetic"
    for model in ("org/e5:ft@2+x", "a/" * 99 + "b", "x" * 200):
        name = synthetic_testset_name(model)
        assert check_name(name) == name and "@" not in name
        assert name.startswith("finetune-") and name.endswith("-synthetic")
    # Long names that share a prefix still get names of their own.
    assert synthetic_testset_name("x" * 150 + "a") != synthetic_testset_name("x" * 150 + "b")


class LiveChunks(_Chunks):
    """The live version's chunks given as (text, document, hash) rows, not read from a
    catalog."""

    def __init__(self, rows: dict[str, tuple[str, str, str]]) -> None:
        super().__init__(None, None)  # type: ignore[arg-type]
        self._all = rows


A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_a_named_supporting_chunk_is_preferred_and_never_replaced_by_a_guess():
    chunks = LiveChunks(
        {
            A: ("The valve was replaced on Monday by the facilities team.", "d1", "h1"),
            B: ("Refunds take ten working days after the return arrives.", "d2", "h2"),
        }
    )
    answer = Answer(query="How long do refunds take?", contexts=[{"chunk_id": A}])
    # The comment names A and the correction is in no passage the answer saw: the
    # explicit field wins over the comment.
    named = AnswerFeedback(
        rating=-1, comment=f"see {A}", correction="ten working days", supporting_chunk_id=B
    )
    assert _supporting_chunk(answer, named, chunks) == B
    # Without the field, the comment's chunk id is used (the text heuristics).
    assert _supporting_chunk(answer, AnswerFeedback(rating=-1, comment=f"see {A}"), chunks) == A
    # The named chunk is gone from the live version (its document erased or changed):
    # no pair, even though the comment names a live chunk.
    gone = AnswerFeedback(rating=-1, comment=f"see {A}", supporting_chunk_id=C)
    assert _supporting_chunk(answer, gone, chunks) is None


def test_hyperparameters_are_bounded():
    assert FineTuneParams().check().epochs == 1
    for field, value in [
        ("epochs", 0),
        ("batch_size", 1),
        ("learning_rate", 1.0),
        ("max_minutes", 0),
    ]:
        with pytest.raises(InvalidInput, match=field):
            FineTuneParams(**{field: value}).check()
    with pytest.raises(InvalidInput, match="max_steps"):
        FineTuneParams(max_steps=0).check()


def test_dev_metrics_rank_the_positive_chunk(embedder):
    corpus = {
        "c1": "The Corbrin Light was first lit in 1824 after a storm.",
        "c2": "Manchego cheese is made from the milk of La Mancha sheep.",
        "c3": "The river rises in the northern mountains and flows south.",
    }
    dev = [
        pair("When was the Corbrin Light first lit?", "d1", chunk="c1"),
        pair("Which milk is Manchego made from?", "d2", chunk="c2"),
    ]
    prompts = {"query": "", "passage": ""}
    figures = dev_metrics(embedder.model, dev, corpus, prompts)
    assert figures["recall@5"] == 1.0 and figures["mrr@10"] == 1.0 and figures["questions"] == 2
    assert figures["by_language"]["en"]["questions"] == 2


def test_dataset_counts_and_id_follow_the_content():
    pairs = [pair(f"q{i}", f"d{i % 4}") for i in range(8)]
    split_by_document(pairs, dev_fraction=0.25)
    ds = Dataset("kb", "docs", 1, ["feedback"], [], pairs, {}, {"duplicate_question": 2})
    counts = ds.counts()
    assert counts["pairs"] == 8 and counts["train"] + counts["dev"] == 8
    assert counts["by_source"] == {"feedback_up": 8} and counts["skipped"] == {
        "duplicate_question": 2
    }
    same = Dataset("kb", "docs", 1, ["feedback"], [], list(reversed(pairs)), {}, {})
    before = ds.id
    assert same.id == before
    pairs[0].negative_ids = ["x"]
    assert ds.id != before
