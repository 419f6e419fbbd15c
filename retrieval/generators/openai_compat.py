"""`openai`: any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server) by base URL, key and model name.

Settings: RAGOPS_OPENAI_BASE_URL (e.g. http://127.0.0.1:11434/v1), RAGOPS_OPENAI_API_KEY
(servers that ignore keys still need a non-empty one; "none" is sent when unset),
RAGOPS_OPENAI_MODEL, RAGOPS_OPENAI_TIMEOUT_SECONDS. Unset base URL or model: 422 naming the
setting; endpoint unreachable or failing: 503.

Example::

    gen = OpenAICompatGenerator(base_url="http://127.0.0.1:8001/v1", api_key="x", model="m")
    gen.generate([Message("user", "Say hi")], max_tokens=16, temperature=0.0)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from core.errors import InvalidInput, Unavailable
from retrieval.generators.base import Message, Passage, Usage


class OpenAICompatGenerator:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self._model = model
        self.timeout = timeout
        self._client: Any = None

    @property
    def model(self) -> str | None:
        return self._model

    def _get_client(self) -> Any:
        if not self.base_url:
            raise InvalidInput(
                "the openai generator is not configured: set RAGOPS_OPENAI_BASE_URL "
                "(e.g. http://127.0.0.1:11434/v1) and RAGOPS_OPENAI_MODEL, or choose "
                "another generator"
            )
        if not self._model:
            raise InvalidInput(
                "the openai generator has no model: set RAGOPS_OPENAI_MODEL to a model the "
                f"endpoint {self.base_url} serves"
            )
        if self._client is None:
            import openai

            # No retries: a dead endpoint should fail the request quickly and clearly.
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key or "none",
                timeout=self.timeout,
                max_retries=0,
            )
        return self._client

    def warm_up(self) -> None:
        self._get_client()

    def _call(self, messages: Sequence[Message], max_tokens: int, temperature: float, **kw: Any):  # type: ignore[no-untyped-def]
        import openai

        client = self._get_client()
        try:
            return client.chat.completions.create(
                model=self._model,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=max_tokens,
                temperature=temperature,
                **kw,
            )
        except openai.APIConnectionError as exc:  # includes timeouts
            raise Unavailable(
                f"the openai generator endpoint {self.base_url} is unreachable "
                f"({exc.__class__.__name__}); check RAGOPS_OPENAI_BASE_URL and that the "
                "server is running"
            ) from exc
        except openai.APIStatusError as exc:
            raise Unavailable(
                f"the openai generator endpoint {self.base_url} answered HTTP "
                f"{exc.status_code}: {_short(exc)}"
            ) from exc

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> str:
        response = self._call(messages, max_tokens, temperature)
        if usage is not None:
            _reported(response, usage)
        return (response.choices[0].message.content or "").strip()

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> Iterator[str]:
        import openai

        # Asked only when wanted: the final event then carries the usage, no choices.
        extra = {"stream_options": {"include_usage": True}} if usage is not None else {}
        events = self._call(messages, max_tokens, temperature, stream=True, **extra)
        try:
            for event in events:
                if usage is not None:
                    _reported(event, usage)
                if event.choices and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
        except openai.APIError as exc:
            raise Unavailable(
                f"the openai generator stream from {self.base_url} broke: {_short(exc)}"
            ) from exc


def _reported(response: Any, usage: Usage) -> None:
    """The endpoint's own counts, where it reports them (not every server does)."""
    reported = getattr(response, "usage", None)
    if reported is None:
        return
    prompt = getattr(reported, "prompt_tokens", None)
    completion = getattr(reported, "completion_tokens", None)
    if isinstance(prompt, int) and isinstance(completion, int):
        usage.prompt_tokens, usage.completion_tokens = prompt, completion


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text if len(text) <= 300 else text[:297] + "..."
