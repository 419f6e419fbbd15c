"""Request and response bodies (public contract: field names are what clients send)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    computed_field,
    field_validator,
    model_validator,
)

from api.limits import MAX_DB_INT, MAX_QUERY_CHARS
from core.catalog.models import JobStatus, RevisionStatus, VersionStatus
from ingest.config import ChunkingConfig, CleaningConfig, RedactionConfig
from ingest.knowledge_bases import ID_LIKE_RE
from ingest.knowledge_bases import NAME_RE as KB_NAME_RE
from ingest.knowledge_bases import RESERVED_NAMES as RESERVED_KB_NAMES


class RowWith:
    """A row's attributes, with `extra` ones added or replacing them."""

    def __init__(self, row: Any, extra: dict[str, Any]) -> None:
        self._row, self._extra = row, extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__["_extra"]
        return extra[name] if name in extra else getattr(self.__dict__["_row"], name)


class RequestModel(BaseModel):
    """A request body: fields the schema does not name are refused, and a JSON value of
    the wrong type is never coerced (no "5" for 5, no 0 for false), so what the service
    accepts is what the OpenAPI document says."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_floats(cls, value: Any) -> Any:
        # JSON Schema counts 41.0 as an integer; strict mode alone would refuse it.
        return int(value) if isinstance(value, float) and value.is_integer() else value


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


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Every timestamp in a response: catalog columns hold naive UTC, so a naive value is
# taken as UTC; it is sent as ISO 8601 ending in `Z` (the pattern states it, so the
# schemathesis run checks it on every response).
UtcDateTime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": "Z$",
            "description": "UTC, ISO 8601 with a `Z` suffix",
        }
    ),
]


def choices(values: Iterable[str | None]) -> dict[str, Any]:
    """`json_schema_extra` documenting the values a field takes as an enum (add None for
    an optional one), where the domain checks them itself with a message naming them, or
    for a response field."""
    return {"enum": list(values)}


def each_of(values: Iterable[str]) -> dict[str, Any]:
    """`choices` for the items of a list field."""
    return {"items": {"type": "string", **choices(values)}}


REVISION_STATUSES = tuple(s.value for s in RevisionStatus)
# Rows name the column `metadata_`: `metadata` is SQLAlchemy's own attribute.
METADATA_COLUMN = AliasChoices("metadata_", "metadata")


class CleaningUpdate(RequestModel):
    """Fields left out stay as they are; `near_duplicate_threshold: null` disables it."""

    unicode_normalization: Literal["NFKC", "NFC", "none"] | None = None
    drop_duplicate_chunks: bool | None = None
    remove_boilerplate: bool | None = None
    near_duplicate_threshold: float | None = Field(None, ge=0.5, le=1.0)


# The ingestion settings as a request sends them (strict, like every request body).
class ChunkingSettings(RequestModel, ChunkingConfig):
    pass


class RedactionSettings(RequestModel, RedactionConfig):
    pass


class KnowledgeBaseCreate(RequestModel):
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        examples=["handbook"],
        description="Letters, digits, '_', '-' or '.', starting with a letter or digit; "
        f"not {' or '.join(sorted(RESERVED_KB_NAMES))} (a route of its own), not 32 hex "
        "digits (the shape of an id)",
        # Checked by `ingest.knowledge_bases.create_kb`, with a message saying why.
        json_schema_extra={
            "pattern": KB_NAME_RE.pattern,
            "not": {
                "anyOf": [{"enum": sorted(RESERVED_KB_NAMES)}, {"pattern": ID_LIKE_RE.pattern}]
            },
        },
    )
    description: str = Field("", max_length=2000)
    chunking: ChunkingSettings | None = None
    redaction: RedactionSettings | None = None
    cleaning: CleaningUpdate | None = None
    embedding_model: str | None = Field(None, examples=["all-MiniLM-L6-v2"])
    reranker: str | None = Field(
        None, description="Local sentence-transformers CrossEncoder folder used when rerank is on"
    )


class ChunkingUpdate(RequestModel):
    chunk_size: int | None = Field(None, gt=0)
    chunk_overlap: int | None = Field(None, ge=0)


class KnowledgeBaseUpdate(RequestModel):
    description: str | None = Field(None, max_length=2000)
    chunking: ChunkingUpdate | None = None
    redaction: RedactionSettings | None = None
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
    created_at: UtcDateTime
    updated_at: UtcDateTime
    matched_by: Literal["name", "id"] | None = Field(
        None, description="Whether the `{kb}` in the path matched the KB's name or its id"
    )

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


class UploadError(BaseModel):
    code: str = Field(description="Machine-readable, e.g. `unavailable`")
    message: str


class UploadItem(BaseModel):
    document_id: str | None = Field(description="None for a file that was not stored")
    revision_id: str | None = Field(description="None for a file that was not stored")
    revision: int | None = Field(description="None for a file that was not stored")
    filename: str
    status: str = Field(
        description="The revision's status (`pending` when just queued); `not_stored` when "
        "the file could not be stored: nothing of it was kept (see `error`), send it again"
    )
    duplicate: bool = Field(
        description="True when these exact bytes were already the "
        "current content of a document: nothing new is queued"
    )
    job_id: str | None
    error: UploadError | None = Field(
        None, description="Why the file was not stored (status `not_stored`); else None"
    )


class SkippedMember(BaseModel):
    filename: str
    reason: str


class UploadResponse(BaseModel):
    documents: list[UploadItem] = Field(description="One item per file (archive member), in order")
    skipped: list[SkippedMember] = Field(
        default_factory=list, description="Archive members that were not stored, and why"
    )
    not_stored: int = Field(
        0, description="Items with status `not_stored` (storage failed for them): send again"
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
    created_at: UtcDateTime
    age_seconds: float


class IngestionFailure(BaseModel):
    document_id: str
    filename: str
    error: str | None
    created_at: UtcDateTime


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


class RedactionReport(BaseModel):
    """How many spans of each entity type the redact stage replaced in one revision,
    overall and per language the text was analysed in; never the values."""

    total: int
    by_entity: dict[str, int] = Field(examples=[{"EMAIL_ADDRESS": 1, "PERSON": 2}])
    by_language: dict[str, dict[str, int]] = Field(
        description="Per analysis language (en, es, ru, other), counts by entity type",
        examples=[{"es": {"PERSON": 2}, "en": {"EMAIL_ADDRESS": 1}}],
    )

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> RedactionReport | None:
        counts = report.get("counts") or {}
        if "redact" not in counts and "redact" not in (report.get("seconds") or {}):
            return None
        by_entity = {k: int(n) for k, n in sorted((counts.get("redact") or {}).items())}
        by_language: dict[str, dict[str, int]] = {}
        for key, n in sorted((counts.get("redact_by_language") or {}).items()):
            language, _, entity = str(key).partition(":")
            by_language.setdefault(language, {})[entity] = int(n)
        return cls(total=sum(by_entity.values()), by_entity=by_entity, by_language=by_language)


def _redaction_of_report(value: Any) -> Any:
    return RedactionReport.from_report(value) if isinstance(value, dict) else value


class RevisionPublic(PublicModel):
    id: str
    number: int
    status: str = Field(json_schema_extra=choices(REVISION_STATUSES))
    error: str | None
    content_sha256: str
    size_bytes: int
    media_type: str
    chunk_count: int
    report: JsonObject = Field(
        description="What each stage did: `counts` per stage, `seconds` per stage, the "
        "detected `language`; counters only, never document content"
    )
    created_at: UtcDateTime
    indexed_at: UtcDateTime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def redaction(self) -> RedactionReport | None:
        """The redact stage's part of `report`; None when this revision was not redacted
        (redaction off, not processed yet, or its stored chunks were reused)."""
        return RedactionReport.from_report(self.report)


# From an `ingest.documents.list_documents` row: a document with its current revision's
# columns, None when it has none.
class DocumentSummary(PublicModel):
    id: str
    filename: str
    status: str = Field(
        description="The current revision's status; `unknown` for a document without one",
        json_schema_extra=choices((*REVISION_STATUSES, "unknown")),
    )
    error: str | None
    language: str | None = Field(
        None,
        description="Detected language: en, es, ru or other",
        validation_alias=AliasChoices("language", AliasPath("report", "language")),
    )
    revision: int | None
    media_type: str | None = Field(
        None, description="The current revision's sniffed media type, e.g. `text/plain`"
    )
    redaction: Annotated[RedactionReport | None, BeforeValidator(_redaction_of_report)] = Field(
        None,
        validation_alias="report",
        description="The current revision's redaction report (see the revision's)",
    )
    chunk_count: int
    metadata: JsonObject = Field(validation_alias=METADATA_COLUMN)
    updated_at: UtcDateTime

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


class DocumentFacets(BaseModel):
    """The KB's documents per value of each filter, whatever the filters (to offer them)."""

    media_type: dict[str, int] = Field(description="Per current revision's media type")
    language: dict[str, int] = Field(description="Per detected language; `none` when unknown")


