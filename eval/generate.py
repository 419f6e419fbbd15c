"""Test sets generated from a knowledge base's documents by the LLM judge.

`submit_generation` validates the request and queues a `testset_generate` job pinned to
the KB's live index version; the job samples that version's chunks (spread over the
documents, seeded by the job id so a retry samples the same ones), asks the judge for
one question and answer per chunk, keeps the answers that validate, and stores them as
the next version of the named test set with source "generated". Each case points at
what it came from: `reference_contexts` is the chunk text, `reference_doc_ids` its
document, and metadata holds `chunk_id`, `index_version` and the judge.

Why not ragas' `TestsetGenerator`: its knowledge-graph pipeline makes four or five LLM
calls per chunk (summary, filter, themes, entities) plus persona and scenario stages
before the first question, fails as a whole when any stage's output does not parse
(routine for small local models) or when a small KB yields no multi-hop clusters, and
returns questions whose contexts are text rather than our chunk ids. Here one call per
case goes through the same ragas `InstructorLLM` and prompt format the judged metrics
use; a bad answer costs one chunk, not the run. Nothing is stored before the end, so a
retried job (endpoint down) starts over on the same sample.

`generate_testset` is the job's work without the job: fine-tuning's `synthetic` source
(`eval.finetune`) calls it with the fine-tuning job's id.

Example::

    job = submit_generation(rt, kb=kb, name="generated", size=20, languages=["en"])
    # … the worker runs it; GET /v1/testsets/generate/{job.id} reports progress
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from core.catalog.models import Chunk, Document, IndexVersion, Job, TestSet
from core.errors import Conflict, InvalidInput, NotFound
from core.jobs import PermanentJobError
from eval.judge import Judge, describe_failure, fatal, local_judge_model, require_judge
from eval.testsets import CaseIn, check_name, create_testset
from index.versions import queryable_version

if TYPE_CHECKING:
    from core.catalog.models import KnowledgeBase
    from core.jobs import JobContext
    from eval.services import EvalServices

GENERATE_JOB = "testset_generate"
MAX_SIZE = 500
# Languages a generated question may be asked in (ISO 639-1 code → the prompt's name).
LANGUAGES = {
    "en": "English",
    "es": "Spanish",
    "ru": "Russian",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "uk": "Ukrainian",
    "zh": "Chinese",
    "ja": "Japanese",
}
# Chunks shorter than this (in words) rarely hold a fact worth a question.
MIN_CHUNK_WORDS = 12
# Judge calls allowed per requested case before the job gives up on the rest.
ATTEMPTS_PER_CASE = 3
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 2000


# -- the prompt (ragas' BasePrompt format: instruction, JSON schema, examples) ---------
class PassageInput(BaseModel):
    passage: str = Field(..., description="A passage from the knowledge base")
    language: str = Field(..., description="The language to write in")
    avoid: list[str] = Field(
        default_factory=list, description="Questions already asked about this passage"
    )


class GeneratedCase(BaseModel):
    question: str = Field(..., description="A question the passage answers")
    answer: str = Field(..., description="The answer, using only facts from the passage")


def _prompt() -> Any:
    from ragas.prompt.metrics.base_prompt import BasePrompt

    class QuestionPrompt(BasePrompt[PassageInput, GeneratedCase]):
        input_model = PassageInput
        output_model = GeneratedCase
        instruction = (
            "Write one question that a user of a knowledge base could ask and that the "
            "given passage answers, and the answer to it. Use only facts stated in the "
            "passage. The question must make sense without seeing the passage (never "
            "'according to the passage'). Write both in the given language. Do not repeat "
            "or rephrase any question listed in 'avoid'."
        )
        examples = [
            (
                PassageInput(
                    passage=(
                        "Worker bees perform a waggle dance to tell their sisters where "
                        "flowers are: the angle of the dance gives the direction relative "
                        "to the sun, and its duration gives the distance."
                    ),
                    language="English",
                ),
                GeneratedCase(
                    question="How do worker bees tell each other how far away flowers are?",
                    answer="By the duration of the waggle dance.",
                ),
            )
        ]

    return QuestionPrompt()


# -- validation ---------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def check_generated(case: GeneratedCase, *, passage: str, grounded: bool) -> str | None:
    """Why a generated case is unusable, or None. `grounded`: the answer must share a
    content word with the passage (skipped when asking in another language)."""
    question, answer = case.question.strip(), case.answer.strip()
    if len(_words(question)) < 3 or len(question) > MAX_QUESTION_CHARS:
        return "the question is missing, too short or too long"
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return "the answer is missing or too long"
    if question.lower() in passage.lower() and len(question) > 0.8 * len(passage):
        return "the question copies the passage"
    if grounded:
        content = {w for w in _words(passage) if len(w) > 3 or w.isdigit()}
        if not content & {w for w in _words(answer) if len(w) > 3 or w.isdigit()}:
            return "the answer shares no content word with the passage"
    return None


# -- submitting ---------------------------------------------------------------------
def check_languages(languages: list[str] | None) -> list[str]:
    if not languages:
        return []
    if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
        raise InvalidInput("field 'languages' must be a list of language codes")
    codes = list(dict.fromkeys(x.strip().lower() for x in languages))
    unknown = [c for c in codes if c not in LANGUAGES]
    if unknown:
        raise InvalidInput(f"unknown language {unknown[0]!r}; choose from {', '.join(LANGUAGES)}")
    return codes


def _chunk_query(version: IndexVersion) -> Any:
    """The version's chunks of current document revisions, long enough to ask about."""
    return (
        select(Chunk.id, Chunk.text, Chunk.document_id)
        .join(Document, Document.id == Chunk.document_id)
        .where(
            Chunk.kb_id == version.kb_id,
            Chunk.config_hash == version.config_hash,
            Chunk.revision_id == Document.current_revision_id,
        )
        .order_by(Chunk.id)
    )


