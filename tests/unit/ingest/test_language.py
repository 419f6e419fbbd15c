"""Language detection for redaction: en / es / ru / other, offline and deterministic."""

from __future__ import annotations

import time

import pytest

from ingest.language import detect_document_language, detect_language
from tests.unit.ingest.redaction_cases_en import CASES as CASES_EN
from tests.unit.ingest.redaction_cases_es import CASES as CASES_ES
from tests.unit.ingest.redaction_cases_ru import CASES as CASES_RU

pytestmark = pytest.mark.unit

SNIPPETS = {
    "en": [t for t, _ in CASES_EN],
    "es": [t for t, _ in CASES_ES],
    "ru": [t for t, _ in CASES_RU],
}
# Short texts as parsers emit them: headings, list items, table cells.
SHORT = [
    ("Installation guide", "en"),
    ("How to reset your password", "en"),
    ("Release notes for version 2.4", "en"),
    ("Guía de instalación", "es"),
    ("Cómo restablecer la contraseña", "es"),
    ("¿Qué hay de nuevo?", "es"),
    ("Notas de la versión 2.4", "es"),
    ("Руководство по установке", "ru"),
    ("Как сбросить пароль", "ru"),
    ("Что нового в версии 2.4", "ru"),
]
OTHER = [
    "Résumé de la réunion avec le client à Paris et les prochaines étapes.",
    "Die Sitzung wurde auf nächste Woche verschoben, bitte den Kalender prüfen.",
    "A reunião com o cliente foi adiada para a próxima semana, não esqueça.",
    "Привіт, як справи? Зустріч перенесли на наступний тиждень.",
    "会議は来週に延期されました。",
    "الاجتماع تم تأجيله إلى الأسبوع المقبل",
    "12345 67890 2024-03-15",
    "",
]


def test_accuracy_on_labelled_snippets() -> None:
    total = correct = 0
    for lang, texts in SNIPPETS.items():
        got = [detect_language(t) for t in texts]
        wrong = [(g, t) for g, t in zip(got, texts, strict=True) if g != lang]
        print(f"{lang}: {len(texts) - len(wrong)}/{len(texts)} {wrong}")
        total += len(texts)
        correct += len(texts) - len(wrong)
    assert correct / total >= 0.95


def test_short_texts() -> None:
    got = [detect_language(t) for t, _ in SHORT]
    accuracy = sum(g == lang for g, (_, lang) in zip(got, SHORT, strict=True)) / len(SHORT)
    assert accuracy >= 0.9, got


@pytest.mark.parametrize("text", OTHER)
def test_other_languages_and_no_text(text: str) -> None:
    assert detect_language(text) == "other"


def test_too_short_to_judge_gives_the_default() -> None:
    assert detect_language("Kubernetes") == "other"
    assert detect_language("Kubernetes", default="es") == "es"
    assert detect_language("   ", default="en") == "en"
    assert detect_language("Иван", default="es") == "ru"  # the script decides alone


def test_deterministic_and_fast() -> None:
    texts = [t for texts in SNIPPETS.values() for t in texts]
    first = [detect_language(t) for t in texts]
    start = time.perf_counter()
    again = [detect_language(t) for t in texts]
    elapsed = time.perf_counter() - start
    assert again == first
    assert elapsed / len(texts) < 0.005  # well under a millisecond per snippet here


def test_document_language_is_the_majority_by_characters() -> None:
    long_ru = "Сервер Kubernetes каждую ночь перезапускает поды, чтобы освободить память."
    short_en = ["Overview", "See the next section for details."]
    assert detect_document_language([long_ru, *short_en]) == "ru"
    assert detect_document_language([*SNIPPETS["es"][:3], SNIPPETS["en"][0]]) == "es"
    assert detect_document_language([]) == "other"
    assert detect_document_language(["", "  "], default="en") == "en"
