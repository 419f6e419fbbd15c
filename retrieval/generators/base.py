"""The generator interface: turn chat messages (system prompt, delimited documents,
question) into an answer, whole or token by token.

Example::

    gen = rt.generator("local")
    gen.warm_up()
    text = gen.generate(messages, max_tokens=64, temperature=0.0, passages=passages, query=q)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as shown to the generator: `index` is its `[n]` citation number."""

    index: int
    chunk_id: str
    document_id: str
    filename: str
    text: str
    score: float
    relevance: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    """Token counts of one generation, filled in by a generator that knows them (a local
    model's tokenizer, an upstream's reported usage); None where it cannot tell."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class Generator(Protocol):
    """Contract:

    - `name` is the registry name ("extractive", "local", "openai"); `model` names what
      answers (a file, a remote model id) or is None.
    - `generate` returns the whole answer; `stream` yields pieces whose concatenation is
      what `generate` would return for the same input (same sampling).
    - `messages` are the rendered prompt; `passages`/`query` are the same content in
      structured form, for generators that do not read prompts (extractive).
    - Raise `core.errors.InvalidInput` for a configuration the caller can fix (422) and
      `core.errors.Unavailable` when a backing service cannot be reached (503).
    - `usage`, when given, receives the call's token counts where the generator knows
      them (`local`: its tokenizer; `openai`: what the endpoint reports); `extractive`
      leaves it empty. `stream` fills it once exhausted.
    - `warm_up()` loads models or checks clients; constructors stay cheap.
    """

    name: str

    @property
    def model(self) -> str | None: ...

    def warm_up(self) -> None: ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> str: ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> Iterator[str]: ...
