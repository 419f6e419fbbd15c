"""Training data for fine-tuning a KB's embedding model, built from the KB itself.

A pair is (question, positive chunk): the chunk as the live index version holds it (text
already cleaned and redacted at ingestion), never a raw document. Sources:

- `feedback`: a thumbs-up answer gives (its question, its first cited chunk); a
  thumbs-down answer gives (its question, the chunk a reviewer names): the feedback's
  `supporting_chunk_id` when it has one (skipped when that chunk is no longer in the
  live version, e.g. its document was erased or changed: never replaced by a guess),
  else a chunk id of the live version named in its comment or correction, or else the
  chunk among the passages the answer saw whose text contains the correction. Only the
  newest feedback of each answer counts.
- `testsets`: each case of the named test sets gives (its question, the chunk it refers
  to): `metadata.chunk_id` (generated sets), a reference context equal to or contained
  in a chunk, or a reference document with a single chunk in the live version.
  Ambiguous cases are skipped and counted, never guessed with the model being trained.
- `synthetic`: the cases of the test set the fine-tuning job had the configured judge
  generate for sampled chunks of the live version (`eval.generate.generate_testset`;
  `synthetic` names that set and version), read like `testsets` cases and tagged
  source "synthetic". Before the job runs (the request's validation, the preview) there
  are none yet: `check_trainable(..., to_generate=n)` counts on the n questions asked.

Then: one pair per question (the first source wins: corrections, thumbs-up, test sets,
synthetic questions),
a train/dev split by document (no dev document's chunk appears in train, as positive or
as negative), and hard negatives for train pairs mined from the live index: the
highest-ranked chunks of other (train) documents for the question.

Guard rails (`check_trainable`, HTTP 422 with the figures): at least `MIN_TRAIN_PAIRS`
train and `MIN_DEV_PAIRS` dev pairs, and no question of the KB's quality-gate test set
among the pairs (the gate must judge on questions the model never trained on).

Example::

    ds = build_dataset(rt, kb=kb, sources=["feedback"], testsets=[])
    check_trainable(rt, ds)
    summary(ds)["counts"]   # {"pairs": 48, "train": 38, "dev": 10, "by_source": ...}
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import Answer, AnswerFeedback, Chunk, Document, IndexVersion
from core.errors import InvalidInput, NotFound
from eval import gates
from eval.generate import MAX_SIZE as MAX_SYNTHETIC_QUESTIONS
from eval.testsets import get_cases, get_testset
from index.versions import queryable_version
from retrieval.fusion import detect_language
from retrieval.search import retrieve

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.catalog.models import KnowledgeBase
    from eval.services import EvalServices

SOURCES = ("feedback", "testsets", "synthetic")
# Questions the judge is asked for when the `synthetic` source names no count: about two
# batches of 16 for train plus a dev split, with room for rejected answers.
DEFAULT_SYNTHETIC_QUESTIONS = 100
# MultipleNegativesRankingLoss learns from the other pairs of a batch (in-batch
# negatives): with fewer than two batches of 16 an epoch is one or two gradient steps on
# a handful of contrasts, which moves the model more by noise than by signal, and the dev
# split carved from so little cannot show a gain of 0.01 (one dev question is worth more).
MIN_TRAIN_PAIRS = 32
# One dev question changes recall by 1/dev; below 8 a gain margin of 0.01 is meaningless.
MIN_DEV_PAIRS = 8
DEV_FRACTION = 0.2
# Candidates looked at per train question when mining hard negatives.
NEGATIVE_DEPTH = 10
MAX_HARD_NEGATIVES = 5
# Pairs shown by the dataset preview.
SAMPLE_SIZE = 10

_CHUNK_ID = re.compile(r"\b[0-9a-f]{32}\b")
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


class DatasetRefused(InvalidInput):
    """The dataset cannot be trained on (too few pairs, overlap with the gate's test
    set); `details` carries the figures."""

    code = "finetune_dataset_refused"

    def __init__(self, message: str, *, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Pair:
    question: str
    positive_id: str
    document_id: str
    # The split is keyed on it: a document re-uploaded under its name keeps its side.
    filename: str
    # "feedback_up", "feedback_correction", "testset" or "synthetic".
    source: str
    language: str
    origin: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    negative_ids: list[str] = field(default_factory=list)


@dataclass
class Dataset:
    kb_id: str
    kb_name: str
    index_version: int
    sources: list[str]
    testsets: list[str]
    pairs: list[Pair]
    # Chunk id → text as indexed, for every positive and negative.
    texts: dict[str, str]
    skipped: dict[str, int]
    mined: bool = False
    # The synthetic test set read ({"testset", "version"}), when there is one.
    synthetic: dict[str, Any] | None = None

    @property
    def train(self) -> list[Pair]:
        return [p for p in self.pairs if p.split == "train"]

    @property
    def dev(self) -> list[Pair]:
        return [p for p in self.pairs if p.split == "dev"]

    @property
    def id(self) -> str:
        """Content address: the same KB version, pairs, split and negatives give the same
        id (the GET preview and the job agree unless the KB changed in between)."""
        body = {
            "kb": self.kb_id,
            "version": self.index_version,
            "pairs": sorted(
                (normalise(p.question), p.positive_id, p.split, sorted(p.negative_ids))
                for p in self.pairs
            ),
        }
        raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
        return "ftd_" + hashlib.sha256(raw).hexdigest()[:20]

    def counts(self) -> dict[str, Any]:
        def docs(pairs: list[Pair]) -> int:
            return len({p.document_id for p in pairs})

        return {
            "pairs": len(self.pairs),
            "train": len(self.train),
            "dev": len(self.dev),
            "documents": {"train": docs(self.train), "dev": docs(self.dev)},
            "by_source": dict(sorted(Counter(p.source for p in self.pairs).items())),
            "by_language": dict(sorted(Counter(p.language for p in self.pairs).items())),
            "hard_negatives": sum(len(p.negative_ids) for p in self.train),
            "skipped": dict(sorted(self.skipped.items())),
        }


def normalise(question: str) -> str:
    """How questions are compared (dedup, gate overlap): case, accents' composition,
    punctuation and spacing do not matter."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def check_sources(sources: list[str] | None, testsets: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(s.strip() for s in (sources or ["feedback"]) if s.strip()))
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise InvalidInput(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    if not chosen:
        raise InvalidInput(f"sources is empty; choose from {', '.join(SOURCES)}")
    if "testsets" in chosen and not testsets:
        raise InvalidInput("source 'testsets' needs 'testsets': the names of the sets to use")
    if testsets and "testsets" not in chosen:
        raise InvalidInput("'testsets' is given but 'testsets' is not among the sources")
    return chosen


def check_synthetic(chosen: list[str], synthetic_questions: int | None) -> int | None:
    """How many questions the judge is to write (`DEFAULT_SYNTHETIC_QUESTIONS` unless
    given), or None when `synthetic` is not among the (checked) sources."""
    if "synthetic" not in chosen:
        if synthetic_questions is not None:
            raise InvalidInput(
                "'synthetic_questions' is given but 'synthetic' is not among the sources; "
                "add 'synthetic' to sources or leave synthetic_questions out"
            )
        return None
    if synthetic_questions is None:
        return DEFAULT_SYNTHETIC_QUESTIONS
    if (
        isinstance(synthetic_questions, bool)
        or not isinstance(synthetic_questions, int)
        or not 1 <= synthetic_questions <= MAX_SYNTHETIC_QUESTIONS
    ):
        raise InvalidInput(
            f"synthetic_questions must be between 1 and {MAX_SYNTHETIC_QUESTIONS}, "
            f"got {synthetic_questions!r}"
        )
    return synthetic_questions


# -- collecting ----------------------------------------------------------------------


def version_chunks(version: IndexVersion) -> Any:
    """The version's chunks of current document revisions (id, text, document, hash)."""
    return (
        select(Chunk.id, Chunk.text, Chunk.document_id, Chunk.text_hash, Document.filename)
        .join(Document, Document.id == Chunk.document_id)
        .where(
            Chunk.kb_id == version.kb_id,
            Chunk.config_hash == version.config_hash,
            Chunk.revision_id == Document.current_revision_id,
        )
    )


class _Chunks:
    """Lookups of the live version's chunks, loaded on first need."""

    def __init__(self, s: Session, version: IndexVersion) -> None:
        self.s = s
        self.version = version
        self._all: dict[str, tuple[str, str, str]] | None = None
        self.filenames: dict[str, str] = {}

    @property
    def all(self) -> dict[str, tuple[str, str, str]]:
        if self._all is None:
            rows = self.s.execute(version_chunks(self.version)).all()
            self._all = {r.id: (r.text, r.document_id, r.text_hash) for r in rows}
            self.filenames = {r.document_id: r.filename for r in rows}
        return self._all

    def get(self, chunk_id: str) -> tuple[str, str] | None:
        row = self.all.get(chunk_id)
        return (row[0], row[1]) if row else None

    def by_context(self, context: str, documents: set[str] | None) -> str | None:
        """The one chunk equal to `context`, else the one containing it (None if none or
        several)."""
        wanted = hashlib.sha256(context.encode()).hexdigest()
        candidates = [
            cid
            for cid, (_, doc, h) in self.all.items()
            if h == wanted and (not documents or doc in documents)
        ]
        if len(candidates) == 1:
            return candidates[0]
        needle = _SPACE.sub(" ", context).strip().casefold()
        if len(needle) < 20:
            return None
        candidates = [
            cid
            for cid, (text, doc, _) in self.all.items()
            if (not documents or doc in documents) and needle in _SPACE.sub(" ", text).casefold()
        ]
        return candidates[0] if len(candidates) == 1 else None

    def only_chunk_of(self, documents: set[str]) -> str | None:
        ids = [cid for cid, (_, doc, _) in self.all.items() if doc in documents]
        return ids[0] if len(ids) == 1 else None

    def documents_named(self, refs: list[str]) -> set[str]:
        """Document ids for test-case references (ids or filenames) in this KB."""
        rows = self.s.execute(
            select(Document.id, Document.filename).where(Document.kb_id == self.version.kb_id)
        ).all()
        by_name = {r.filename: r.id for r in rows}
        ids = {r.id for r in rows}
        return {ref if ref in ids else by_name[ref] for ref in refs if ref in ids or ref in by_name}


def _feedback_pairs(s: Session, kb_id: str, chunks: _Chunks, skipped: Counter[str]) -> list[Pair]:
    rows = s.execute(
        select(Answer, AnswerFeedback)
        .join(AnswerFeedback, AnswerFeedback.answer_id == Answer.id)
        .where(Answer.kb_id == kb_id)
        .order_by(AnswerFeedback.created_at, AnswerFeedback.id)
    ).all()
    newest: dict[str, tuple[Answer, AnswerFeedback]] = {}
    for answer, feedback in rows:
        newest[answer.id] = (answer, feedback)
    corrections: list[Pair] = []
    thumbs_up: list[Pair] = []
    for answer, feedback in newest.values():
        origin = {"answer_id": answer.id, "feedback_id": feedback.id}
        if feedback.rating > 0:
            cited = [c.get("chunk_id") for c in answer.citations or [] if c.get("chunk_id")]
            found = next((cid for cid in cited if chunks.get(cid)), None)
            if found is None:
                skipped["feedback_up_no_cited_chunk_in_live_version"] += 1
                continue
            thumbs_up.append(_pair(answer.query, found, chunks, "feedback_up", origin))
            continue
        found = _supporting_chunk(answer, feedback, chunks)
        if found is None:
            skipped[
                "feedback_down_supporting_chunk_not_in_live_version"
                if feedback.supporting_chunk_id
                else "feedback_down_no_supporting_chunk"
            ] += 1
            continue
        corrections.append(_pair(answer.query, found, chunks, "feedback_correction", origin))
    return corrections + thumbs_up


def _supporting_chunk(answer: Answer, feedback: AnswerFeedback, chunks: _Chunks) -> str | None:
    """The chunk the reviewer named in `supporting_chunk_id` if the live version still
    holds it (None if not: the reviewer's choice is never swapped for a guess); without
    one, a chunk id named in the comment or correction, else the passage the answer saw
    that contains the correction."""
    if feedback.supporting_chunk_id:
        return feedback.supporting_chunk_id if chunks.get(feedback.supporting_chunk_id) else None
    for text in (feedback.comment or "", feedback.correction or ""):
        for cid in _CHUNK_ID.findall(text):
            if chunks.get(cid):
                return cid
    correction = _SPACE.sub(" ", feedback.correction or "").strip().casefold()
    if len(correction.split()) < 2:
        return None
    for context in answer.contexts or []:
        cid = context.get("chunk_id")
        found = chunks.get(cid) if cid else None
        if found and correction in _SPACE.sub(" ", found[0]).casefold():
            return cid
    return None


def _testset_pairs(
    s: Session,
    refs: list[tuple[str, int | None]],
    chunks: _Chunks,
    skipped: Counter[str],
    *,
    source: str = "testset",
) -> list[Pair]:
    """Pairs from the cases of test sets given as (name, version or None: the newest)."""
    pairs: list[Pair] = []
    for name, version in refs:
        testset = get_testset(session=s, name=name, version=version)
        for case in get_cases(session=s, testset_id=testset.id):
            documents = chunks.documents_named(list(case.reference_doc_ids or []))
            found = None
            cid = (case.metadata_ or {}).get("chunk_id")
            if cid and chunks.get(cid):
                found = cid
            for context in case.reference_contexts or []:
                if found:
                    break
                found = chunks.by_context(context, documents or None)
            if found is None and documents:
                found = chunks.only_chunk_of(documents)
            if found is None:
                skipped[f"{source}_case_without_a_single_reference_chunk"] += 1
                continue
            origin = {"testset": testset.name, "version": testset.version, "case": case.position}
            pairs.append(_pair(case.question, found, chunks, source, origin))
    return pairs


def _parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition("@")
    return name, int(version) if version else None


def _pair(question: str, chunk_id: str, chunks: _Chunks, source: str, origin: dict) -> Pair:
    found = chunks.get(chunk_id)
    assert found is not None
    return Pair(
        question=question.strip(),
        positive_id=chunk_id,
        document_id=found[1],
        filename=chunks.filenames.get(found[1], found[1]),
        source=source,
        language=detect_language(question),
        origin=origin,
    )


def _dedup(pairs: list[Pair], skipped: Counter[str]) -> list[Pair]:
    seen: set[str] = set()
    kept: list[Pair] = []
    for p in pairs:
        key = normalise(p.question)
        if not key or key in seen:
            skipped["duplicate_question"] += 1
            continue
        seen.add(key)
        kept.append(p)
    return kept


def split_by_document(pairs: list[Pair], *, dev_fraction: float = DEV_FRACTION) -> None:
    """Mark whole documents dev, in a fixed pseudo-random order (a hash of the document's
    filename, unique in its KB), until about `dev_fraction` of the pairs are dev; at least
    one document when there are two or more. Sets `Pair.split` in place."""
    by_doc: dict[str, list[Pair]] = {}
    for p in pairs:
        by_doc.setdefault(p.filename, []).append(p)
    for p in pairs:
        p.split = "train"
    if len(by_doc) < 2:
        return
    order = sorted(by_doc, key=lambda d: hashlib.sha256(d.encode()).hexdigest())
    target = dev_fraction * len(pairs)
    dev = 0
    for i, doc in enumerate(order):
        if dev >= target or i == len(order) - 1:
            break
        for p in by_doc[doc]:
            p.split = "dev"
        dev += len(by_doc[doc])


def mine_negatives(rt: EvalServices, ds: Dataset, kb: KnowledgeBase, per_pair: int) -> None:
    """Hard negatives for train pairs: the live version's best-ranked chunks (the KB's
    default search) from other train documents; dev documents never appear in train."""
    ds.mined = True
    if per_pair <= 0:
        return
    dev_docs = {p.document_id for p in ds.dev}
    positives_of: dict[str, set[str]] = {}
    for p in ds.pairs:
        positives_of.setdefault(normalise(p.question), set()).add(p.positive_id)
    for p in ds.train:
        result = retrieve(
            rt, kb=kb, query=p.question, top_k=NEGATIVE_DEPTH, index_version=ds.index_version
        )
        p.negative_ids = []
        for hit in result.results:
            if (
                hit.document_id == p.document_id
                or hit.document_id in dev_docs
                or hit.chunk_id in positives_of[normalise(p.question)]
                or hit.chunk_id in p.negative_ids
            ):
                continue
            p.negative_ids.append(hit.chunk_id)
            ds.texts[hit.chunk_id] = hit.text
            if len(p.negative_ids) >= per_pair:
                break


def build_dataset(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    sources: list[str] | None,
    testsets: list[str] | None = None,
    hard_negatives: int = 1,
    dev_fraction: float = DEV_FRACTION,
    mine: bool = True,
    synthetic: tuple[str, int] | None = None,
) -> Dataset:
    """The KB's training pairs, split, with hard negatives when `mine` (a search per
    train question; the job always mines, a request's validation does not). `synthetic`:
    the (name, version) of the test set generated for source `synthetic` (None before
    the job generated it: no synthetic pairs)."""
    chosen = check_sources(sources, testsets)
    if synthetic is not None and "synthetic" not in chosen:
        raise InvalidInput("a synthetic test set is given but 'synthetic' is not among the sources")
    if not 0 <= hard_negatives <= MAX_HARD_NEGATIVES:
        raise InvalidInput(
            f"hard_negatives must be between 0 and {MAX_HARD_NEGATIVES}, got {hard_negatives}"
        )
    if not 0.05 <= dev_fraction <= 0.5:
        raise InvalidInput(f"dev_fraction must be between 0.05 and 0.5, got {dev_fraction}")
    names = list(dict.fromkeys(testsets or []))
    skipped: Counter[str] = Counter()
    with rt.db.session() as s:
        version = queryable_version(session=s, kb=kb, number=None)
        if version is None:
            raise NotFound(
                f"knowledge base {kb.name!r} has no live index version; upload documents first"
            )
        chunks = _Chunks(s, version)
        pairs: list[Pair] = []
        if "feedback" in chosen:
            pairs += _feedback_pairs(s, kb.id, chunks, skipped)
        if "testsets" in chosen:
            pairs += _testset_pairs(s, [_parse_ref(r) for r in names], chunks, skipped)
        if synthetic is not None:
            pairs += _testset_pairs(s, [synthetic], chunks, skipped, source="synthetic")
        pairs = _dedup(pairs, skipped)
        texts = {p.positive_id: chunks.all[p.positive_id][0] for p in pairs}
        number = version.number
    ds = Dataset(
        kb_id=kb.id,
        kb_name=kb.name,
        index_version=number,
        sources=chosen,
        testsets=names,
        pairs=pairs,
        texts=texts,
        skipped=dict(skipped),
        synthetic={"testset": synthetic[0], "version": synthetic[1]} if synthetic else None,
    )
    split_by_document(ds.pairs, dev_fraction=dev_fraction)
    if mine:
        mine_negatives(rt, ds, kb, hard_negatives)
    return ds


# -- guard rails ---------------------------------------------------------------------


def _gate_questions(rt: EvalServices, kb: KnowledgeBase) -> tuple[str | None, set[str]]:
    """The KB's quality-gate test set name and its normalised questions."""
    with rt.db.session() as s:
        gate = gates.get_gate(session=s, kb=kb)
        if gate is None:
            return None, set()
        try:
            testset = get_testset(session=s, name=gate.testset, version=gate.testset_version)
        except NotFound:
            return gate.testset, set()
        cases = get_cases(session=s, testset_id=testset.id)
        return gate.testset, {normalise(c.question) for c in cases}


def gate_overlap(rt: EvalServices, ds: Dataset, kb: KnowledgeBase) -> list[str]:
    """Questions of the dataset that are also in the KB's quality-gate test set (every
    question of that set when it is among the requested test sets)."""
    name, questions = _gate_questions(rt, kb)
    if name is None:
        return []
    if any(ref.partition("@")[0] == name for ref in ds.testsets):
        return sorted(questions) or [f"(test set {name!r})"]
    return [p.question for p in ds.pairs if normalise(p.question) in questions]


def check_trainable(
    rt: EvalServices,
    ds: Dataset,
    kb: KnowledgeBase,
    *,
    min_train: int = MIN_TRAIN_PAIRS,
    min_dev: int = MIN_DEV_PAIRS,
    to_generate: int = 0,
) -> None:
    """DatasetRefused (422) with the figures when the dataset must not be trained on.
    `to_generate`: synthetic questions the job will still add (before it ran): the
    counts are then checked against what they could at most reach, and the job checks
    again once they exist."""
    counts = ds.counts()
    overlap = gate_overlap(rt, ds, kb)
    if overlap:
        raise DatasetRefused(
            f"{len(overlap)} question(s) of the quality gate's test set of {kb.name!r} would "
            f"be trained on (e.g. {overlap[0]!r}); the gate must judge on questions the "
            "model never trained on: leave that test set out of 'testsets', or change the "
            "gate's test set",
            details={"counts": counts, "gate_overlap": len(overlap), "examples": overlap[:5]},
        )
    if to_generate:
        if counts["pairs"] + to_generate < min_train + min_dev:
            raise DatasetRefused(
                f"too little training data in {kb.name!r}: {counts['pairs']} pairs now "
                f"plus at most {to_generate} synthetic questions cannot give the "
                f"{min_train} train and {min_dev} dev pairs fine-tuning needs; ask for at "
                f"least {min_train + min_dev - counts['pairs']} synthetic_questions (up to "
                f"{MAX_SYNTHETIC_QUESTIONS}), or collect more feedback",
                details={
                    "counts": counts,
                    "synthetic_questions": to_generate,
                    "min_train_pairs": min_train,
                    "min_dev_pairs": min_dev,
                },
            )
        return
    if counts["train"] < min_train or counts["dev"] < min_dev:
        raise DatasetRefused(
            f"too little training data in {kb.name!r}: {counts['train']} train and "
            f"{counts['dev']} dev pairs (from {counts['pairs']} after de-duplication; "
            f"skipped: {counts['skipped'] or 'none'}); fine-tuning needs at least "
            f"{min_train} train and {min_dev} dev pairs: collect more feedback, or add test "
            "sets with reference contexts",
            details={"counts": counts, "min_train_pairs": min_train, "min_dev_pairs": min_dev},
        )


def dev_corpus(rt: EvalServices, ds: Dataset, *, limit: int) -> dict[str, str]:
    """What dev questions are searched in: every positive and negative of the dataset plus
    up to `limit` other chunks of the live version (a fixed pseudo-random sample), so the
    dev figure costs the same on a KB of any size."""
    corpus = dict(ds.texts)
    with rt.db.session() as s:
        version = s.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == ds.kb_id, IndexVersion.number == ds.index_version
            )
        ).scalar_one()
        rows = s.execute(version_chunks(version)).all()
    others = sorted(
        (r for r in rows if r.id not in corpus),
        key=lambda r: hashlib.sha256(f"{ds.kb_id}:{r.id}".encode()).hexdigest(),
    )
    corpus.update({r.id: r.text for r in others[:limit]})
    return corpus


def summary(ds: Dataset, *, sample: int = SAMPLE_SIZE) -> dict[str, Any]:
    """What the preview shows: id, sources, counts and the first pairs (texts as indexed)."""

    def show(p: Pair) -> dict[str, Any]:
        return {
            "question": p.question,
            "positive": {"chunk_id": p.positive_id, "text": ds.texts.get(p.positive_id, "")},
            "document_id": p.document_id,
            "source": p.source,
            "language": p.language,
            "split": p.split,
            "negative_ids": p.negative_ids,
            "origin": p.origin,
        }

    return {
        "id": ds.id,
        "kb": ds.kb_name,
        "index_version": ds.index_version,
        "sources": ds.sources,
        "testsets": ds.testsets,
        "hard_negatives_mined": ds.mined,
        "synthetic": ds.synthetic,
        "counts": ds.counts(),
        "sample": [show(p) for p in ds.pairs[:sample]],
    }
