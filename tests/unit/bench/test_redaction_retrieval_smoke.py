"""The core of `tests/bench/bench_redaction_retrieval.py` on four passages: the real
redactor's analysis replayed per variant gives the expected texts, pseudonyms are stable
within a passage, only changed passages are re-embedded, and the per-variant figures
count the right questions."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ingest.redact import PresidioEngines
from tests.bench.bench_redaction_retrieval import (
    Bench,
    Variant,
    VectorCache,
    analyse,
    conflated,
    score,
    variants,
)
from tests.bench.bench_retrieval_mlqa import Corpus
from tests.bench.mlqa import Passage, Question

pytestmark = [pytest.mark.unit, pytest.mark.slow]

EN_MAIL, RU_MAIL = "annual.report@example.com", "otchet@example.org"
PASSAGES = [
    Passage(
        "en:1",
        "en",
        "",
        f"Maria Garcia wrote the annual report. Write to {EN_MAIL} for a copy. "
        "Later Maria Garcia presented the report to John Smith.",
        "t",
    ),
    Passage("en:2", "en", "", "Printer settings are in the Devices panel of Settings.", "t"),
    Passage(
        "ru:1",
        "ru",
        "",
        f"Иван Петров подготовил годовой отчёт. Пишите на {RU_MAIL}, чтобы получить копию. "
        "Затем Иван Петров представил отчёт Анне Смирновой.",
        "t",
    ),
    Passage("ru:2", "ru", "", "Настройки принтера находятся на панели «Устройства».", "t"),
]
QUESTIONS = [
    Question(
        "q:en:1", "en", "Who did Maria Garcia present the report to?", ("en:1",), None, "t", "test"
    ),
    Question("q:en:2", "en", "Where are the printer settings?", ("en:2",), None, "t", "test"),
    Question("q:ru:1", "ru", "Кому Иван Петров представил отчёт?", ("ru:1",), None, "t", "test"),
]


class CountingEncoder:
    """Deterministic bag-of-words vectors; remembers every text it was asked to encode."""

    digest = "counting"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def encode(self, texts: list[str], *, kind: str = "passage") -> np.ndarray:
        self.calls += texts
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.casefold().split():
                out[row, hashlib.sha256(word.encode()).digest()[0] % 64] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def bench() -> Bench:
    corpus = Corpus(PASSAGES)
    engines = PresidioEngines()
    langs, spans = analyse(corpus.texts, [p.language for p in PASSAGES], engines)
    cache = VectorCache(CountingEncoder(), None)
    return Bench(corpus, QUESTIONS, langs, spans, cache, engines)


def by_name(name: str) -> Variant:
    return next(v for v in variants() if v.name == name)


def test_analysis_finds_names_and_mails_in_each_language(bench: Bench) -> None:
    assert bench.languages == ["en", "en", "ru", "ru"]
    found = [{s.entity for s in spans} for spans in bench.spans]
    assert {"PERSON", "EMAIL_ADDRESS"} <= found[0]
    assert {"PERSON", "EMAIL_ADDRESS"} <= found[2]
    assert "PERSON" not in found[1] | found[3]


def test_pseudonyms_are_stable_within_a_passage(bench: Bench) -> None:
    run = bench.run(by_name("PERSON pseudonymize"))
    en, ru = run.texts[0], run.texts[2]
    for text in (en, ru):
        assert text.count("<PERSON_1>") == 2, text
        assert "<PERSON_2>" in text and "<PERSON>" not in text
    assert EN_MAIL in en and RU_MAIL in ru  # only PERSON is redacted
    assert "Maria" not in en and "Петров" not in ru
    assert not conflated(bench.corpus.texts[0], en, bench.spans[0], ["PERSON"])


def test_default_replace_redacts_names_and_mails(bench: Bench) -> None:
    run = bench.run(by_name("default replace"))
    assert run.changed == [0, 2]
    en, ru = run.texts[0], run.texts[2]
    for text, secrets in ((en, ("Maria", "Smith", EN_MAIL)), (ru, ("Петров", RU_MAIL))):
        assert "<PERSON>" in text and "<EMAIL_ADDRESS>" in text
        assert not any(s in text for s in secrets), text
    assert run.counts["en:EMAIL_ADDRESS"] == 1 and run.counts["ru:EMAIL_ADDRESS"] == 1
    # Two people, one placeholder: who did what is lost.
    assert conflated(bench.corpus.texts[0], en, bench.spans[0], run.variant.entities)
    mixed = bench.run(by_name("default, PERSON pseudonymize")).texts[0]
    assert "<PERSON_1>" in mixed and "<EMAIL_ADDRESS>" in mixed


def test_a_variant_re_embeds_only_the_passages_it_changed(bench: Bench) -> None:
    encoder = CountingEncoder()
    fresh = Bench(
        bench.corpus,
        QUESTIONS,
        bench.languages,
        bench.spans,
        VectorCache(encoder, None),
        bench.engines,
    )
    # The unredacted corpus and the queries, once each.
    assert encoder.calls == [*fresh.corpus.texts, *(q.question for q in QUESTIONS)]
    before = len(encoder.calls)
    assert fresh.run(Variant("none")).changed == []
    run = fresh.run(by_name("EMAIL_ADDRESS replace"))
    assert run.changed == [0, 2]
    assert "Maria Garcia" in run.texts[0] and "<EMAIL_ADDRESS>" in run.texts[0]
    fresh.rankings(run)
    assert encoder.calls[before:] == [run.texts[0], run.texts[2]]
    fresh.rankings(run)  # the same texts again: served from the cache
    assert len(encoder.calls) == before + 2


def test_scores_count_affected_and_answerable_questions(bench: Bench) -> None:
    baseline = bench.rankings(bench.run(Variant("none")))
    person = bench.run(by_name("PERSON replace"))
    out = score(bench, person, bench.rankings(person), baseline)
    assert out["en"]["all"]["n"] == 2 and out["en"]["affected"]["n"] == 1
    assert out["ru"]["affected"]["n"] == 1 and out["es"]["affected"]["n"] == 0
    assert out["en"]["changed_passages"] == 1
    # The question names Maria Garcia; her name is gone from the passage.
    assert out["en"]["answerable"] == 0.0 and out["ru"]["answerable"] == 0.0
    assert out["en"]["conflated"] == 1.0
    mail = bench.run(by_name("EMAIL_ADDRESS replace"))
    out = score(bench, mail, bench.rankings(mail), baseline)
    assert out["en"]["answerable"] == 1.0 and out["en"]["conflated"] == 0.0
