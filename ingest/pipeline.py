"""Builds a knowledge base's ordered stage list from its ingestion config and runs it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.metrics import INGEST_STAGE_SECONDS
from core.types import Piece, StageReport, sha256_hex
from ingest.base import Stage
from ingest.chunk import SentenceChunker
from ingest.clean import Cleaner, ExactDeduplicator, HeaderFooterRemover, NearDuplicateRemover
from ingest.config import IngestionConfig, RedactionConfig
from ingest.embed import Embedder, EmbeddingCache, EmbedStage
from ingest.parse import DECRYPTED, ENCODING, UnstructuredParser

# Status a revision shows while a stage runs (see core.catalog.models.RevisionStatus).
STAGE_STATUS = {
    "parse": "parsing",
    "clean": "cleaning",
    "boilerplate": "cleaning",
    "redact": "redacting",
    "chunk": "chunking",
    "dedupe": "chunking",
    "near_dedupe": "chunking",
    "embed": "embedding",
}


@dataclass
class PipelineResult:
    chunks: list[Piece]
    report: StageReport


class IngestPipeline:
    """parse → clean → boilerplate → redact → chunk → dedupe → near_dedupe → embed for one
    document (optional stages left out as configured)."""

    def __init__(self, parser: Any, stages: list[Stage]) -> None:
        self.parser = parser
        self.stages = stages

    @property
    def config_hash(self) -> str:
        """Changes whenever any stage's name or config changes (model digest included)."""
        spec = [[self.parser.name, self.parser.config]]
        spec += [[s.name, s.config] for s in self.stages]
        return sha256_hex(json.dumps(spec, sort_keys=True, default=str))

    @property
    def embed_stage(self) -> EmbedStage:
        stage = self.stages[-1]
        assert isinstance(stage, EmbedStage)
        return stage

    def embed(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        """Only the final embed stage: for chunks this config already produced (their
        vectors usually come straight from the embedding cache)."""
        return self.embed_stage(pieces, report)

    def embed_documents(self, documents: list[list[Piece]], reports: list[StageReport]) -> None:
        """The embed stage for many documents' chunks at once (one length-sorted batch),
        each document's counts and share of the time in its own report."""
        t0 = time.perf_counter()
        self.embed_stage.embed_many(documents, reports)
        elapsed = time.perf_counter() - t0
        INGEST_STAGE_SECONDS.labels("embed").observe(elapsed)
        total = sum(len(d) for d in documents) or 1
        for chunks, report in zip(documents, reports, strict=True):
            share = elapsed * len(chunks) / total
            report.seconds["embed"] = round(report.seconds.get("embed", 0.0) + share, 4)

    def prepare(
        self,
        data: bytes,
        *,
        media_type: str,
        filename: str,
    ) -> PipelineResult:
        """Every stage but the final embedding: the document's chunks, without vectors."""
        report = StageReport()
        t0 = time.perf_counter()
        pieces = self.parser.parse(data, media_type=media_type, filename=filename)
        elapsed = time.perf_counter() - t0
        report.seconds[self.parser.name] = round(elapsed, 4)
        INGEST_STAGE_SECONDS.labels(self.parser.name).observe(elapsed)
        report.add(self.parser.name, "elements", len(pieces))
        if pieces and pieces[0].metadata.pop(DECRYPTED, False):
            report.add(self.parser.name, "decrypted")
        if pieces and (encoding := pieces[0].metadata.pop(ENCODING, None)):
            report.add(self.parser.name, f"encoding:{encoding}")
        for stage in self.stages[:-1]:
            t0 = time.perf_counter()
            pieces = stage(pieces, report)
            elapsed = time.perf_counter() - t0
            report.seconds[stage.name] = round(report.seconds.get(stage.name, 0.0) + elapsed, 4)
            INGEST_STAGE_SECONDS.labels(stage.name).observe(elapsed)
        return PipelineResult(chunks=pieces, report=report)

    def run(
        self,
        data: bytes,
        *,
        media_type: str,
        filename: str,
    ) -> PipelineResult:
        result = self.prepare(data, media_type=media_type, filename=filename)
        t0 = time.perf_counter()
        result.chunks = self.embed_stage(result.chunks, result.report)
        elapsed = time.perf_counter() - t0
        result.report.seconds["embed"] = round(elapsed, 4)
        INGEST_STAGE_SECONDS.labels("embed").observe(elapsed)
        return result


def build_pipeline(
    config: IngestionConfig,
    *,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    redactor_factory: Callable[[RedactionConfig], Stage],
    parser: Any | None = None,
) -> IngestPipeline:
    """`parser` defaults to an in-process UnstructuredParser; the runtime passes its
    shared isolated one."""

    cleaning = config.cleaning
    stages: list[Stage] = [Cleaner(cleaning.unicode_normalization)]
    if cleaning.remove_boilerplate:
        stages.append(HeaderFooterRemover())
    if config.redaction.enabled:
        stages.append(redactor_factory(config.redaction))
    stages += [
        SentenceChunker(
            embedder.tokenize,
            chunk_size=config.chunking.chunk_size,
            chunk_overlap=config.chunking.chunk_overlap,
            max_tokens=embedder.max_tokens,
        ),
    ]
    if cleaning.drop_duplicate_chunks:
        stages.append(ExactDeduplicator())
        # Near-duplicate removal would also drop exact repeats, so it stays off whenever
        # a KB asked to keep duplicates.
        if cleaning.near_duplicate_threshold is not None:
            stages.append(NearDuplicateRemover(cleaning.near_duplicate_threshold))
    stages.append(EmbedStage(embedder, cache))
    return IngestPipeline(parser or UnstructuredParser(), stages)
