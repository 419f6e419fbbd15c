"""What PII redaction costs retrieval and answers, per entity type and operator, on the
multilingual QA set (`tests/bench/data/mlqa`: 3,150 en/es/ru passages; see its README).

The real redactor (`ingest.redact.PresidioRedactor`: spaCy for en/es, natasha for ru,
the pattern recognizers) analyses every passage (title + text) once, for the default
entities plus LOCATION; every variant below is applied to those same spans by the real
anonymizer path, so NER runs once. Variants: no redaction; each entity type alone with
`replace`; PERSON with `pseudonymize`; the default entities with `replace` (today's
default); the default entities with PERSON pseudonymised.

Per variant only the passages whose text changed are re-embedded (the others keep their
unredacted vectors), BM25 is rebuilt, and hybrid retrieval is scored the way the service
scores it for multilingual-e5-small (`retrieval.fusion.fusion_policy`: convex fusion, the
dense weight of the query's detected language) on the test split: recall@1/5/10 and
MRR@10 over all questions and over the affected ones (a gold passage changed), with the
affected questions' unredacted figures beside them. Queries are not redacted (the service
redacts documents only).

The set has no answer strings (every source answers with a whole passage), so
"answerable" is measured on the question instead: the share of affected questions whose
words found in the unredacted gold passage(s) are all still there after redaction (a
question about "Mozart" whose passage now reads `<PERSON_1>` is unanswerable for any
generator). "Conflated" is the share of affected questions whose gold passage had two or
more distinct values of one entity type turned into fewer distinct placeholders (who did
what is lost).

Analysis results and vectors are cached under `data/bench-mlqa/` (git-ignored).

    .venv/bin/python -m tests.bench.bench_redaction_retrieval
        [--json tests/bench/results/redaction_retrieval.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.config import DEFAULT_REDACT_ENTITIES, OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)
ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("RAGOPS_MODEL_CACHE_DIR", str(ROOT / "data" / "models"))

from core.types import Piece, StageReport  # noqa: E402
from ingest.redact import SUPPORTED_ENTITIES, PresidioEngines, PresidioRedactor  # noqa: E402
from retrieval.bm25 import Bm25Index, tokenize  # noqa: E402
from retrieval.fusion import detect_language, fuse_scores, fusion_policy  # noqa: E402
from tests.bench.bench_retrieval_mlqa import CACHE, DEPTH, Corpus, metrics  # noqa: E402
from tests.bench.mlqa import LANGUAGES, Passage, Question, load_passages, load_questions  # noqa: E402

MODEL = "multilingual-e5-small"
DEFAULT = tuple(DEFAULT_REDACT_ENTITIES)
# Analysed once; LOCATION is opt-in in the service but measured here too.
ANALYSED = (*DEFAULT, *(("LOCATION",) if "LOCATION" in SUPPORTED_ENTITIES else ()))
TOP_VALUES = 5  # most frequent values shown per entity type and language (public data)


class Encoder(Protocol):
    digest: str

    def encode(self, texts: list[str], *, kind: str = "passage") -> np.ndarray: ...


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Variant:
    """A redaction policy: `entities` (empty: no redaction), the operator for all of
    them and per-entity exceptions, as `RedactionConfig` takes them."""

    name: str
    entities: tuple[str, ...] = ()
    operator: str = "replace"
    entity_operators: tuple[tuple[str, str], ...] = ()


def variants(entities: Sequence[str] = ANALYSED) -> list[Variant]:
    out = [Variant("none")]
    out += [Variant(f"{e} replace", (e,)) for e in entities]
    out.append(Variant("PERSON pseudonymize", ("PERSON",), "pseudonymize"))
    default = tuple(e for e in DEFAULT if e in entities)
    out.append(Variant("default replace", default))
    out.append(
        Variant("default, PERSON pseudonymize", default, "replace", (("PERSON", "pseudonymize"),))
    )
    return out


# --- analysis: NER and patterns once per passage -------------------------------------


def analyse(
    texts: Sequence[str],
    languages: Sequence[str],
    engines: PresidioEngines,
    entities: Sequence[str] = ANALYSED,
) -> tuple[list[str], list[list[Span]]]:
    """The analysis language and the spans the real redactor finds in each text (each
    text is one document whose declared language is `languages[i]`)."""
    redactor = PresidioRedactor(entities=list(entities), engines=engines)
    langs = [
        redactor.piece_languages([Piece(t, {"language": lang})])[0]
        for t, lang in zip(texts, languages, strict=True)
    ]
    found = redactor.find(list(texts), langs)
    spans = [[Span(r.entity_type, r.start, r.end, round(r.score, 4)) for r in rs] for rs in found]
    return langs, spans


def cached_analysis(
    texts: Sequence[str], languages: Sequence[str], engines: PresidioEngines
) -> tuple[list[str], list[list[Span]], float]:
    """`analyse` over the corpus, cached by the texts and the redactor's config."""
    config = PresidioRedactor(entities=list(ANALYSED), engines=engines).config
    key = hashlib.sha256(
        json.dumps([config, list(texts), list(languages)], ensure_ascii=False).encode()
    ).hexdigest()[:16]
    path = CACHE / f"redaction-analysis-{key}.json"
    if path.exists():
        data = json.loads(path.read_text())
        spans = [[Span(*s) for s in row] for row in data["spans"]]
        return data["languages"], spans, data["seconds"]  # what the analysis cost when run
    t0 = time.perf_counter()
    langs, spans = analyse(texts, languages, engines)
    seconds = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    rows = [[[s.entity, s.start, s.end, s.score] for s in row] for row in spans]
    path.write_text(json.dumps({"languages": langs, "spans": rows, "seconds": seconds}))
    return langs, spans, seconds


