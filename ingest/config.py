"""A knowledge base's ingestion config: validated once, stored as JSON on the KB row, and
hashed into chunk ids so a config change never mixes chunk sets."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config import Settings
from core.types import sha256_hex


class ChunkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(200, gt=0, description="Maximum chunk length in model tokens")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive chunks")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class RedactionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    entities: list[str] | None = Field(
        None, description="Presidio entity types to redact; default: the service's list"
    )
    operator: Literal["replace", "mask", "hash", "drop"] = Field(
        "replace", description="replace with <TYPE>, mask with *, salted-less sha256, or drop"
    )
    languages: list[Literal["en", "es", "ru"]] | None = Field(
        None, description="Languages whose name recognizer runs; default: en, es, ru"
    )


class CleaningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unicode_normalization: Literal["NFKC", "NFC", "none"] = "NFKC"
    drop_duplicate_chunks: bool = Field(True, description="Remove exact repeats in a document")


class IngestionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunking: ChunkingConfig
    redaction: RedactionConfig
    embedding_model: str
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    # Retrieval-time only (not a pipeline stage, so not in chunk ids or the pipeline
    # hash): a local sentence-transformers CrossEncoder folder; "" clears it.
    reranker: str | None = Field(None, description="Local CrossEncoder folder for reranking")

    @model_validator(mode="after")
    def _blank_reranker_is_none(self) -> IngestionConfig:
        if self.reranker is not None and not self.reranker.strip():
            self.reranker = None
        return self

    @classmethod
    def defaults(cls, settings: Settings) -> IngestionConfig:
        return cls(
            chunking=ChunkingConfig(
                chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
            ),
            redaction=RedactionConfig(
                enabled=settings.redaction_enabled, entities=list(settings.redaction_entities)
            ),
            embedding_model=settings.embedding_model,
        )

    def merged(self, changes: dict[str, Any]) -> IngestionConfig:
        """Apply a partial update (nested dicts merge; None leaves a value unchanged)."""
        data = self.model_dump()
        for key, value in changes.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **{k: v for k, v in value.items() if v is not None}}
            else:
                data[key] = value
        return IngestionConfig.model_validate(data)

    @property
    def hash(self) -> str:
        return sha256_hex(json.dumps(self.model_dump(), sort_keys=True))
