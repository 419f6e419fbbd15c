"""The answer chain: retrieve → keep relevant passages → render the prompt → generate →
cite → record.

Relevance gate: a passage reaches the generator only if its dense cosine similarity to
the question is at least the threshold (request `score_threshold`, else
RAGOPS_ANSWER_SCORE_THRESHOLD). Hybrid and reranked `score`s rank well but are relative
(the best hit of an unrelated question still scores 1), so the gate uses the absolute
dense similarity. With no passage left the answer is "I don't know", without calling the
generator, and is still recorded.

Every answer is stored (`Answer`) with its query, passages, generator, prompt version and
index version, and gets an id that feedback refers to.

Example::

    plan = plan_answer(rt, kb=kb, query="How fast is a pyroclastic flow?")
    result = run_answer(rt, plan)            # or: for kind, data in stream_answer(rt, plan)
    result["answer"], result["citations"][0]["filename"]
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.catalog.models import Answer, AnswerSettings
from core.errors import InvalidInput
from retrieval.calibration import dense_score
from retrieval.generators import check_generator_name
from retrieval.generators.base import Generator, Message, Passage, Usage
from retrieval.prompts import DEFAULT_PROMPT, parse_ref, render, resolve_prompt
from retrieval.search import retrieve

if TYPE_CHECKING:
    from core.catalog.models import KnowledgeBase
    from retrieval.services import RetrievalServices

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def dont_know(kb_name: str) -> str:
    return (
        f"I don't know: nothing in knowledge base {kb_name!r} is relevant enough to answer "
        "this question."
    )


@dataclass
class AnswerPlan:
    """Everything decided before generation starts (so a stream can fail fast, before its
    first byte, on a bad generator, prompt or knowledge base)."""

    kb_id: str
    kb_name: str
    query: str
    generator: Generator
    prompt_name: str
    prompt_version: int
    index_version: int | None
    passages: list[Passage]
    messages: list[Message]
    max_tokens: int
    temperature: float
    channel: str
    started: float = field(default_factory=time.perf_counter)
    # The answering version's embedding model (what extractive scores with).
    embedding_model: str | None = None
    # Token counts the generator reported for this answer (see `Generator`); filled by
    # run_answer / stream_answer, left empty when the generator was not called.
    usage: Usage = field(default_factory=Usage)
    # Set by retrieval.ab when an A/B test's arm serves the request.
    ab_test_id: str | None = None
    ab_test: str | None = None
    arm: str | None = None
    ab_subject: str | None = None

    @property
    def knows(self) -> bool:
        return bool(self.passages)


def answer_settings(rt: RetrievalServices, *, kb_id: str) -> AnswerSettings | None:
    with rt.db.session() as s:
        return s.get(AnswerSettings, kb_id)


def _relevance(rt: RetrievalServices, model: str, query: str, hits: Sequence[Any]) -> list[float]:
    """Dense relevance per hit on `model`'s calibrated scale (`retrieval.calibration`):
    from the retrieval's cosine where it has one, else embedded here (a hit only BM25
    found). `model` is the answering index version's, which during a rollout to a new
    model may differ from the KB's configured one."""
    values: list[float | None] = []
    for hit in hits:
        dense = (getattr(hit, "scores", None) or {}).get("dense")
        values.append(None if dense is None else float(dense))
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        embedder = rt.embedder(model)
        question = embedder.encode([query], kind="query")[0]
        sims = embedder.encode([hits[i].text for i in missing]) @ question
        for i, sim in zip(missing, np.asarray(sims).tolist(), strict=True):
            values[i] = float(sim)
    return [dense_score(model, float(v)) for v in values]  # type: ignore[arg-type]


def plan_answer(
    rt: RetrievalServices,
    *,
    kb: KnowledgeBase,
    query: str,
    top_k: int | None = None,
    generator: str | None = None,
    prompt: str | None = None,
    prompt_version: int | None = None,
    index_version: int | None = None,
    score_threshold: float | None = None,
    filters: dict[str, Any] | None = None,
    history: Sequence[Message] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    channel: str = "api",
    mode: str | None = None,
) -> AnswerPlan:
    settings = rt.settings
    started = time.perf_counter()
    query = query.strip()
    if not query:
        raise InvalidInput("query is empty; send the question to answer")
    defaults = answer_settings(rt, kb_id=kb.id)
    name = check_generator_name(
        generator or (defaults.generator if defaults else None) or settings.answer_generator
    )
    if prompt is not None:
        prompt_name, version = parse_ref(prompt)
        version = prompt_version if prompt_version is not None else version
    elif defaults is not None and defaults.prompt_name:
        prompt_name, version = defaults.prompt_name, defaults.prompt_version
    else:
        prompt_name, version = DEFAULT_PROMPT, None
    with rt.db.session() as s:
        record = resolve_prompt(session=s, name=prompt_name, version=version)
    result = retrieve(
        rt,
        kb=kb,
        query=query,
        top_k=top_k or settings.answer_top_k,
        filters=filters,
        index_version=index_version,
        mode=mode,
    )
    threshold = settings.answer_score_threshold if score_threshold is None else score_threshold
    # The answering version's model (a rollout to a new model may still serve the old).
    model = result.embedding_model or (kb.config or {}).get("embedding_model")
    model = model or settings.embedding_model
    gen = rt.generator(name, embedding_model=model)
    relevance = _relevance(rt, model, query, result.results)
    passages = []
    for hit, rel in zip(result.results, relevance, strict=True):
        if rel < threshold:
            continue
        passages.append(
            Passage(
                index=len(passages) + 1,
                chunk_id=hit.chunk_id,
                document_id=hit.document_id,
                filename=hit.filename,
                text=hit.text,
                score=float(hit.score),
                relevance=round(rel, 6),
                metadata=dict(hit.metadata or {}),
            )
        )
    messages = render(record, query=query, passages=passages, history=history)
    return AnswerPlan(
        kb_id=kb.id,
        kb_name=kb.name,
        query=query,
        generator=gen,
        prompt_name=record.name,
        prompt_version=record.version,
        index_version=result.index_version,
        passages=passages,
        messages=messages,
        max_tokens=max_tokens or settings.answer_max_tokens,
        temperature=settings.answer_temperature if temperature is None else temperature,
        channel=channel,
        started=started,
        embedding_model=model,
    )