def submit_generation(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    name: str,
    size: int,
    languages: list[str] | None = None,
) -> Job:
    """Validate and queue a generation job (202 for the API): 422 for bad input, 409
    without a judge or without chunks, 404 without a live index version."""
    name = check_name(name)
    if not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise InvalidInput(f"size must be between 1 and {MAX_SIZE}, got {size!r}")
    codes = check_languages(languages)
    judge = require_judge(rt.settings, "generating a test set from documents")
    with rt.db.session() as s:
        version = queryable_version(session=s, kb=kb, number=None)
        if version is None:
            raise NotFound(
                f"knowledge base {kb.name!r} has no live index version yet; upload documents first"
            )
        chunks = s.execute(
            select(func.count()).select_from(_chunk_query(version).subquery())
        ).scalar_one()
        if not chunks:
            raise Conflict(
                f"knowledge base {kb.name!r} (index version {version.number}) has no chunks "
                "to ask about; upload documents first"
            )
        job = rt.jobs.submit(
            s,
            kind=GENERATE_JOB,
            payload={
                "kb_id": kb.id,
                "kb": kb.name,
                "name": name,
                "size": size,
                "languages": codes,
                "index_version": version.number,
                "judge": judge,
            },
            kb_id=kb.id,
        )
        s.flush()
        s.expunge(job)
    return job


# -- the job ------------------------------------------------------------------------
@dataclass
class _Source:
    chunk_id: str
    text: str
    document_id: str


