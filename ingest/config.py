"""A knowledge base's ingestion config: validated once, stored as JSON on the KB row, and
hashed into chunk ids so a config change never mixes chunk sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import DEFAULT_ENTITY_OPERATORS, Settings
from core.errors import InvalidInput
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
    operator: Literal["replace", "mask", "hash", "drop", "pseudonymize"] = Field(
        "replace",
        description="replace with <TYPE>, mask with *, salted-less sha256, drop, or "
        "pseudonymize: <TYPE_1>, <TYPE_2>, the same number for the same value in a document",
    )
    entity_operators: (
        dict[str, Literal["replace", "mask", "hash", "drop", "pseudonymize"]] | None
    ) = Field(
        None,
        description="An operator per entity type over `operator`, e.g. "
        '{"PERSON": "pseudonymize"}; when neither is sent, the service default: '
        'replace, with {"PERSON": "pseudonymize"}',
    )
    languages: list[Literal["en", "es", "ru"]] | None = Field(
        None, description="Languages whose name recognizer runs; default: en, es, ru"
    )

    @model_validator(mode="after")
    def _default_operators(self) -> RedactionConfig:
        """A policy that chooses no operator gets the measured per-entity defaults; one
        that chooses an operator (or stored one: every existing KB) gets exactly that."""
        if not {"operator", "entity_operators"} & self.model_fields_set:
            self.entity_operators = dict(DEFAULT_ENTITY_OPERATORS)
        return self


class CleaningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unicode_normalization: Literal["NFKC", "NFC", "none"] = "NFKC"
    drop_duplicate_chunks: bool = Field(True, description="Remove exact repeats in a document")
    remove_boilerplate: bool = Field(
        True,
        description="Drop running headers, footers and page numbers repeated across pages",
    )
    near_duplicate_threshold: float | None = Field(
        0.9,
        description="Also drop chunks whose word 3-gram Jaccard similarity to an earlier "
        "chunk is at least this (0.5-1.0; needs drop_duplicate_chunks); null disables",
    )

    @field_validator("near_duplicate_threshold")
    @classmethod
    def _threshold_in_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.5 <= value <= 1.0:
            raise ValueError(
                f"near_duplicate_threshold must be between 0.5 and 1.0 (or null to "
                f"disable), got {value!r}"
            )
        return value


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
        """Apply a partial update: nested dicts merge key by key; a top-level None
        leaves that value unchanged."""
        data = self.model_dump()
        for key, value in changes.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                # Nested keys are taken as sent: an explicit null clears a nullable field
                # (e.g. cleaning.near_duplicate_threshold). Callers drop unset fields.
                if (
                    key == "redaction"
                    and "operator" in value
                    and "entity_operators" not in value
                    and data[key].get("entity_operators") == DEFAULT_ENTITY_OPERATORS
                ):
                    # An operator chosen over the service default applies to every entity.
                    data[key]["entity_operators"] = None
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return IngestionConfig.model_validate(data)

    @property
    def hash(self) -> str:
        return sha256_hex(json.dumps(self.model_dump(), sort_keys=True))


def check_reranker_path(ref: str) -> str:
    """The reference, if it names a local folder holding a model; InvalidInput if not."""
    path = Path(ref).expanduser()
    if not ((path / "config.json").is_file() or (path / "modules.json").is_file()):
        raise InvalidInput(
            f"reranker {ref!r} is not a local CrossEncoder folder (no config.json or "
            "modules.json there); "
            "give the path of a saved sentence-transformers CrossEncoder"
        )
    return ref