class DocumentList(BaseModel):
    counts: dict[str, int] = Field(description="The KB's documents per status, unfiltered")
    total: int = Field(description="Documents matching the request's filters")
    documents: list[DocumentSummary]
    facets: DocumentFacets | None = Field(None, description="With `facets=true` only")


class ChunkPublic(PublicModel):
    id: str
    position: int
    text: str = Field(description="As indexed: after cleaning and redaction")
    token_count: int
    metadata: JsonObject = Field(
        validation_alias=METADATA_COLUMN, description="page_number, section, language"
    )


class ChunkList(BaseModel):
    document_id: str
    index_version: int | None = Field(
        description="The version whose chunking these are (the live one unless asked); "
        "null when the KB has no version yet"
    )
    revision: int | None = Field(
        description="The indexed revision they come from; null when none is indexed"
    )
    revision_id: str | None
    total: int
    limit: int
    offset: int
    chunks: list[ChunkPublic]


_FILTERS_DOC = (
    "Filters on document_id, revision_id, filename, page_number, section or upload "
    "metadata, all of which must hold: a value means equality, a list any of its items, "
    'an object a range with gt/gte/lt/lte on numbers or ISO dates (`{"year": {"gte": '
    '2020}}`, `{"date": {"gte": "2024-01-01", "lt": "2024-07-01"}}`)'
)


