"""Answer generators behind one interface (`base.Generator`), picked by name.

`make_generator` builds one from settings; the runtime keeps the ones that hold a model
or a connection pool and hands them out (`rt.generator(name)`).

Example::

    gen = rt.generator("extractive", embedding_model=kb.config["embedding_model"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import InvalidInput
from retrieval.generators.base import Generator, Message, Passage
from retrieval.generators.extractive import ExtractiveGenerator
from retrieval.generators.local import LocalGenerator
from retrieval.generators.openai_compat import OpenAICompatGenerator

if TYPE_CHECKING:
    from core.config import Settings
    from ingest.embed import Embedder

GENERATORS: tuple[str, ...] = ("extractive", "local", "openai")


def check_generator_name(name: str) -> str:
    if name not in GENERATORS:
        raise InvalidInput(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
    return name


def make_generator(settings: Settings, name: str, *, embedder: Embedder | None = None) -> Generator:
    """A new generator `name`, configured from `settings`: `extractive` scores sentences
    with `embedder`; `local` loads RAGOPS_LOCAL_GENERATOR_PATH on first use; `openai`
    talks to RAGOPS_OPENAI_BASE_URL. Unknown name: InvalidInput (422) listing the choices.
    Cheap: models load on `warm_up()` or first use."""
    check_generator_name(name)
    if name == "extractive":
        if embedder is None:
            raise InvalidInput("the extractive generator needs the KB's embedding model")
        return ExtractiveGenerator(embedder)
    if name == "local":
        return LocalGenerator(settings.local_generator_path)
    return OpenAICompatGenerator(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        model=settings.openai_model,
        timeout=settings.openai_timeout_seconds,
    )


__all__ = [
    "GENERATORS",
    "Generator",
    "Message",
    "Passage",
    "check_generator_name",
    "make_generator",
]
