"""SQLAlchemy models. The same code serves SQLite (embedded) and PostgreSQL (scale-out);
schema changes go through Alembic migrations in `core/migrations`."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC: SQLite drops tz info, so we store naive UTC on both backends."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RevisionStatus(enum.StrEnum):
    PENDING = "pending"
    PARSING = "parsing"
    CLEANING = "cleaning"
    REDACTING = "redacting"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    INDEXING = "indexing"
    INDEXED = "indexed"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class VersionStatus(enum.StrEnum):
    BUILDING = "building"
    READY = "ready"
    LIVE = "live"
    RETIRED = "retired"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class KnowledgeBase(Base):
    __tablename__ = "knowledge_bases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # {"chunking": {...}, "redaction": {...}, "embedding_model": "..."}
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    documents: Mapped[list[Document]] = relationship(
        back_populates="kb", cascade="all, delete-orphan", passive_deletes=True
    )


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("kb_id", "filename", name="uq_document_kb_filename"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(512))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    current_revision_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    kb: Mapped[KnowledgeBase] = relationship(back_populates="documents")
    revisions: Mapped[list[DocumentRevision]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DocumentRevision.number",
    )


class DocumentRevision(Base):
    __tablename__ = "document_revisions"
    __table_args__ = (
        UniqueConstraint("document_id", "number", name="uq_revision_number"),
        Index("ix_revision_sha", "content_sha256"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    content_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=RevisionStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Counters per stage and seconds per stage; never document content.
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    document: Mapped[Document] = relationship(back_populates="revisions")


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunk_revision", "revision_id"),
        Index("ix_chunk_kb", "kb_id"),
        # Ingest reads a document's chunks of one config (see ingest.revisions).
        Index("ix_chunk_document", "document_id", "config_hash"),
    )

    # Deterministic and revision-independent: hash(kb, document, config hash, text, the
    # payload's page/section/language, occurrence); see ingest.revisions.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    revision_id: Mapped[str] = mapped_column(
        ForeignKey("document_revisions.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    token_count: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The pipeline config hash that produced it: index versions with the same hash share
    # chunks; a version with other chunking or another model has its own.
    config_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)


class IndexVersion(Base):
    __tablename__ = "index_versions"
    __table_args__ = (
        UniqueConstraint("kb_id", "number", name="uq_version_number"),
        # Exactly one live version per KB, enforced by the database itself.
        Index(
            "uq_one_live_version",
            "kb_id",
            unique=True,
            sqlite_where=text("status = 'live'"),
            postgresql_where=text("status = 'live'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.BUILDING)
    backend: Mapped[str] = mapped_column(String(16), default="faiss")
    embedding_model: Mapped[str] = mapped_column(String(512))
    dimension: Mapped[int] = mapped_column(Integer)
    # The ingestion config (chunking, cleaning, redaction, model) this version was built with.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_hash: Mapped[str] = mapped_column(String(64))
    vector_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped on every write, so readers in other processes know to reload.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # FAISS: {"index_type": "flat" | "hnsw" | "ivfpq", ...}; Qdrant: {}.
    index_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Build progress (0..1), documents/chunks counted, seconds per stage, last error.
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # Set when garbage collection removed the index data of a retired version.
    purged_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_job_claim", "status", "run_after"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    kb_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class EmbeddingCacheEntry(Base):
    """Vectors keyed by (model digest, text hash): unchanged text is never embedded twice."""

    __tablename__ = "embedding_cache"

    model_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Lease(Base):
    """A named, expiring lock held by one process (e.g. the acting scheduler)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class PromptTemplate(Base):
    """A versioned prompt: `system` plus a user `template` with `{context}` and `{query}`.
    Versions never change; a new text is the next version of the same name."""

    __tablename__ = "prompt_templates"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_prompt_name_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    system: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnswerSettings(Base):
    """A knowledge base's default generator and prompt for /answer and the façades."""

    __tablename__ = "kb_answer_settings"

    kb_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    generator: Mapped[str | None] = mapped_column(String(64), default=None)
    prompt_name: Mapped[str | None] = mapped_column(String(128), default=None)
    # None: the newest version of prompt_name at answer time.
    prompt_version: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Answer(Base):
    """One generated answer with everything that produced it: the raw material of
    evaluation sets (see AnswerFeedback)."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answer_kb_created", "kb_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    # [{"index", "chunk_id", "document_id", "filename", "page_number", "section", "score"}]
    citations: Mapped[list[Any]] = mapped_column(default=list)
    # Every passage the generator saw: [{"index", "chunk_id", "document_id", "text", "score",
    # "relevance"}]
    contexts: Mapped[list[Any]] = mapped_column(default=list)
    generator: Mapped[str] = mapped_column(String(64))
    generator_model: Mapped[str | None] = mapped_column(String(512), default=None)
    prompt_name: Mapped[str] = mapped_column(String(128))
    prompt_version: Mapped[int] = mapped_column(Integer)
    index_version: Mapped[int | None] = mapped_column(Integer, default=None)
    # "api", "stream", "openai", "cli": which door the question came through.
    channel: Mapped[str] = mapped_column(String(16), default="api")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # A/B: the experiment and the arm that served this answer (None outside experiments).
    arm: Mapped[str | None] = mapped_column(String(64), default=None)
    ab_test_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    # A/B: sha256 prefix of the user/session id the arm was chosen for (never the raw id).
    subject: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnswerFeedback(Base):
    __tablename__ = "answer_feedback"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    correction: Mapped[str | None] = mapped_column(Text, default=None)
    # The chunk a reviewer names as supporting the correction (a thumbs-down). No foreign
    # key: chunks go when their document changes or is erased, the feedback stays, and
    # fine-tuning skips a chunk that is no longer in the live version.
    supporting_chunk_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TestSet(Base):
    """One version of a named test set. Versions never change: uploading to an existing
    name (or promoting more feedback into it) creates the next version."""

    __tablename__ = "testsets"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_testset_name_version"),)
    __test__ = False  # not a pytest class

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    # "upload", "feedback" or "generated".
    source: Mapped[str] = mapped_column(String(16), default="upload")
    # The KB feedback or generation came from (uploads are KB-independent).
    kb_id: Mapped[str | None] = mapped_column(String(32), default=None)
    case_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TestCase(Base):
    __tablename__ = "testset_cases"
    __table_args__ = (UniqueConstraint("testset_id", "position", name="uq_testcase_position"),)
    __test__ = False

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    testset_id: Mapped[str] = mapped_column(ForeignKey("testsets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    reference_answer: Mapped[str | None] = mapped_column(Text, default=None)
    reference_contexts: Mapped[list[Any]] = mapped_column(default=list)
    # Document ids or filenames; filenames are resolved in the evaluated KB at run time.
    reference_doc_ids: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    # Where the case came from, e.g. {"answer_id", "feedback_id"}.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class EvalRun(Base):
    """One evaluation of a test set version against a KB's pinned index version with one
    generator, prompt version and retrieval parameters (together: `key`, hashed in
    `key_hash`). Per-question rows are `EvalResult`s; `aggregate` holds metric means."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_run_kb_created", "kb_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    testset_id: Mapped[str] = mapped_column(ForeignKey("testsets.id", ondelete="CASCADE"))
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    index_version: Mapped[int] = mapped_column(Integer)
    embedding_model: Mapped[str] = mapped_column(String(512))
    generator: Mapped[str] = mapped_column(String(64))
    prompt_name: Mapped[str] = mapped_column(String(128))
    prompt_version: Mapped[int] = mapped_column(Integer)
    # {"top_k", "mode"}
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[list[Any]] = mapped_column(default=list)
    key: Mapped[dict[str, Any]] = mapped_column(default=dict)
    key_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    question_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_count: Mapped[int] = mapped_column(Integer, default=0)
    aggregate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Seconds spent scoring (summed over attempts) and judge token counts when known.
    wall_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class EvalResult(Base):
    """One question's outcome in a run; its existence marks the question done, so a
    retried run skips it."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "case_id", name="uq_eval_result_case"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(ForeignKey("testset_cases.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    # [{"chunk_id", "document_id", "filename", "score"}], best first.
    retrieved: Mapped[list[Any]] = mapped_column(default=list)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvalSchedule(Base):
    """A recurring or event-driven evaluation, run by the scheduler.

    kind `live_nightly`: evaluate each live version (of `kb_id`, or of every KB when None)
    on the cron expression `cron`; kind `on_ready`: evaluate every version that becomes
    ready. `params` holds the eval parameters (generator, prompt, top_k, mode, metrics)."""

    __tablename__ = "eval_schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    kb_id: Mapped[str | None] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), default=None
    )
    testset: Mapped[str] = mapped_column(String(128))
    # None: the newest version of the test set at run time.
    testset_version: Mapped[int | None] = mapped_column(Integer, default=None)
    cron: Mapped[str | None] = mapped_column(String(64), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class QualityGate(Base):
    """A KB's promotion policy: absolute floors per metric (`min_scores`) and the largest
    allowed drop of any compared metric against the live version (`max_regression`),
    measured on one test set with the same eval parameters for both versions."""

    __tablename__ = "quality_gates"

    kb_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    testset: Mapped[str] = mapped_column(String(128))
    testset_version: Mapped[int | None] = mapped_column(Integer, default=None)
    min_scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_regression: Mapped[float | None] = mapped_column(Float, default=None)
    # Metrics compared against live (empty: every metric both runs have).
    metrics: Mapped[list[Any]] = mapped_column(default=list)
    # Eval parameters for gate runs: generator, prompt, top_k, mode.
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(128), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class PromotionDecision(Base):
    """Audit record of one promotion attempt (an index version or a model stage change):
    what was checked, the evidence, the outcome and who forced it, if anyone."""

    __tablename__ = "promotion_decisions"
    __table_args__ = (Index("ix_decision_kb_created", "kb_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # "index_version" or "model".
    subject_type: Mapped[str] = mapped_column(String(32))
    # e.g. "v3" or "embedding:minilm-cls-256".
    subject: Mapped[str] = mapped_column(String(256))
    index_version: Mapped[int | None] = mapped_column(Integer, default=None)
    baseline_version: Mapped[int | None] = mapped_column(Integer, default=None)
    eval_run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    baseline_run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # "promoted", "refused", "overridden", "pending", "failed".
    outcome: Mapped[str] = mapped_column(String(16))
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str | None] = mapped_column(String(128), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    # {"checks": [{"metric", "rule", "value", "threshold", "baseline", "passed"}], ...}
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RegistryModel(Base):
    """A model known to the deployment: embedding model, generator, judge or reranker,
    with where it comes from, its digest, its stage and its lineage."""

    __tablename__ = "registry_models"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_registry_kind_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # "embedding", "generator", "judge", "reranker".
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(256))
    # "local_path", "hub_id", "endpoint", "package", "builtin".
    source_type: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(1024))
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    # "candidate", "staging", "production", "archived".
    stage: Mapped[str] = mapped_column(String(16), default="candidate")
    # {"fine_tuned_from": "<name>", "training_data": "...", "notes": "..."}
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    stage_changed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class ABTest(Base):
    """An A/B split of a KB's /answer traffic between arms (index versions and/or
    generators), by weight, sticky per user or session id."""

    __tablename__ = "ab_tests"
    __table_args__ = (UniqueConstraint("kb_id", "name", name="uq_ab_test_kb_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    # "running" or "stopped"; at most one running test per KB.
    status: Mapped[str] = mapped_column(String(16), default="running")
    # [{"name": "A", "weight": 50, "index_version": 1, "generator": "extractive",
    #   "prompt": "default@1"}, ...]
    arms: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class ApiKey(Base):
    """An API key: a role over some knowledge bases (`kbs`: their ids) or over all
    (`kbs` None). Only the sha256 of the secret is kept; the secret is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # "admin", "owner", "reviewer" or "reader" (core.access.Role).
    role: Mapped[str] = mapped_column(String(16))
    kbs: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the secret, to tell keys apart in listings and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class AuditEvent(Base):
    """One line of the append-only audit log: who (a key id, never a secret), did what,
    to which KB, when, in which request, with what outcome."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_kb_at", "kb_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # "bootstrap" for RAGOPS_ADMIN_KEY, "anonymous" in open mode, None when unknown.
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(64))
    kb_id: Mapped[str | None] = mapped_column(String(32), default=None)
    target: Mapped[str | None] = mapped_column(String(512), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # "ok", "denied" or "error"; `status` the HTTP status when it came over HTTP.
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    method: Mapped[str | None] = mapped_column(String(8), default=None)
    path: Mapped[str | None] = mapped_column(String(1024), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Erasure(Base):
    """One erase (of documents, or of a data subject's values) and its receipt.

    The receipt says what was found and removed in each store, by count and id, never
    the values themselves: the row outlives the data as proof of the erase. `targets`
    keeps the ids still to erase while it runs, so that an interrupted erase can be
    finished (`status` "running" or "failed")."""

    __tablename__ = "erasures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # "document" or "subject".
    kind: Mapped[str] = mapped_column(String(16))
    kb_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # "running", "completed" or "failed".
    status: Mapped[str] = mapped_column(String(16), default="running")
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    receipt: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class IndexSnapshot(Base):
    """An index version exported as a Qdrant shard snapshot (`index.snapshots`): the
    archive sits in the blob store under its sha256; the row keeps what a restore checks
    (model, dimension, pipeline config) and where it was restored to (`restored_into`)."""

    __tablename__ = "index_snapshots"
    __table_args__ = (Index("ix_index_snapshot_kb_created", "kb_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    # The version it was taken of (None for an imported file); no foreign key: the
    # snapshot outlives the version's garbage collection.
    version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    version_number: Mapped[int | None] = mapped_column(Integer, default=None)
    # The engine that held the version: "qdrant-edge", "qdrant-server" or "file".
    engine: Mapped[str] = mapped_column(String(16))
    # "qdrant-shard": a Qdrant shard snapshot (`index.snapshot_archive`).
    format: Mapped[str] = mapped_column(String(32), default="qdrant-shard")
    blob_key: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    point_count: Mapped[int] = mapped_column(Integer)
    dimension: Mapped[int] = mapped_column(Integer)
    embedding_model: Mapped[str] = mapped_column(String(512))
    # Whether its points hold BM25 sparse vectors (hybrid inside the engine).
    lexical: Mapped[bool] = mapped_column(Boolean, default=False)
    # The source version's ingestion config and its hash: a restored version keeps them.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_hash: Mapped[str] = mapped_column(String(64))
    # [{"kb_id", "version_id", "version_number", "at"}]: each version restored from it.
    restored_into: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when an erasure deleted the archive (it may have held an erased document).
    erased_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class FineTuneRun(Base):
    """One fine-tuning of an embedding model from a KB's own feedback and test sets
    (`eval.finetune`): the request, the dataset it trained on (id and counts), the loss
    curve and dev figures per epoch, the outcome and the model it registered. Its id is
    the id of the job that runs it (`GET /v1/jobs/{id}`)."""

    __tablename__ = "finetune_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    # The registry name the result gets, and the registered base model's name.
    name: Mapped[str] = mapped_column(String(256))
    base_model: Mapped[str] = mapped_column(String(256))
    # Hyper-parameters, sources and test sets as requested (defaults filled in).
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"id", "counts", "index_version"}: what it trained on (the pairs themselves are
    # rebuilt from the catalog, never stored: an erase must reach them).
    dataset: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # "queued", "running", "succeeded", "refused", "failed" or "cancelled".
    status: Mapped[str] = mapped_column(String(16), default="queued")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"epoch", "step", "loss"}] (every step, thinned past a bound) and per epoch
    # [{"epoch", "loss", "dev": {...}, "seconds"}].
    steps: Mapped[list[Any]] = mapped_column(default=list)
    epochs: Mapped[list[Any]] = mapped_column(default=list)
    # {"base": {"recall@5", "mrr@10"}, "tuned": {...}, "gain": ..., "min_gain": ...}
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_name: Mapped[str | None] = mapped_column(String(256), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
