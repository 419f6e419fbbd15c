"""The redact stage against real Presidio and the packaged spaCy model (no mocks)."""

from __future__ import annotations

import socket
import time

import pytest

from core.types import Piece, StageReport
from ingest import redact
from ingest.base import Stage
from ingest.redact import (
    DEFAULT_ENTITIES,
    SUPPORTED_ENTITIES,
    SUPPORTED_OPERATORS,
    PresidioEngines,
    PresidioRedactor,
)

pytestmark = pytest.mark.unit

EMAIL = "jane.doe@example.com"
PHONE = "+1 212-555-0143"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
SECRETS = ("Jane", "Doe", EMAIL, PHONE, CARD, IBAN)
# This module's own engines, so what they have loaded depends only on these tests.
ENGINES = PresidioEngines()

TEXT = f"Contact Jane Doe at {EMAIL} or {PHONE}. Pay with card {CARD} or to IBAN {IBAN}."


@pytest.fixture(scope="module")
def redactor() -> PresidioRedactor:
    r = PresidioRedactor(engines=ENGINES)
    r.warm_up()
    return r


def run(r: PresidioRedactor, *texts: str) -> tuple[list[str], StageReport]:
    report = StageReport()
    out = r([Piece(t, {"page_number": 1}) for t in texts], report)
    return [p.text for p in out], report


def test_construction_is_cheap_and_loads_nothing() -> None:
    start = time.perf_counter()
    r = PresidioRedactor(entities=["EMAIL_ADDRESS"], operator="mask")
    assert time.perf_counter() - start < 0.1
    assert not r.engines.loaded()
    assert isinstance(r, Stage)
    assert r.name == "redact"
    assert r.config == {
        "entities": ["EMAIL_ADDRESS"],
        "languages": ["en", "es", "ru"],
        "language": None,
        "operator": "mask",
        "score_threshold": 0.4,
        "nlp": "ner-only/lowercase-lemma",
    }
    assert PresidioRedactor(language="en").config["languages"] == ["en"]


def test_engines_are_shared(redactor: PresidioRedactor) -> None:
    assert ENGINES.loaded()
    assert ENGINES.get() is ENGINES.get(("en",))
    PresidioRedactor(operator="hash", engines=ENGINES).warm_up()
    # One engine per language, pattern-only "other" included, whatever the redactor.
    assert ENGINES.loaded_keys == [("en",), ("es",), ("other",), ("ru",)]
    both = ENGINES.get(("en", "es"))
    assert both.analyzer.nlp_engine.nlp["es"] is ENGINES.get(("es",)).analyzer.nlp_engine.nlp["es"]
    assert both.anonymizer is ENGINES.get().anonymizer


def test_supported_entities_are_known_to_presidio(redactor: PresidioRedactor) -> None:
    assert set(SUPPORTED_ENTITIES) <= set(ENGINES.get().analyzer.get_supported_entities("en"))
    assert set(DEFAULT_ENTITIES) <= set(SUPPORTED_ENTITIES)
    assert "LOCATION" not in DEFAULT_ENTITIES


def test_replace_tags_every_default_entity(redactor: PresidioRedactor) -> None:
    [text], report = run(redactor, TEXT + " SSN 536-22-8175, host 10.0.4.17.")
    assert text == (
        "Contact <PERSON> at <EMAIL_ADDRESS> or <PHONE_NUMBER>. "
        "Pay with card <CREDIT_CARD> or to IBAN <IBAN_CODE>. "
        "SSN <US_SSN>, host <IP_ADDRESS>."
    )
    expected = {
        "PERSON": 1,
        "EMAIL_ADDRESS": 1,
        "PHONE_NUMBER": 1,
        "CREDIT_CARD": 1,
        "IBAN_CODE": 1,
        "US_SSN": 1,
        "IP_ADDRESS": 1,
    }
    assert report.counts == {
        "redact": expected,
        "redact_by_language": {f"en:{entity}": n for entity, n in expected.items()},
    }


@pytest.mark.parametrize("operator", SUPPORTED_OPERATORS)
def test_operators_remove_secrets(operator: str) -> None:
    [text], report = run(PresidioRedactor(operator=operator, engines=ENGINES), TEXT)
    for secret in SECRETS:
        assert secret not in text
        assert secret not in repr(report)
    assert text.startswith("Contact ")
    assert sum(report.counts["redact"].values()) == 5


def test_mask_hash_and_drop_shapes() -> None:
    sentence = f"Write to {EMAIL} today."
    [masked], _ = run(PresidioRedactor(operator="mask", engines=ENGINES), sentence)
    assert masked == f"Write to {'*' * len(EMAIL)} today."
    [dropped], _ = run(PresidioRedactor(operator="drop", engines=ENGINES), sentence)
    assert dropped == "Write to  today."
    [hashed], _ = run(PresidioRedactor(operator="hash", engines=ENGINES), sentence)
    digest = hashed.removeprefix("Write to ").removesuffix(" today.")
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_hash_salt_makes_hashes_repeatable() -> None:
    sentence = f"Write to {EMAIL} today."
    salted = PresidioRedactor(operator="hash", hash_salt="s" * 16, engines=ENGINES)
    assert run(salted, sentence)[0] == run(salted, sentence)[0]
    unsalted = PresidioRedactor(operator="hash", engines=ENGINES)
    assert run(unsalted, sentence)[0] != run(unsalted, sentence)[0]
    assert "s" * 16 not in repr(salted.config)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PresidioRedactor(operator="hash", hash_salt="short", engines=ENGINES)