def cited(answer: str, passages: Sequence[Passage]) -> list[Passage]:
    """The passages the answer cites by `[n]`, in index order; all of them when it cites
    none (a model that answered without markers still used exactly these)."""
    by_index = {p.index: p for p in passages}
    numbers = {
        int(n) for group in _CITATION.findall(answer) for n in re.split(r"\s*[,;]\s*", group)
    }
    chosen = [by_index[n] for n in sorted(numbers) if n in by_index]
    return chosen or list(passages)


def citation(p: Passage) -> dict[str, Any]:
    return {
        "index": p.index,
        "chunk_id": p.chunk_id,
        "document_id": p.document_id,
        "filename": p.filename,
        "page_number": p.metadata.get("page_number"),
        "section": p.metadata.get("section"),
        "score": p.score,
    }


def _record(rt: RetrievalServices, plan: AnswerPlan, text: str) -> dict[str, Any]:
    citations = [citation(p) for p in cited(text, plan.passages)] if plan.knows else []
    latency_ms = (time.perf_counter() - plan.started) * 1000
    with rt.db.session() as s:
        row = Answer(
            kb_id=plan.kb_id,
            query=plan.query,
            answer=text,
            citations=citations,
            contexts=[
                {
                    "index": p.index,
                    "chunk_id": p.chunk_id,
                    "document_id": p.document_id,
                    "filename": p.filename,
                    "text": p.text,
                    "score": p.score,
                    "relevance": p.relevance,
                }
                for p in plan.passages
            ],
            generator=plan.generator.name,
            generator_model=plan.generator.model if plan.knows else None,
            prompt_name=plan.prompt_name,
            prompt_version=plan.prompt_version,
            index_version=plan.index_version,
            channel=plan.channel,
            latency_ms=round(latency_ms, 3),
            arm=plan.arm,
            ab_test_id=plan.ab_test_id,
            subject=plan.ab_subject,
        )
        s.add(row)
        s.flush()
        answer_id = row.id
    result = {
        "id": answer_id,
        "answer": text,
        "citations": citations,
        "index_version": plan.index_version,
        "generator": plan.generator.name,
        "prompt": {"name": plan.prompt_name, "version": plan.prompt_version},
    }
    if plan.arm is not None:
        result.update(ab_test=plan.ab_test, arm=plan.arm)
    return result


def generation_kwargs(plan: AnswerPlan) -> dict[str, Any]:
    """What every generator call of this plan is given (shared by /answer and eval runs)."""
    return {
        "max_tokens": plan.max_tokens,
        "temperature": plan.temperature,
        "passages": plan.passages,
        "query": plan.query,
    }


def run_answer(rt: RetrievalServices, plan: AnswerPlan) -> dict[str, Any]:
    """Generate the whole answer, record it, return the public response."""
    if not plan.knows:
        return _record(rt, plan, dont_know(plan.kb_name))
    text = plan.generator.generate(
        plan.messages, **generation_kwargs(plan), usage=plan.usage
    ).strip()
    return _record(rt, plan, text or dont_know(plan.kb_name))


def stream_answer(rt: RetrievalServices, plan: AnswerPlan) -> Iterator[tuple[str, Any]]:
    """("token", text) pieces, then ("done", response) once recorded."""
    if not plan.knows:
        text = dont_know(plan.kb_name)
        yield "token", text
        yield "done", _record(rt, plan, text)
        return
    pieces: list[str] = []
    for piece in plan.generator.stream(plan.messages, **generation_kwargs(plan), usage=plan.usage):
        pieces.append(piece)
        yield "token", piece
    text = "".join(pieces).strip()
    if not text:
        text = dont_know(plan.kb_name)
        yield "token", text
    yield "done", _record(rt, plan, text)
