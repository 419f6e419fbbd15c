"""Request and response bodies (public contract: field names are what clients send)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from api.limits import MAX_DB_INT, MAX_QUERY_CHARS
from ingest.config import ChunkingConfig, CleaningConfig, RedactionConfig


class RowWith:
    """A row's attributes, with `extra` ones added or replacing them."""

    def __init__(self, row: Any, extra: dict[str, Any]) -> None:
        self._row, self._extra = row, extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__["_extra"]
        return extra[name] if name in extra else getattr(self.__dict__["_row"], name)


class PublicModel(BaseModel):
    """A response body read from a catalog row's attributes: `model_validate(row,
    from_attributes=True)`, or `from_row(row, kb=name)` for fields the row does not hold
    (e.g. the KB's name for the row's `kb_id`)."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def from_row(cls, row: Any, **extra: Any) -> Self:
        return cls.model_validate(RowWith(row, extra) if extra else row, from_attributes=True)


# JSON columns may hold NULL: the public field is then empty.
NullAsEmptyDict = BeforeValidator(lambda value: value or {})
NullAsEmptyList = BeforeValidator(lambda value: value or [])
JsonObject = Annotated[dict[str, Any], NullAsEmptyDict]
# Progress 0..1, shown to 4 decimals.
Progress = Annotated[float, AfterValidator(lambda value: round(value, 4))]
# Rows name the column `metadata_`: `metadata` is SQLAlchemy's own attribute.
METADATA_COLUMN = AliasChoices("metadata_", "metadata")


class CleaningUpdate(BaseModel):
    """Fields left out stay as they are; `near_duplicate_threshold: null` disables it."""

    model_config = ConfigDict(extra="forbid")
    unicode_normalization: Literal["NFKC", "NFC", "none"] | None = None
    drop_duplicate_chunks: bool | None = None
    remove_boilerplate: bool | None = None
    near_duplicate_threshold: float | None = Field(None, ge=0.5, le=1.0)


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=128, examples=["handbook"])
    description: str = Field("", max_length=2000)
    chunking: ChunkingConfig | None = None
    redaction: RedactionConfig | None = None
    cleaning: CleaningUpdate | None = None
    embedding_model: str | None = Field(None, examples=["all-MiniLM-L6-v2"])
    reranker: str | None = Field(
        None, description="Local sentence-transformers CrossEncoder folder used when rerank is on"
    )


class ChunkingUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_size: int | None = Field(None, gt=0)
    chunk_overlap: int | None = Field(None, ge=0)


class KnowledgeBaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2000)
    chunking: ChunkingUpdate | None = None
    redaction: RedactionConfig | None = None
    cleaning: CleaningUpdate | None = None
    embedding_model: str | None = None
    reranker: str | None = Field(None, description='Local CrossEncoder folder; "" clears it')


_KB_SETTINGS = ("chunking", "redaction", "cleaning", "embedding_model", "reranker")


# From a `core.kbs.kb_summaries` row. (No docstring: it would land in the OpenAPI schema.)
class KnowledgeBasePublic(PublicModel):
    id: str
    name: str
    description: str
    chunking: ChunkingConfig
    redaction: RedactionConfig
    cleaning: CleaningConfig
    embedding_model: str
    reranker: str | None = None
    live_version: int | None
    document_count: int
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _settings_from_config(cls, row: Any) -> Any:
        """A catalog row keeps the ingestion settings in its `config` JSON; rows from
        before cleaning settings existed have none, so the defaults apply."""
        if isinstance(row, dict):
            return row
        settings = {name: row.config.get(name) for name in _KB_SETTINGS}
        return RowWith(row, {**settings, "cleaning": settings["cleaning"] or {}})


class KnowledgeBaseList(BaseModel):
    data: list[KnowledgeBasePublic]


class UploadItem(BaseModel):
    document_id: str
    revision_id: str
    revision: int
    filename: str
    status: str
    duplicate: bool = Field(
        description="True when these exact bytes were already the "
        "current content of a document: nothing new is queued"
    )
    job_id: str | None


class SkippedMember(BaseModel):
    filename: str
    reason: str


class UploadResponse(BaseModel):
    documents: list[UploadItem]
    skipped: list[SkippedMember] = Field(
        default_factory=list, description="Archive members that were not stored, and why"
    )


class IngestionJobCounts(BaseModel):
    queued: int
    running: int
    succeeded: int
    dead_letter: int = Field(description="Jobs that used up their attempts; reprocess to retry")


class ThroughputWindow(BaseModel):
    documents: int = Field(description="Revisions indexed in the window")
    chunks: int
    documents_per_minute: float


class PendingRevision(BaseModel):
    revision_id: str
    status: str
    created_at: str
    age_seconds: float


class IngestionFailure(BaseModel):
    document_id: str
    filename: str
    error: str | None
    created_at: str


class QueueDepth(BaseModel):
    queued: int
    running: int
    limit: int = Field(description="Queued + running jobs beyond which uploads get 429")


class IngestionQueue(QueueDepth):
    """This KB's ingestion jobs against RAGOPS_INGEST_QUEUE_MAX_PER_KB, all KBs' against
    RAGOPS_INGEST_QUEUE_MAX, and the pace the KB's part drains at."""

    overall: QueueDepth
    documents_per_minute: float = Field(
        description="This KB's ingestion jobs finished (indexed or failed) per minute "
        "over the last `window_seconds`, or since the first of them if later (30 s at least)"
    )
    window_seconds: int
    eta_seconds: float | None = Field(
        description="When this KB's queue should be empty at that pace; 0 when it is, "
        "null when nothing finished lately (no estimate)"
    )