def _sample(sources: list[_Source], seed: str) -> list[_Source]:
    """Every chunk once, in an order that spreads consecutive picks over documents."""
    rng = random.Random(seed)
    by_doc: dict[str, list[_Source]] = {}
    for source in sources:
        by_doc.setdefault(source.document_id, []).append(source)
    groups = list(by_doc.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    order: list[_Source] = []
    while any(groups):
        for group in groups:
            if group:
                order.append(group.pop())
    return order


def _load_sources(
    rt: EvalServices, *, kb_id: str, kb: str, index_version: int
) -> tuple[IndexVersion, list[_Source]]:
    with rt.db.session() as s:
        version = s.execute(
            select(IndexVersion).where(
                IndexVersion.kb_id == kb_id, IndexVersion.number == index_version
            )
        ).scalar_one_or_none()
        if version is None:
            raise PermanentJobError(f"index version {index_version} of {kb!r} no longer exists")
        rows = s.execute(_chunk_query(version)).all()
        s.expunge(version)
    sources = [
        _Source(chunk_id, text, document_id)
        for chunk_id, text, document_id in rows
        if len(_words(text)) >= MIN_CHUNK_WORDS
    ] or [_Source(chunk_id, text, document_id) for chunk_id, text, document_id in rows]
    if not sources:
        raise PermanentJobError(f"knowledge base {kb!r} has no chunks left")
    return version, sources


async def _generate(
    judge: Judge,
    sources: list[_Source],
    *,
    size: int,
    languages: list[str],
    on_progress: Any,
) -> tuple[list[tuple[_Source, GeneratedCase, str | None]], list[str]]:
    """Up to `size` validated cases; also the reasons of rejected attempts."""
    prompt = _prompt()
    kept: list[tuple[_Source, GeneratedCase, str | None]] = []
    problems: list[str] = []
    asked: dict[str, list[str]] = {}  # chunk id → questions already kept for it
    seen: set[str] = set()
    budget = size * ATTEMPTS_PER_CASE
    cursor = 0
    async with judge.llm() as llm:
        while len(kept) < size and budget > 0:
            batch = []
            for _ in range(min(judge.settings.judge_concurrency, size - len(kept), budget)):
                source = sources[cursor % len(sources)]
                language = languages[cursor % len(languages)] if languages else None
                batch.append((source, language))
                cursor += 1
            budget -= len(batch)

            async def ask(source: _Source, language: str | None) -> Any:
                data = PassageInput(
                    passage=source.text,
                    language=LANGUAGES[language] if language else "the language of the passage",
                    avoid=asked.get(source.chunk_id, []),
                )
                try:
                    return await llm.agenerate(prompt.to_string(data), GeneratedCase)
                except Exception as exc:  # noqa: BLE001 - sorted below
                    return exc

            outcomes = await asyncio.gather(*(ask(src, lang) for src, lang in batch))
            for (source, language), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    problem = fatal(outcome)
                    if problem is not None:
                        raise problem from outcome
                    problems.append(describe_failure(outcome))
                    continue
                reason = check_generated(outcome, passage=source.text, grounded=not language)
                key = " ".join(_words(outcome.question))
                if reason is None and key in seen:
                    reason = "the question repeats an earlier one"
                if reason is not None:
                    problems.append(reason)
                    continue
                if len(kept) < size:
                    seen.add(key)
                    asked.setdefault(source.chunk_id, []).append(outcome.question.strip())
                    kept.append((source, outcome, language))
            on_progress(len(kept))
    return kept, problems


@dataclass
class Generated:
    """What `generate_testset` stored: the test set version (detached from its session),
    the judge that wrote it and its usage."""

    testset: TestSet
    judge: str
    requested: int
    usage: dict[str, Any]
    rejected: int

    def message(self) -> str:
        usage = self.usage
        cost = "" if usage["cost_usd"] is None else f", ${usage['cost_usd']}"
        return (
            f"test set {self.testset.name!r} version {self.testset.version}: "
            f"{self.testset.case_count} of {self.requested} cases ({usage['calls']} judge "
            f"calls, {usage['prompt_tokens']}+{usage['completion_tokens']} tokens{cost}; "
            f"{self.rejected} answers rejected)"
        )


def generate_testset(
    rt: EvalServices,
    *,
    kb_id: str,
    kb: str,
    name: str,
    size: int,
    index_version: int,
    job_id: str,
    languages: list[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Generated:
    """Ask the configured judge for `size` cases on chunks of index version
    `index_version` of the KB (sampled with `job_id` as the seed, so a retry samples the
    same ones) and store them as the next version of test set `name`, source "generated",
    its description naming `job_id` (`generated_testset` finds it). `on_progress(done)`
    hears the count of cases kept so far. PermanentJobError without a judge on this
    worker, when the version is gone, or when no answer was usable.

    Example::

        made = generate_testset(rt, kb_id=kb.id, kb=kb.name, name="gen", size=20,
                                index_version=3, job_id=job.id)
        made.testset.version, made.judge   # (1, "openai:gpt-4o-mini")
    """
    try:
        judge = Judge(rt.settings, local_generator=local_judge_model(rt))
    except Conflict as exc:
        raise PermanentJobError(f"this worker has no LLM judge: {exc}") from exc
    version, sources = _load_sources(rt, kb_id=kb_id, kb=kb, index_version=index_version)
    languages = list(languages or [])
    kept, problems = asyncio.run(
        _generate(
            judge,
            _sample(sources, job_id),
            size=size,
            languages=languages,
            on_progress=on_progress or (lambda done: None),
        )
    )
    usage = judge.usage.as_dict()
    if not kept:
        raise PermanentJobError(
            f"the judge ({judge.label}) produced no usable question in {usage['calls']} "
            f"calls (last problem: {problems[-1] if problems else 'none'}); try a larger "
            "RAGOPS_JUDGE_MODEL or RAGOPS_JUDGE_MAX_TOKENS"
        )
    cases = [
        CaseIn(
            question=case.question.strip(),
            reference_answer=case.answer.strip(),
            reference_contexts=[source.text],
            reference_doc_ids=[source.document_id],
            tags=["generated", *([language] if language else [])],
            metadata={
                "chunk_id": source.chunk_id,
                "index_version": version.number,
                "judge": judge.label,
                **({"language": language} if language else {}),
            },
        )
        for source, case, language in kept
    ]
    with rt.db.session() as s:
        testset = create_testset(
            session=s,
            name=name,
            cases=cases,
            description=(
                f"generated from {kb} index v{version.number} by {judge.label} (job {job_id})"
            ),
            source="generated",
            kb_id=kb_id,
        )
        s.expunge(testset)
    return Generated(
        testset=testset, judge=judge.label, requested=size, usage=usage, rejected=len(problems)
    )


def run_generation(rt: EvalServices, payload: dict[str, Any], ctx: JobContext | None = None) -> str:
    """The `testset_generate` job."""
    size = int(payload["size"])

    def progress(done: int) -> None:
        if ctx is not None:
            ctx.progress(done / size, f"{done}/{size} cases")

    made = generate_testset(
        rt,
        kb_id=payload["kb_id"],
        kb=payload["kb"],
        name=payload["name"],
        size=size,
        index_version=payload["index_version"],
        job_id=ctx.job_id if ctx is not None else f"{payload['kb_id']}:{payload['name']}",
        languages=list(payload.get("languages") or []),
        on_progress=progress,
    )
    return made.message()


def generated_testset(rt: EvalServices, job_id: str) -> TestSet | None:
    """The test set version a finished generation job stored (its description names the
    job), or None while it runs."""
    with rt.db.session() as s:
        row = s.execute(
            select(TestSet).where(
                TestSet.source == "generated", TestSet.description.contains(f"(job {job_id})")
            )
        ).scalar_one_or_none()
        if row is not None:
            s.expunge(row)
    return row


def get_generation(rt: EvalServices, job_id: str) -> Job:
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.kind != GENERATE_JOB:
            raise NotFound(
                f"test set generation {job_id!r} not found; start one with "
                "POST /v1/testsets/generate"
            )
        s.expunge(job)
    return job
