"""Answer generators behind one interface (`base.Generator`), picked by name.

Example::

    gen = get_generator(rt, "extractive", embedding_model=kb.config["embedding_model"])
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from core.errors import InvalidInput
from retrieval.generators.base import Generator, Message, Passage

if TYPE_CHECKING:
    from core.runtime import Runtime

GENERATORS: tuple[str, ...] = ("extractive", "local", "openai")

_cache: dict[tuple[object, ...], Generator] = {}
_lock = threading.Lock()


def check_generator_name(name: str) -> str:
    if name not in GENERATORS:
        raise InvalidInput(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
    return name


def get_generator(rt: Runtime, name: str, *, embedding_model: str | None = None) -> Generator:
    """The named generator, configured from `rt.settings`. Unknown name: InvalidInput (422)
    listing the choices. Cheap: models load on `warm_up()` or first use."""
    check_generator_name(name)
    settings = rt.settings
    if name == "extractive":
        from retrieval.generators.extractive import ExtractiveGenerator

        return ExtractiveGenerator(rt.embedder(embedding_model))
    if name == "local":
        from retrieval.generators.local import LocalGenerator

        return LocalGenerator(settings.local_generator_path)
    key: tuple[object, ...] = (
        name,
        settings.openai_base_url,
        settings.openai_api_key,
        settings.openai_model,
        settings.openai_timeout_seconds,
    )
    with _lock:  # one HTTP client (connection pool) per endpoint configuration
        if key not in _cache:
            from retrieval.generators.openai_compat import OpenAICompatGenerator

            _cache[key] = OpenAICompatGenerator(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key,
                model=settings.openai_model,
                timeout=settings.openai_timeout_seconds,
            )
        return _cache[key]


__all__ = ["GENERATORS", "Generator", "Message", "Passage", "check_generator_name", "get_generator"]