# --- variants: replay the analysis through the real anonymizer -----------------------


class ReplayRedactor(PresidioRedactor):
    """The real redact stage, fed spans found earlier instead of running the recognizers:
    every operator variant sees the same analysis. `spans` maps a text to its spans."""

    def __init__(self, spans: dict[str, list[Span]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spans = spans

    def find(self, texts: list[str], languages: list[str] | None = None) -> list[Any]:
        from presidio_analyzer import RecognizerResult

        return [
            [
                RecognizerResult(s.entity, s.start, s.end, s.score)
                for s in self._spans[t]
                if s.entity in self.entities
            ]
            for t in texts
        ]


def redact(
    variant: Variant,
    texts: Sequence[str],
    languages: Sequence[str],
    spans: Sequence[list[Span]],
    engines: PresidioEngines,
) -> tuple[list[str], Counter[str]]:
    """Each text as `variant` redacts it (one document per text) and the spans replaced
    per "language:ENTITY"."""
    if not variant.entities:
        return list(texts), Counter()
    redactor = ReplayRedactor(
        dict(zip(texts, spans, strict=True)),
        entities=list(variant.entities),
        operator=variant.operator,
        entity_operators=dict(variant.entity_operators),
        engines=engines,
    )
    out, counts = [], Counter[str]()
    for text, lang, found in zip(texts, languages, spans, strict=True):
        if not any(s.entity in variant.entities for s in found):
            out.append(text)  # nothing to replace: the stage returns the text as is
            continue
        report = StageReport()
        out.append(redactor([Piece(text, {"language": lang})], report)[0].text)
        counts.update(report.counts.get("redact_by_language", {}))
    return out, counts


def conflated(text: str, redacted: str, spans: Sequence[Span], entities: Sequence[str]) -> bool:
    """Two or more distinct values of one entity type became fewer distinct placeholders."""
    for entity in set(entities):
        values = {
            " ".join(text[s.start : s.end].casefold().split()) for s in spans if s.entity == entity
        }
        placeholders = set(re.findall(rf"<{entity}(?:_\d+)?>", redacted))
        if len(values) >= 2 and len(placeholders) < len(values):
            return True
    return False


# --- vectors: embed each distinct text once ------------------------------------------


class VectorCache:
    """Vectors by (kind, text), persisted per model digest; `embedded` lists the texts
    this run had to encode (the bookkeeping the smoke test checks)."""

    def __init__(self, encoder: Encoder, path: Path | None) -> None:
        self.encoder = encoder
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.embedded: list[str] = []
        if path is not None and path.exists():
            data = np.load(path)
            self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(kind: str, text: str) -> str:
        return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()

    def get(self, texts: Sequence[str], kind: str) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self.key(kind, t) not in self.vectors))
        if missing:
            for t, v in zip(missing, self.encoder.encode(missing, kind=kind), strict=True):
                self.vectors[self.key(kind, t)] = v
            self.embedded += missing
            self.save()
        return np.stack([self.vectors[self.key(kind, t)] for t in texts])

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)


# --- one variant's index and scores --------------------------------------------------