class RetrievalOptions(RequestModel):
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
    kbs: list[str] = Field(
        ...,
        min_length=1,
        max_length=20,
        description="Knowledge bases, each once",
        json_schema_extra={"uniqueItems": True},
    )


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


class VersionCreate(RequestModel):
    """Any subset; everything not given is taken from the KB's current config."""

    embedding_model: str | None = Field(
        None,
        examples=["all-MiniLM-L6-v2"],
        description="A packaged model or a local sentence-transformers folder, e.g. "
        "/models/my-finetuned-minilm",
    )
    chunking: ChunkingUpdate | None = None
    cleaning: CleaningUpdate | None = None
    redaction: RedactionSettings | None = None
    backend: Literal["faiss", "qdrant"] | None = None
    index_params: dict[str, Any] | None = Field(
        None,
        examples=[{"index_type": "hnsw", "M": 32}],
        description="FAISS: index_type flat | hnsw | ivfpq and its parameters",
    )


class VersionPublic(PublicModel):
    number: int
    status: str = Field(json_schema_extra=choices(s.value for s in VersionStatus))
    backend: str
    engine: Literal["faiss", "qdrant-edge", "qdrant-server"] = Field(
        description="What holds the vectors: FAISS files or Qdrant Edge shards in the data "
        "dir, or a Qdrant server; recorded when the version is created"
    )
    embedding_model: str
    dimension: int
    config: dict[str, Any]
    index_params: JsonObject
    progress: Progress
    vector_count: int
    stats: JsonObject
    error: str | None
    job_id: str | None
    created_at: UtcDateTime
    ready_at: UtcDateTime | None
    promoted_at: UtcDateTime | None
    retired_at: UtcDateTime | None
    purged_at: UtcDateTime | None
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
    status: str = Field(json_schema_extra=choices(s.value for s in JobStatus))
    attempts: int
    max_attempts: int
    progress: Progress
    message: str
    error: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    finished_at: UtcDateTime | None


# The probes (api/routes/health.py answer these themselves; documentation only).
class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "warming", "failed", "not_ready"]
    ready: bool
    checks: dict[str, bool | None] = Field(
        description="Each check by name: true, false, or null while not asked yet"
    )
    warming: list[str] = Field(description="What is still loading")
    since_s: float | None
    error: str | None = Field(description="Why warm-up failed, if it did")
    reasons: dict[str, str] = Field(
        default_factory=dict, description="Why each failed check failed"
    )
