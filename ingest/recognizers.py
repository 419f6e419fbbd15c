"""Presidio recognizers the packaged ones lack: Russian national ids (with checksums),
phone numbers in Spanish and Russian formats, and natasha's Russian NER.

Everything here is offline: natasha ships its embeddings and NER weights inside the
wheel. Presidio is imported only when a recognizer is built (see `ingest.redact`).

Context words are matched by Presidio's enhancer as case-insensitive substrings of the
lemmas in the five words before a match. The Russian pipeline has no lemmatizer, so its
"lemmas" are lowercased tokens and context words are stems ("паспорт" matches
"паспорта"). Id patterns that are only numbers score below the redactor's default
threshold (0.4) until a context word lifts them (+0.35, at least 0.4): a bare ten-digit
number is far more often an order number than an INN.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import IbanRecognizer, PhoneRecognizer

# Regions whose national formats PhoneRecognizer tries per language, on top of numbers
# written in international form (+CC …), which every region matches. Presidio's default
# list (US, GB, DE, FR, IL, IN, CA, BR) misses "612 345 678" and "8 900 123-45-67", and
# its US region reads any ten digits with a plausible area code (an INN such as
# 7707083893) as a phone number, so Spanish and Russian text leave it out.
PHONE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR"),
    "es": ("ES", "MX", "AR", "CO"),
    "ru": ("RU",),
    "other": ("US", "GB", "DE", "FR", "ES", "RU"),
}
PHONE_CONTEXT: dict[str, list[str]] = {
    "en": ["phone", "number", "telephone", "cell", "mobile", "call", "fax"],
    "es": ["teléfono", "telefono", "móvil", "movil", "llam", "fax", "tel"],
    "ru": ["телефон", "тел", "звон", "моб", "факс", "сотов"],
    "other": ["phone", "tel", "mobile", "fax"],
}
CARD_CONTEXT: dict[str, list[str]] = {
    "ru": ["карт", "visa", "mastercard", "мир", "amex"],
    "other": ["card", "visa", "mastercard", "amex", "maestro"],
}


def snils_is_valid(value: str) -> bool:
    """СНИЛС: 9 digits plus a 2-digit checksum (weights 9..1, mod 101, 100 → 00).

    Numbers up to 001-001-998 were issued before checksums existed and are rejected.
    """
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != 11:
        return False
    body = digits[:9]
    if int("".join(map(str, body))) <= 1001998:
        return False
    total = sum(d * (9 - i) for i, d in enumerate(body))
    check = total % 101 if total > 101 else total
    if check == 100 or total in (100, 101):
        check = 0
    return check == digits[9] * 10 + digits[10]


_INN_WEIGHTS_10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def inn_is_valid(value: str) -> bool:
    """ИНН: 10 digits (organisation, one check digit) or 12 (person, two check digits)."""
    digits = [int(c) for c in value if c.isdigit()]

    def check(weights: tuple[int, ...]) -> int:
        return sum(w * d for w, d in zip(weights, digits, strict=False)) % 11 % 10

    if len(digits) == 10:
        return check(_INN_WEIGHTS_10) == digits[9]
    if len(digits) == 12:
        return check(_INN_WEIGHTS_11) == digits[10] and check(_INN_WEIGHTS_12) == digits[11]
    return False


class RuSnilsRecognizer(PatternRecognizer):
    """СНИЛС (Russian pension insurance number), checksum-validated.

    "123-456-789 01" is distinctive enough on its own; eleven bare digits need a context
    word such as "СНИЛС".
    """

    PATTERNS = [
        Pattern("SNILS (formatted)", r"(?<![\d-])\d{3}-\d{3}-\d{3}[ -]\d{2}(?![\d-])", 0.85),
        Pattern("SNILS (digits)", r"(?<![\d-])\d{11}(?![\d-])", 0.1),
    ]
    CONTEXT = ["снилс", "страхов", "пенсион", "snils"]

    def __init__(self, supported_language: str = "ru") -> None:
        super().__init__(
            supported_entity="RU_SNILS",
            patterns=self.PATTERNS,
            context=self.CONTEXT,
            supported_language=supported_language,
        )

    def invalidate_result(self, pattern_text: str) -> bool:
        return not snils_is_valid(pattern_text)


class RuInnRecognizer(PatternRecognizer):
    """ИНН (Russian taxpayer number), checksum-validated; always needs a context word.

    One check digit passes one random ten-digit number in ten, so without "ИНН" nearby
    a match stays below the threshold.
    """

    PATTERNS = [
        Pattern("INN (person)", r"(?<![\d-])\d{12}(?![\d-])", 0.3),
        Pattern("INN (organisation)", r"(?<![\d-])\d{10}(?![\d-])", 0.1),
    ]
    CONTEXT = ["инн", "inn", "налогоплательщик", "taxpayer"]

    def __init__(self, supported_language: str = "ru") -> None:
        super().__init__(
            supported_entity="RU_INN",
            patterns=self.PATTERNS,
            context=self.CONTEXT,
            supported_language=supported_language,
        )

    def invalidate_result(self, pattern_text: str) -> bool:
        return not inn_is_valid(pattern_text)


class RuPassportRecognizer(PatternRecognizer):
    """Russian internal passport ("45 10 123456", "4510 № 123456") and the foreign
    travel passport ("75 1234567"). No checksum exists, so a context word is required."""

    PATTERNS = [
        Pattern(
            "RU passport (internal)",
            r"(?<![\d-])\d{2}\s?\d{2}\s?(?:(?:№|N|номер)\s?)?\d{6}(?![\d-])",
            0.1,
        ),
        Pattern("RU passport (foreign)", r"(?<![\d-])\d{2}\s?(?:№\s?)?\d{7}(?![\d-])", 0.05),
    ]
    CONTEXT = ["паспорт", "passport", "pasaporte", "серия", "загран"]

    def __init__(self, supported_language: str = "ru") -> None:
        super().__init__(
            supported_entity="RU_PASSPORT",
            patterns=self.PATTERNS,
            context=self.CONTEXT,
            supported_language=supported_language,
        )


def iban_recognizer(language: str) -> IbanRecognizer:
    """Presidio's IBAN recognizer, matching the IBAN itself case-sensitively.

    Its regex runs with IGNORECASE, so a group of up to four letters after the IBAN
    ("… 7265 cada mes", "… 4 and") joins the match, fails the mod-97 check, and the
    whole IBAN is missed. IBANs are written in capitals; words after them are not.
    """
    pattern = Pattern("IBAN Generic (case-sensitive)", IBAN_REGEX, 0.5)
    return _PrecheckedIbanRecognizer(supported_language=language, patterns=[pattern])


# Group 1 is the IBAN proper; the optional groups let Presidio try shorter endings.
IBAN_REGEX = (
    r"(?<![A-Z0-9])(?-i:([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})"
    r"((?:[ -]?[A-Z0-9]{4})?)((?:[ -]?[A-Z0-9]{1,3})?))(?![A-Z0-9])"
)
# What every IBAN match starts with, compiled once: most texts hold none.
_IBAN_START = re.compile(r"(?<![A-Z0-9])[A-Z]{2}[0-9]{2}")


class _PrecheckedIbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer, skipped for texts without an IBAN's first four
    characters. Its own matching recompiles the pattern on every call (a regex-cache
    lookup whose flag arithmetic alone was 8% of the redact stage's time)."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        if _IBAN_START.search(text) is None:
            return []
        return super().analyze(text, entities, nlp_artifacts, regex_flags)


def localized_phone_recognizer(language: str) -> PhoneRecognizer:
    key = language if language in PHONE_REGIONS else "other"
    return PhoneRecognizer(
        supported_language=language,
        supported_regions=PHONE_REGIONS[key],
        context=PHONE_CONTEXT[key],
    )


def load_natasha_tagger() -> Any:
    """natasha's news NER tagger (~1 s, ~30 MB of embeddings); its owner keeps it."""
    from natasha import NewsEmbedding, NewsNERTagger

    return NewsNERTagger(NewsEmbedding())


class NatashaNerRecognizer(EntityRecognizer):
    """Russian PERSON / LOCATION / ORGANIZATION from natasha's news NER (slovnet).

    There is no Russian spaCy model on PyPI; natasha's weights ship in its wheel. Its
    spans get spaCy's default NER score (0.85) so every language's NER is judged alike.
    """

    LABELS = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
    SCORE = 0.85

    def __init__(
        self, supported_language: str = "ru", *, tagger: Callable[[], Any] = load_natasha_tagger
    ) -> None:
        self._tagger = tagger  # returns the (shared) tagger; set before load() runs
        super().__init__(
            supported_entities=list(self.LABELS.values()),
            supported_language=supported_language,
            name="NatashaNerRecognizer",
        )

    def load(self) -> None:
        self._tagger()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        wanted = set(entities) & set(self.supported_entities)
        if not wanted or not text.strip():
            return []
        results = []
        for span in self._tagger()(text).spans:
            entity = self.LABELS.get(span.type)
            if entity in wanted:
                results.append(
                    RecognizerResult(
                        entity_type=entity,
                        start=span.start,
                        end=span.stop,
                        score=self.SCORE,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return results