def test_pseudonyms_number_each_value_per_document() -> None:
    r = PresidioRedactor(operator="pseudonymize", engines=ENGINES)
    texts = [
        f"Jane Doe wrote to {EMAIL}. Later Mark Smith answered her.",
        f"Mark Smith called {PHONE}; Jane Doe did not reply to {EMAIL.upper()}.",
    ]
    out, report = run(r, *texts)
    assert out == [
        "<PERSON_1> wrote to <EMAIL_ADDRESS_1>. Later <PERSON_2> answered her.",
        "<PERSON_2> called <PHONE_NUMBER_1>; <PERSON_1> did not reply to <EMAIL_ADDRESS_1>.",
    ]
    assert report.counts["redact"] == {"EMAIL_ADDRESS": 2, "PERSON": 4, "PHONE_NUMBER": 1}
    # A new document (a new call) starts counting again.
    assert run(r, "Mail bob@example.org today.")[0] == ["Mail <EMAIL_ADDRESS_1> today."]


def test_entity_operators_override_the_default_and_enter_the_config() -> None:
    plain = PresidioRedactor(engines=ENGINES)
    mixed = PresidioRedactor(entity_operators={"PERSON": "pseudonymize"}, engines=ENGINES)
    [text], _ = run(mixed, f"Jane Doe wrote to {EMAIL}.")
    assert text == "<PERSON_1> wrote to <EMAIL_ADDRESS>."
    assert mixed.config["entity_operators"] == {"PERSON": "pseudonymize"}
    # Unset (or the same as the operator) leaves the config, and so its hash, as before.
    assert "entity_operators" not in plain.config
    same = PresidioRedactor(entity_operators={"PERSON": "replace"}, engines=ENGINES)
    assert same.config == plain.config
    with pytest.raises(ValueError, match="entity_operators names unknown entities"):
        PresidioRedactor(entity_operators={"NAME": "mask"})
    with pytest.raises(ValueError, match="unknown redaction operator 'shuffle'"):
        PresidioRedactor(entity_operators={"PERSON": "shuffle"})


def test_entity_subset_keeps_the_rest() -> None:
    [text], report = run(PresidioRedactor(entities=["EMAIL_ADDRESS"], engines=ENGINES), TEXT)
    assert EMAIL not in text
    assert PHONE in text and CARD in text and "Jane Doe" in text
    assert report.counts == {
        "redact": {"EMAIL_ADDRESS": 1},
        "redact_by_language": {"en:EMAIL_ADDRESS": 1},
    }


def test_pieces_keep_order_metadata_and_empty_text(redactor: PresidioRedactor) -> None:
    pieces = [
        Piece("", {"i": 0}),
        Piece(f"Mail {EMAIL}", {"i": 1}),
        Piece("  \n", {"i": 2}),
        Piece("Nothing to hide here.", {"i": 3}),
    ]
    report = StageReport()
    out = redactor(pieces, report)
    assert [p.metadata for p in out] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert [p.text for p in out] == ["", "Mail <EMAIL_ADDRESS>", "  \n", "Nothing to hide here."]
    assert redactor([], report) == []
    assert report.counts["redact"] == {"EMAIL_ADDRESS": 1}
    assert sum(report.counts["redact_by_language"].values()) == 1


def test_long_text_is_windowed_with_correct_offsets(redactor: PresidioRedactor) -> None:
    filler = "The service restarts cleanly after an upgrade. " * 1000  # ~47k chars
    text = f"{filler}Mail {EMAIL}.\n{filler}Card {CARD}."
    assert len(text) > 2 * redact.MAX_WINDOW_CHARS
    [out], report = run(redactor, text)
    assert out == f"{filler}Mail <EMAIL_ADDRESS>.\n{filler}Card <CREDIT_CARD>."
    assert report.counts == {
        "redact": {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1},
        "redact_by_language": {"en:EMAIL_ADDRESS": 1, "en:CREDIT_CARD": 1},
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"entities": ["EMAIL", "PERSON"]},
            r"unknown redaction entities \['EMAIL'\]; choose from ",
        ),
        ({"entities": []}, "no entities; choose from PERSON, EMAIL_ADDRESS"),
        (
            {"operator": "encrypt"},
            "unknown redaction operator 'encrypt'; choose from replace, mask, hash, drop, "
            "pseudonymize",
        ),
        ({"language": "de"}, "unsupported redaction language 'de'; choose from en, es, ru"),
        ({"languages": ["en", "fr"]}, "unsupported redaction language 'fr'; choose from en, "),
        ({"languages": []}, "no redaction languages; choose from en, es, ru"),
        ({"languages": ["en"], "language": "es"}, "redaction language 'es' is not in languages"),
        ({"score_threshold": 1.5}, "score_threshold must be within 0..1"),
    ],
)
def test_bad_config_raises_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PresidioRedactor(**kwargs)


def test_technical_words_are_not_people(redactor: PresidioRedactor) -> None:
    text = "The FastAPI router validates the JSON body; check Redis and the Platform team."
    assert run(redactor, text)[0] == [text]


def test_no_network_during_analysis(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    recognizer = redact._offline_email_recognizer("en")  # a fresh extractor, first lookup
    start = time.perf_counter()
    assert recognizer.validate_result("someone@mail.example.co.uk")
    [text], _ = run(PresidioRedactor(entities=["EMAIL_ADDRESS"], engines=ENGINES), f"Mail {EMAIL}")
    assert time.perf_counter() - start < 5
    assert text == "Mail <EMAIL_ADDRESS>"
    assert attempts == []