@dataclass
class VariantRun:
    variant: Variant
    texts: list[str]
    changed: list[int]  # rows whose text the variant changed
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class Bench:
    """The corpus, its analysis and the unredacted index parts every variant starts from."""

    corpus: Corpus
    questions: list[Question]  # the ones scored (test split)
    languages: list[str]  # analysis language per passage
    spans: list[list[Span]]
    cache: VectorCache
    engines: PresidioEngines
    base_vectors: np.ndarray = field(init=False)
    base_tokens: list[list[str]] = field(init=False)
    query_vectors: np.ndarray = field(init=False)
    query_languages: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.base_vectors = self.cache.get(self.corpus.texts, "passage")
        self.base_tokens = [tokenize(t) for t in self.corpus.texts]
        self.query_vectors = self.cache.get([q.question for q in self.questions], "query")
        # The service weighs the dense list by the query's detected language.
        self.query_languages = [detect_language(q.question) for q in self.questions]

    def run(self, variant: Variant) -> VariantRun:
        texts, counts = redact(
            variant,
            self.corpus.texts,
            [p.language for p in self.corpus.passages],
            self.spans,
            self.engines,
        )
        changed = [
            i for i, (a, b) in enumerate(zip(self.corpus.texts, texts, strict=True)) if a != b
        ]
        return VariantRun(variant, texts, changed, counts)

    def rankings(self, run: VariantRun) -> dict[str, list[tuple[int, float]]]:
        """Hybrid rankings of every question over the variant's corpus."""
        vectors, tokens = self.base_vectors, self.base_tokens
        if run.changed:
            vectors = self.base_vectors.copy()
            vectors[run.changed] = self.cache.get([run.texts[i] for i in run.changed], "passage")
            tokens = list(self.base_tokens)
            for i in run.changed:
                tokens[i] = tokenize(run.texts[i])
        bm25 = Bm25Index.from_tokens(tokens)
        policy = fusion_policy(MODEL)
        scores = self.query_vectors @ vectors.T
        out = {}
        for q, lang, row in zip(self.questions, self.query_languages, scores, strict=True):
            top = np.argsort(-row, kind="stable")[:DEPTH]
            dense = [(int(i), float(row[i])) for i in top]
            lexical = bm25.search(q.question, DEPTH)
            out[q.id] = fuse_scores(dense, lexical, policy.weight(lang), policy.method)
        return out


def score(
    bench: Bench,
    run: VariantRun,
    ranked: dict[str, list[tuple[int, float]]],
    baseline: dict[str, list[tuple[int, float]]],
) -> dict[str, Any]:
    """Per language: metrics over all questions and over the affected ones (redacted and
    unredacted), answerable and conflated shares, and the affected ones per source."""
    corpus = bench.corpus
    changed = set(run.changed)
    answerable: dict[str, bool] = {}
    conflation: dict[str, bool] = {}
    for q in bench.questions:
        rows = [corpus.row[r] for r in q.relevant_ids]
        if not changed.intersection(rows):
            continue
        asked = set(tokenize(q.question))
        before = asked & {t for r in rows for t in bench.base_tokens[r]}
        after = asked & {t for r in rows for t in tokenize(run.texts[r])}
        answerable[q.id] = before <= after
        conflation[q.id] = any(
            conflated(corpus.texts[r], run.texts[r], bench.spans[r], run.variant.entities)
            for r in rows
        )

    def table(qs: list[Question], lists: dict[str, Any]) -> dict[str, float]:
        judged = [corpus.judge(q, lists[q.id]) for q in qs]
        return metrics(judged, [len(q.relevant_ids) for q in qs])

    def share(flags: dict[str, bool], qs: list[Question]) -> float | None:
        return round(sum(flags[q.id] for q in qs) / len(qs), 3) if qs else None

    out: dict[str, Any] = {}
    for language in LANGUAGES:
        chosen = [q for q in bench.questions if q.language == language]
        affected = [q for q in chosen if q.id in answerable]
        sources = sorted({q.source for q in affected})
        by_source = {}
        for source in sources:
            qs = [q for q in affected if q.source == source]
            redacted, unredacted = table(qs, ranked), table(qs, baseline)
            by_source[source] = {
                "n": len(qs),
                "recall@5": [unredacted["recall@5"], redacted["recall@5"]],
                "mrr@10": [unredacted["mrr@10"], redacted["mrr@10"]],
                "answerable": share(answerable, qs),
            }
        out[language] = {
            "changed_passages": sum(corpus.passages[i].language == language for i in changed),
            "all": table(chosen, ranked),
            "affected": table(affected, ranked),
            "affected_unredacted": table(affected, baseline),
            "answerable": share(answerable, affected),
            "conflated": share(conflation, affected),
            # [unredacted, redacted] per source: BoolQ is Wikipedia, the rest manuals.
            "affected_by_source": by_source,
        }
    return out


