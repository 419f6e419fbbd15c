"""The heavy objects of a process, owned in one place: embedding models, Presidio's
engines, the parser (worker processes), rerankers, generators that hold a model or a
connection pool, and Qdrant clients.

A `Runtime` builds its own `Components` and closes it on `close()`. Several runtimes in
one process (tests, a CLI command inside a server process) may share one instead, by
passing it in; then whoever built it closes it. Every cache key holds the settings that
shape the object, so runtimes with different settings never get each other's objects.

Example::

    components = Components()
    a = Runtime(settings_a, components=components)
    b = Runtime(settings_b, components=components)   # shares loaded models with `a`
    ...
    a.close(); b.close(); components.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.config import Settings
from index.qdrant_index import close_client, make_client
from ingest.base import Parser
from ingest.config import RedactionConfig
from ingest.embed import Embedder
from ingest.isolate import IsolatedParser
from ingest.parse import UnstructuredParser
from ingest.redact import PresidioEngines, PresidioRedactor
from retrieval.generators import Generator, check_generator_name, make_generator
from retrieval.rerank import Reranker

log = logging.getLogger(__name__)

T = TypeVar("T")


class Components:
    """Loaded-once objects keyed by what configures them. Thread-safe; every getter is
    cheap after the first call for its key (loading happens in the objects' `warm_up`)."""

    def __init__(self) -> None:
        self._objects: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()
        self.presidio = PresidioEngines()
        self.closed = False

    def _get(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        with self._lock:
            if self.closed:
                raise RuntimeError("these components were closed; build a new runtime")
            if key not in self._objects:
                self._objects[key] = build()
            return self._objects[key]

    def embedder(self, settings: Settings, ref: str | None = None) -> Embedder:
        ref = ref or settings.embedding_model
        device, batch = settings.embedding_device, settings.embedding_batch_size
        backend, models = settings.embedding_backend, settings.models_dir
        return self._get(
            ("embedder", ref, device, batch, backend, models),
            lambda: Embedder(
                ref, device=device, batch_size=batch, backend=backend, cache_dir=models
            ),
        )

    def redactor(
        self, settings: Settings, policy: RedactionConfig | None = None
    ) -> PresidioRedactor:
        """One redactor per distinct policy; all share this object's Presidio engines."""
        policy = policy or RedactionConfig(entities=list(settings.redaction_entities))
        entities = tuple(policy.entities or settings.redaction_entities)
        languages = tuple(policy.languages) if policy.languages else None
        per_entity = tuple(sorted((policy.entity_operators or {}).items()))
        return self._get(
            ("redactor", entities, policy.operator, per_entity, languages),
            lambda: PresidioRedactor(
                entities=list(entities),
                operator=policy.operator,
                entity_operators=dict(per_entity),
                languages=languages,
                engines=self.presidio,
            ),
        )

    def parser(self, settings: Settings) -> Parser:
        """Isolated worker processes with time and memory limits (default), or in-process
        when RAGOPS_PARSER_ISOLATION=false."""
        s = settings
        if not s.parser_isolation:
            return self._get(("parser", False), UnstructuredParser)
        key = ("parser", True, s.parse_timeout_seconds, s.parse_memory_mb, s.parse_processes)
        return self._get(
            key,
            lambda: IsolatedParser(
                timeout_s=s.parse_timeout_seconds,
                memory_limit_mb=s.parse_memory_mb,
                processes=s.parse_processes,
            ),
        )

    def reranker(self, ref: str) -> Reranker:
        return self._get(("reranker", ref), lambda: Reranker(ref))

    def generator(
        self, settings: Settings, name: str, *, embedding_model: str | None = None
    ) -> Generator:
        """`extractive` is a thin wrapper over the embedder (made per call); `local` holds
        a model and `openai` a connection pool, so those are kept per configuration."""
        check_generator_name(name)
        if name == "extractive":
            return make_generator(settings, name, embedder=self.embedder(settings, embedding_model))
        if name == "local":
            key: tuple[Any, ...] = ("generator", name, settings.local_generator_path)
        else:
            key = (
                "generator",
                name,
                settings.openai_base_url,
                settings.openai_api_key,
                settings.openai_model,
                settings.openai_timeout_seconds,
            )
        return self._get(key, lambda: make_generator(settings, name))

    def qdrant_client(self, settings: Settings) -> Any:
        """The deployment's Qdrant: a server (cluster) by URL, else Qdrant Edge shards on
        disk (`index.edge_index.EdgeShards`). One client per URL or folder: an Edge shard
        serves one client, so a second one on the same folder would be refused."""
        if settings.qdrant_url:
            url, key_ = settings.qdrant_url, settings.qdrant_api_key or None
            return self._get(("qdrant", url, key_), lambda: make_client(url=url, api_key=key_))
        path = Path(settings.qdrant_path).expanduser().resolve()
        return self._get(("qdrant", path), lambda: make_client(path=path))

    def close(self) -> None:
        """Close what holds processes, files or connections; drop the models."""
        with self._lock:
            objects, self._objects = list(self._objects.items()), {}
            self.closed = True
        for key, obj in objects:
            try:
                if key[0] == "qdrant":
                    close_client(obj)  # waits for calls in flight on a local client
                elif callable(getattr(obj, "close", None)):
                    obj.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("closing %s failed", type(obj).__name__)
        self.presidio.close()
