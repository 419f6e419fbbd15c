"""The committed multilingual QA set is complete and consistent: enough questions per
language and split, unique ids, every relevant passage present and in the question's
language, and dev and test asking about disjoint passages."""

from collections import Counter

import pytest

from tests.bench.mlqa import (
    LANGUAGES,
    PARALLEL_SOURCES,
    SPLITS,
    load,
    load_passages,
    load_questions,
)

pytestmark = pytest.mark.unit

MIN_QUESTIONS = 300  # per language, both splits together
MIN_PER_SPLIT = 80  # per language and split
MIN_DISTRACTORS = 200  # passages per language that no question needs


@pytest.fixture(scope="module")
def passages():
    return {p.id: p for p in load_passages()}


@pytest.fixture(scope="module")
def questions():
    return load_questions()


def test_counts_per_language_and_split(questions):
    per_language = Counter(q.language for q in questions)
    per_split = Counter((q.language, q.split) for q in questions)
    for lang in LANGUAGES:
        assert per_language[lang] >= MIN_QUESTIONS, (lang, per_language[lang])
        for split in SPLITS:
            assert per_split[lang, split] >= MIN_PER_SPLIT, (lang, split, per_split[lang, split])
    assert {q.split for q in questions} == set(SPLITS)


def test_each_language_has_its_own_corpus_with_distractors(passages, questions):
    per_language = Counter(p.language for p in passages.values())
    assert set(per_language) == set(LANGUAGES)
    assert sum(per_language.values()) >= 3000
    relevant = {rid for q in questions for rid in q.relevant_ids}
    for lang in LANGUAGES:
        unused = [pid for pid, p in passages.items() if p.language == lang and pid not in relevant]
        assert len(unused) >= MIN_DISTRACTORS, (lang, len(unused))


def test_ids_are_unique():
    passage_ids = [p.id for p in load_passages()]
    question_ids = [q.id for q in load_questions()]
    assert len(passage_ids) == len(set(passage_ids))
    assert len(question_ids) == len(set(question_ids))


def test_every_relevant_passage_exists_in_the_question_language(passages, questions):
    for q in questions:
        assert q.question.strip() and q.relevant_ids, q.id
        for rid in q.relevant_ids:
            assert rid in passages, (q.id, rid)
            assert passages[rid].language == q.language, (q.id, rid)


def test_no_test_passage_is_relevant_to_a_dev_question(questions):
    relevant = {
        split: {rid for q in questions if q.split == split for rid in q.relevant_ids}
        for split in SPLITS
    }
    assert relevant["dev"] and relevant["test"]
    assert not relevant["dev"] & relevant["test"]


def test_the_parallel_subset_is_the_same_in_every_language(questions):
    """Hand-written and GNOME-title questions exist per page in all three languages, with the
    same split, so languages can be compared on identical content."""
    keys = {
        lang: {
            (q.id.split(":", 1)[1], q.split)
            for q in questions
            if q.language == lang and q.source in PARALLEL_SOURCES
        }
        for lang in LANGUAGES
    }
    shared = keys["en"] & keys["es"] & keys["ru"]
    assert len(shared) >= 300
    assert all(len(keys[lang] - shared) <= 5 for lang in LANGUAGES)


def test_load_returns_the_whole_corpus_and_one_split():
    passages, questions = load("dev")
    assert len(passages) == len(load_passages())
    assert questions and {q.split for q in questions} == {"dev"}
    with pytest.raises(ValueError, match="unknown split"):
        load("train")


def test_questions_do_not_give_their_passage_away(passages, questions):
    """A question copied verbatim into its passage (an FAQ heading, a page title phrased
    as a question) would make retrieval trivial; the builder strips those."""
    for q in questions:
        needle = q.question.casefold().strip("¿? ")
        for rid in q.relevant_ids:
            p = passages[rid]
            assert needle not in f"{p.title}\n{p.text}".casefold(), (q.id, rid)