def entity_counts(
    corpus: Corpus, spans: Sequence[list[Span]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per language and entity type: passages holding one, spans, the commonest values."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for language in LANGUAGES:
        rows = [i for i, p in enumerate(corpus.passages) if p.language == language]
        per: dict[str, dict[str, Any]] = {}
        for entity in ANALYSED:
            hits = [(i, s) for i in rows for s in spans[i] if s.entity == entity]
            values = Counter(corpus.texts[i][s.start : s.end] for i, s in hits)
            holding = {i for i, _ in hits}
            per[entity] = {
                "passages": len(holding),
                "by_source": dict(Counter(corpus.passages[i].source for i in holding)),
                "spans": len(hits),
                "top_values": [v for v, _ in values.most_common(TOP_VALUES)],
            }
        out[language] = per
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()

    from ingest.embed import Embedder

    passages: list[Passage] = load_passages()
    corpus = Corpus(passages)
    questions = load_questions("test")
    engines = PresidioEngines()
    langs, spans, analysis_s = cached_analysis(
        corpus.texts, [p.language for p in passages], engines
    )
    embedder = Embedder(MODEL)
    embedder.warm_up()
    cache = VectorCache(embedder, CACHE / f"redaction-{embedder.digest[:16]}.npz")
    t0 = time.perf_counter()
    bench = Bench(corpus, questions, langs, spans, cache, engines)
    baseline_run = bench.run(Variant("none"))
    baseline = bench.rankings(baseline_run)
    runs = [bench.run(v) for v in variants()]
    # One encode call for every redacted text of every variant (length-sorted batches).
    cache.get(list(dict.fromkeys(r.texts[i] for r in runs for i in r.changed)), "passage")
    embed_s = time.perf_counter() - t0

    results: dict[str, Any] = {
        "model": MODEL,
        "fusion": {
            "method": fusion_policy(MODEL).method,
            "dense_weights": fusion_policy(MODEL).dense_weights,
        },
        "passages": {lang: sum(p.language == lang for p in passages) for lang in LANGUAGES},
        "test_questions": {lang: sum(q.language == lang for q in questions) for lang in LANGUAGES},
        "analysed_entities": list(ANALYSED),
        "entities": entity_counts(corpus, spans),
        "variants": {},
    }
    for run in runs:
        ranked = baseline if not run.changed else bench.rankings(run)
        results["variants"][run.variant.name] = {
            "entities": list(run.variant.entities),
            "operator": run.variant.operator,
            "entity_operators": dict(run.variant.entity_operators),
            "re_embedded": len(run.changed),
            "replaced": dict(sorted(run.counts.items())),
            "results": score(bench, run, ranked, baseline),
        }
    results["seconds"] = {
        "analysis_when_run": round(analysis_s, 1),
        "embedding_this_run": round(embed_s, 1),
        "texts_embedded_this_run": len(cache.embedded),
        "total": round(time.perf_counter() - started, 1),
    }
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


def print_table(results: dict[str, Any]) -> None:
    print(f"passages {results['passages']}; test questions {results['test_questions']}")
    print("\npassages holding each entity type (spans):")
    for lang, per in results["entities"].items():
        cells = ", ".join(
            f"{e} {c['passages']} ({c['spans']})" for e, c in per.items() if c["spans"]
        )
        print(f"  {lang}: {cells}")
    print(
        "\nR@5 / MRR@10: all questions | affected n: redacted (unredacted) | answerable | conflated"
    )
    for name, v in results["variants"].items():
        cells = []
        for lang in LANGUAGES:
            r = v["results"][lang]
            a, b = r["affected"], r["affected_unredacted"]
            cell = f"{lang} {r['all']['recall@5']:.3f}/{r['all']['mrr@10']:.3f} | n={a['n']}"
            if a["n"]:
                cell += (
                    f": {a['recall@5']:.3f}/{a['mrr@10']:.3f} "
                    f"({b['recall@5']:.3f}/{b['mrr@10']:.3f}) | {r['answerable']:.2f} | "
                    f"{r['conflated']:.2f}"
                )
            cells.append(cell)
        print(f"{name:<30} " + "\n{:<31}".format("").join(cells))
    print("\naffected questions per source, R@5 / MRR@10 unredacted -> redacted | answerable")
    for name, v in results["variants"].items():
        if "PERSON" not in v["entities"]:
            continue
        for lang in LANGUAGES:
            for source, r in v["results"][lang]["affected_by_source"].items():
                (r0, r1), (m0, m1) = r["recall@5"], r["mrr@10"]
                print(
                    f"{name:<30} {lang} {source:<17} n={r['n']:<4} "
                    f"{r0:.3f}/{m0:.3f} -> {r1:.3f}/{m1:.3f} | {r['answerable']:.2f}"
                )
    print("\nseconds:", json.dumps(results["seconds"]))


if __name__ == "__main__":
    main()
