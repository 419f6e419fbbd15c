"""The LLM judge: what LLM-judged metrics (`eval.llm_metrics`) and test-set generation
(`eval.generate`) call, built from settings, with every call's tokens counted.

Two kinds, one path. `openai` (RAGOPS_JUDGE_BASE_URL, RAGOPS_JUDGE_MODEL,
RAGOPS_JUDGE_API_KEY) is any OpenAI-compatible endpoint. `local` (RAGOPS_JUDGE=local)
answers the same chat-completions requests in process with the local generator's model
(`retrieval.generators.local`, SmolLM2-135M by default) through an httpx transport, so
ragas, instructor and the token accounting see an ordinary OpenAI response either way.

Tokens are read from each response's `usage` by an httpx response hook: it sees every
HTTP call (instructor's re-asks included), which a wrapper around ragas could not.
`Usage.as_dict` is what an eval run stores in `EvalRun.usage`; prices
(RAGOPS_JUDGE_PRICE_PER_1K_INPUT / _OUTPUT, USD) turn tokens into `cost_usd`.

Clients are bound to an event loop, so `Judge.llm()` opens a fresh one per
`asyncio.run` (one per question or generation job): cheap next to a judge call.

Example::

    judge = Judge(settings, embedder=rt.embedder())
    async with judge.llm() as llm:           # a ragas InstructorLLM
        await Faithfulness(llm=llm).ascore(user_input=q, response=a, retrieved_contexts=c)
    judge.usage.as_dict()   # {"judge": "openai:gpt-4o-mini", "calls": 2, ...}
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.errors import Conflict, RagopsError, Unavailable
from eval.metrics import LLM_METRICS
from retrieval.generators.base import Message
from retrieval.generators.local import LocalGenerator, resolve_path

if TYPE_CHECKING:
    from core.config import Settings
    from eval.services import EvalServices
    from ingest.embed import Embedder

JUDGE_HINT = (
    "set RAGOPS_JUDGE_BASE_URL and RAGOPS_JUDGE_MODEL (an OpenAI-compatible endpoint) "
    "or RAGOPS_JUDGE=local (the local generator model in process)"
)
# The base URL the in-process local judge answers on; never leaves the process.
LOCAL_BASE_URL = "http://local-judge.invalid/v1"


def judge_label(settings: Settings) -> str | None:
    """Which judge scores (recorded in run keys, usage and generated test sets); None
    when no judge is configured. A local judge without a model is a 422 naming the fix."""
    kind = settings.judge_kind
    if kind is None:
        return None
    if kind == "local":
        return f"local:{Path(resolve_path(settings.local_generator_path)).stem}"
    return f"openai:{settings.judge_model}"


def local_judge_model(rt: EvalServices) -> LocalGenerator | None:
    """The runtime's local generator when the judge is local (its model loads once per
    process and is shared with /answer), else None."""
    if rt.settings.judge_kind != "local":
        return None
    generator = rt.generator("local")
    return generator if isinstance(generator, LocalGenerator) else None


def judge_for_metrics(settings: Settings, metrics: Sequence[str] | None) -> str | None:
    """The judge label when `metrics` names an LLM-judged metric (else None, so offline
    runs never depend on a judge's configuration or model files)."""

    if not any(m in LLM_METRICS for m in metrics or ()):
        return None
    return judge_label(settings)


def require_judge(settings: Settings, what: str) -> str:
    """The judge label, or Conflict (409) saying which settings make `what` possible."""
    label = judge_label(settings)
    if label is None:
        raise Conflict(f"{what} needs an LLM judge; {JUDGE_HINT}")
    return label


@dataclass
class Usage:
    """Judge calls and tokens, summed over one eval run or generation job."""

    judge: str
    price_in: float | None = None
    price_out: float | None = None
    free: bool = False  # the local judge costs nothing
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, usage: Mapping[str, Any] | None) -> None:
        with self._lock:
            self.calls += 1
            if usage:
                self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.free:
            return 0.0
        if self.price_in is None and self.price_out is None:
            return None  # a paid endpoint without prices: unknown, not free
        return round(
            prompt_tokens / 1000 * (self.price_in or 0.0)
            + completion_tokens / 1000 * (self.price_out or 0.0),
            6,
        )

    def as_dict(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Totals, added to `base` (what earlier attempts of a resumed run recorded)."""
        base = base or {}
        with self._lock:
            calls = int(base.get("calls") or 0) + self.calls
            prompt = int(base.get("prompt_tokens") or 0) + self.prompt_tokens
            completion = int(base.get("completion_tokens") or 0) + self.completion_tokens
        return {
            "judge": self.judge,
            "calls": calls,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": self.cost(prompt, completion),
        }


class LocalJudgeTransport(httpx.AsyncBaseTransport):
    """Answers POST …/chat/completions with the local generator's model, in a thread,
    reporting token counts from the model's own tokenizer. A timed-out call returns
    to the caller at once, but the model finishes that generation before the next."""

    def __init__(self, generator: LocalGenerator, *, timeout: float) -> None:
        self.generator = generator
        self.timeout = timeout

    def _generate(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = [Message(m["role"], str(m.get("content") or "")) for m in body["messages"]]
        max_tokens = int(body.get("max_tokens") or 256)
        temperature = float(body.get("temperature") or 0.0)
        text = self.generator.generate(
            messages, max_tokens=max_tokens, temperature=0.0 if temperature < 0.05 else temperature
        )
        prompt_tokens, completion = self.generator.count_tokens(messages, text)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "local",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if completion >= max_tokens else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json={"error": {"message": "only chat completions"}})
        body = json.loads(await request.aread())
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(self._generate, body), self.timeout)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"local judge: no answer in {self.timeout}s") from exc
        return httpx.Response(200, json=answer)


def ragas_embeddings(embedder: Embedder) -> Any:
    """Our loaded sentence-transformers model as a ragas (modern) embedding, so ragas
    never loads a second copy of the run's embedding model or asks a hub for one."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class _Embeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return embedder.encode([text], kind="query")[0].tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return await asyncio.to_thread(self.embed_text, text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return embedder.encode(list(texts), kind="query").tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

    return _Embeddings()


class Judge:
    """One configured judge (settings read once); `llm()` opens a ragas LLM on it."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        local_generator: LocalGenerator | None = None,
    ) -> None:
        """`local_generator` is the runtime's (its model loads once); a judge without one
        makes its own when RAGOPS_JUDGE=local."""
        self.label = require_judge(settings, "LLM-judged scoring")
        self.kind = settings.judge_kind
        self.settings = settings
        self.local_generator = local_generator
        if self.kind == "local" and local_generator is None:
            self.local_generator = LocalGenerator(settings.local_generator_path)
        self.embeddings = ragas_embeddings(embedder) if embedder is not None else None
        self.usage = Usage(
            judge=self.label,
            price_in=settings.judge_price_per_1k_input,
            price_out=settings.judge_price_per_1k_output,
            free=self.kind == "local",
        )

    async def _on_response(self, response: httpx.Response) -> None:
        if not response.request.url.path.endswith("/chat/completions"):
            return
        usage = None
        if response.status_code == 200:
            await response.aread()
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("usage"), dict):
                usage = body["usage"]
        self.usage.record(usage)

    @asynccontextmanager
    async def llm(self) -> AsyncIterator[Any]:
        """A ragas `InstructorLLM` on a client bound to the running event loop."""
        from openai import AsyncOpenAI
        from ragas.llms.base import llm_factory

        s = self.settings
        local = self.kind == "local"
        http = httpx.AsyncClient(
            transport=(
                LocalJudgeTransport(self.local_generator, timeout=s.judge_timeout_seconds)
                if local and self.local_generator is not None
                else None
            ),
            timeout=s.judge_timeout_seconds,
            event_hooks={"response": [self._on_response]},
        )
        client = AsyncOpenAI(
            base_url=LOCAL_BASE_URL if local else s.judge_base_url,
            api_key=(s.judge_api_key or "none") if not local else "local",
            http_client=http,
            timeout=s.judge_timeout_seconds,
            # 429/5xx are retried with backoff by the client; bad output is re-asked
            # by instructor (max_retries below counts attempts).
            max_retries=0 if local else 2,
        )
        try:
            yield llm_factory(
                "local" if local else str(s.judge_model),
                client=client,
                max_tokens=s.judge_max_tokens,
                temperature=0.0,
                max_retries=s.judge_retries + 1,
            )
        finally:
            await http.aclose()


def describe_failure(exc: BaseException) -> str:
    """One short line for `scores["errors"]`: why the judge gave no score."""
    import openai
    from pydantic import ValidationError

    name = exc.__class__.__name__
    if name == "InstructorRetryException" or isinstance(exc, ValueError | json.JSONDecodeError):
        cause = exc.__cause__ or exc
        if isinstance(cause, ValidationError):
            first = cause.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ())) or "answer"
            return f"the judge's answer is not valid {cause.title} JSON ({where}: {first['msg']})"
        return f"the judge's answer did not parse as the expected JSON ({_short(cause)})"
    if name == "IncompleteOutputException":
        return "the judge's answer was cut off at RAGOPS_JUDGE_MAX_TOKENS"
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return "the judge did not answer within RAGOPS_JUDGE_TIMEOUT_SECONDS"
    if isinstance(exc, openai.APIStatusError):
        return f"the judge answered HTTP {exc.status_code}: {_short(exc)}"
    return f"{name}: {_short(exc)}"


def fatal(exc: BaseException) -> RagopsError | None:
    """Failures no other question would escape (endpoint down, bad key, unknown model):
    these fail the attempt, so the job retries and a resumed run keeps its results."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return None
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable(
            "the judge endpoint is unreachable; check RAGOPS_JUDGE_BASE_URL and that the "
            "server is running"
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (401, 403, 404):
        return Unavailable(
            f"the judge endpoint refused the call (HTTP {exc.status_code}: {_short(exc)}); "
            "check RAGOPS_JUDGE_API_KEY and RAGOPS_JUDGE_MODEL"
        )
    return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
