"""The services retrieval uses: ingestion services (the embedder for queries) plus the
lexical index per version, rerankers and answer generators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ingest.services import IngestServices

if TYPE_CHECKING:
    from retrieval.bm25 import Bm25Store
    from retrieval.generators import Generator
    from retrieval.rerank import Reranker


class RetrievalServices(IngestServices, Protocol):
    bm25: Bm25Store

    def reranker(self, ref: str) -> Reranker:
        """The CrossEncoder in folder `ref`, loaded once and shared."""
        ...

    def generator(self, name: str, *, embedding_model: str | None = None) -> Generator:
        """Generator `name` configured from the settings (`extractive` scores with
        `embedding_model`); InvalidInput for an unknown name."""
        ...