class IngestionStatus(BaseModel):
    counts: dict[str, int] = Field(description="Documents per status of their current revision")
    total: int
    jobs: IngestionJobCounts
    throughput: dict[str, ThroughputWindow] = Field(description="`last_5_minutes` and `last_hour`")
    oldest_pending: PendingRevision | None
    recent_failures: list[IngestionFailure]
    queue: IngestionQueue


class RevisionPublic(PublicModel):
    id: str
    number: int
    status: str
    error: str | None
    content_sha256: str
    size_bytes: int
    media_type: str
    chunk_count: int
    report: JsonObject
    created_at: datetime
    indexed_at: datetime | None


# From an `ingest.documents.list_documents` row: a document with its current revision's
# columns, None when it has none.
class DocumentSummary(PublicModel):
    id: str
    filename: str
    status: str
    error: str | None
    language: str | None = Field(
        None,
        description="Detected language: en, es, ru or other",
        validation_alias=AliasChoices("language", AliasPath("report", "language")),
    )
    revision: int | None
    chunk_count: int
    metadata: JsonObject = Field(validation_alias=METADATA_COLUMN)
    updated_at: datetime

    @field_validator("status", mode="before")
    @classmethod
    def _no_revision_status(cls, value: Any) -> Any:
        return "unknown" if value is None else value

    @field_validator("chunk_count", mode="before")
    @classmethod
    def _no_revision_chunks(cls, value: Any) -> Any:
        return 0 if value is None else value


class DocumentPublic(DocumentSummary):
    revisions: list[RevisionPublic]


class DocumentList(BaseModel):
    counts: dict[str, int]
    total: int
    documents: list[DocumentSummary]


_FILTERS_DOC = (
    "Filters on document_id, revision_id, filename, page_number, section or upload "
    "metadata, all of which must hold: a value means equality, a list any of its items, "
    'an object a range with gt/gte/lt/lte on numbers or ISO dates (`{"year": {"gte": '
    '2020}}`, `{"date": {"gte": "2024-01-01", "lt": "2024-07-01"}}`)'
)


class RetrievalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(5, ge=1, le=100)
    filters: dict[str, Any] | None = Field(None, description=_FILTERS_DOC)
    score_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Drop hits whose `score` is lower: cosine in dense mode, the fused "
        "score (0-1] in hybrid mode, the reranker's (0-1) when reranked",
    )
    mode: Literal["dense", "hybrid"] | None = Field(
        None,
        description="dense: vectors only; hybrid: BM25 + dense fused by reciprocal rank "
        "fusion with language-aware weights. Default: hybrid",
    )
    mmr: bool = Field(False, description="Diversify the hits by maximal marginal relevance")
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 = relevance only, 0 = diversity only"
    )
    rerank: bool | None = Field(
        None,
        description="Rerank with the KB's CrossEncoder; default: on when the KB has one",
    )


class RetrieveRequest(RetrievalOptions):
    index_version: int | None = Field(
        None, ge=1, le=MAX_DB_INT, description="Pin a ready or live version; default: the live one"
    )


class MultiRetrieveRequest(RetrievalOptions):
    kbs: list[str] = Field(..., min_length=1, max_length=20, description="Knowledge bases")


class HitScores(BaseModel):
    dense: float | None = Field(None, description="Cosine similarity of the dense search")
    bm25: float | None = Field(None, description="BM25 score (hybrid mode)")
    fused: float | None = Field(None, description="Reciprocal rank fusion, scaled to (0, 1]")
    rerank: float | None = Field(None, description="CrossEncoder relevance")
    kbs_fused: float | None = Field(None, description="Fusion across knowledge bases")


class RetrievedChunkPublic(BaseModel):
    chunk_id: str
    document_id: str
    filename: str
    text: str
    score: float
    metadata: dict[str, Any] = Field(
        description="Citation and payload: revision, revision_id, page_number, section, kb "
        "and upload metadata"
    )
    scores: HitScores = Field(default_factory=HitScores)


class RetrieveResponse(BaseModel):
    index_version: int | None
    results: list[RetrievedChunkPublic]
    mode: Literal["dense", "hybrid"] | None = None
    language: str | None = Field(None, description="Detected query language (hybrid mode)")


class MultiRetrieveResponse(BaseModel):
    index_versions: dict[str, int | None]
    results: list[RetrievedChunkPublic]
    mode: Literal["dense", "hybrid"] | None = None


class VersionCreate(BaseModel):
    """Any subset; everything not given is taken from the KB's current config."""

    model_config = ConfigDict(extra="forbid")

    embedding_model: str | None = Field(None, examples=["/models/my-finetuned-minilm"])
    chunking: ChunkingUpdate | None = None
    cleaning: CleaningUpdate | None = None
    redaction: RedactionConfig | None = None
    backend: Literal["faiss", "qdrant"] | None = None
    index_params: dict[str, Any] | None = Field(
        None,
        examples=[{"index_type": "hnsw", "M": 32}],
        description="FAISS: index_type flat | hnsw | ivfpq and its parameters",
    )


class VersionPublic(PublicModel):
    number: int
    status: str
    backend: str
    embedding_model: str
    dimension: int
    config: dict[str, Any]
    index_params: JsonObject
    progress: Progress
    vector_count: int
    stats: JsonObject
    error: str | None
    job_id: str | None
    created_at: datetime
    ready_at: datetime | None
    promoted_at: datetime | None
    retired_at: datetime | None
    purged_at: datetime | None
    # Set by promote: the recorded decision (outcome, gate checks, who forced it).
    decision: dict[str, Any] | None = None


class VersionList(BaseModel):
    live_version: int | None
    versions: list[VersionPublic]


class JobAccepted(BaseModel):
    job_id: str


class JobPublic(PublicModel):
    """A background job (ingestion, build, GC, eval run, test-set generation)."""

    id: str
    kind: str
    kb_id: str | None
    status: str
    attempts: int
    max_attempts: int
    progress: Progress
    message: str
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
