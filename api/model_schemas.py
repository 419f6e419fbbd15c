"""Bodies of the model registry routes (`/v1/models/registry`; public contract: field
names are what clients send)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from api.limits import MAX_DB_INT
from api.schemas import METADATA_COLUMN, JsonObject, PublicModel, RequestModel, UtcDateTime
from eval.generate import MAX_SIZE as SYNTHETIC_MAX
from eval.registry import NAME_RE as MODEL_NAME

Kind = Literal["embedding", "generator", "judge", "reranker"]
Stage = Literal["candidate", "staging", "production", "archived"]
SourceType = Literal["local_path", "hub_id", "endpoint", "package", "builtin"]


def _range(low: float, high: float) -> dict[str, Any]:
    """Bounds for the schema only: the domain code checks them with its own messages."""
    return {"minimum": low, "maximum": high}


class Lineage(RequestModel):
    fine_tuned_from: str | None = Field(
        None,
        max_length=1024,
        description="The parent: a registered model's name or a hub id",
        examples=["all-MiniLM-L6-v2"],
    )
    training_data: str | None = Field(
        None, max_length=4096, description="What it was trained on (text or a URI)"
    )
    notes: str | None = Field(None, max_length=4096)


class ModelCreate(RequestModel):
    kind: Kind
    name: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="Unique per kind; may contain '/' like a hub id, not end in '/stage' "
        "(the path of stage changes)",
        examples=["minilm-cls-256"],
        # Checked by `eval.registry.check_name`, with a message saying how.
        json_schema_extra={"pattern": MODEL_NAME.pattern, "not": {"pattern": "/stage$"}},
    )
    source_type: SourceType = Field(
        description="local_path (a folder or file on the server, digested), hub_id (never "
        "downloaded), endpoint (an http(s) URL), package (an installed package or a "
        "packaged embedding model); builtin is reserved for what the service ships"
    )
    source: str = Field(..., min_length=1, max_length=1024)
    description: str = Field("", max_length=4000)
    lineage: Lineage | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_a_stage_path(cls, name: str) -> str:
        if name.endswith("/stage"):
            raise ValueError(
                "a name may not end in '/stage': .../{name}/stage is the path of stage changes"
            )
        return name


class ModelUpdate(RequestModel):
    """Given fields replace the stored value; `{}` clears lineage or metadata."""

    description: str | None = Field(None, max_length=4000)
    lineage: Lineage | None = None
    metadata: dict[str, Any] | None = None


class StageChange(RequestModel):
    stage: Stage
    kb: str | None = Field(
        None,
        min_length=1,
        description="Embedding models to production only: roll the model out to this KB "
        "(build a new index version, evaluate it, go live through the quality gate)",
    )
    actor: str | None = Field(None, max_length=128, description="Who asks (audit record)")
    reason: str = Field("", max_length=4000)
    force: bool = Field(
        False,
        description="Override a failing quality gate (rollout), or archive a model in use; "
        "recorded on the decision",
    )


class ModelPublic(PublicModel):
    kind: str
    name: str
    source_type: str
    source: str
    digest: str | None = Field(description="sha256 of the model's local files, if any")
    stage: str
    lineage: JsonObject
    metadata: JsonObject = Field(validation_alias=METADATA_COLUMN)
    description: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    stage_changed_at: UtcDateTime | None


class ModelList(BaseModel):
    data: list[ModelPublic]


class ModelRef(PublicModel):
    kind: str
    name: str
    stage: str


class KbUse(BaseModel):
    kb: str
    role: Literal["embedding_model", "reranker", "answer_generator"]


class VersionUse(BaseModel):
    kb: str
    number: int
    status: str


class ModelUsage(PublicModel):
    kbs: list[KbUse]
    index_versions: list[VersionUse] = Field(description="Versions that are not retired")
    server_defaults: list[str] = Field(description="Settings that default to this model")
    in_use: bool


class StageEvent(BaseModel):
    """A stage change of the model, or a rollout of it to a KB (with its index version;
    `outcome` pending → promoted / overridden / refused / failed)."""

    decision_id: str
    type: Literal["stage_change", "rollout"]
    outcome: str
    from_stage: str | None = Field(None, description="Stage before (stage changes)")
    to_stage: str | None = Field(None, description="Stage after, or a rollout's target")
    kb: str | None
    index_version: int | None
    forced: bool
    actor: str | None
    reason: str
    created_at: UtcDateTime


class ModelDetail(ModelPublic):
    usage: ModelUsage
    parent: ModelRef | None = Field(description="The registered model it is fine-tuned from")
    children: list[ModelRef] = Field(description="Registered models fine-tuned from it")
    history: list[StageEvent]


class RolloutAccepted(PublicModel):
    """An embedding model's rollout to a KB, pending until its version is built,
    evaluated and passed (or refused) by the quality gate."""

    decision_id: str
    kb: str
    model: ModelRef
    outcome: str = Field(description="pending until the gate decides")
    index_version: int | None
    evidence: JsonObject
    created_at: UtcDateTime


# -- fine-tuning (`/v1/models/finetune`, `/v1/kbs/{kb}/finetune-dataset`) ---------------

FineTuneSource = Literal["feedback", "testsets", "synthetic"]


class FineTuneCreate(RequestModel):
    """Fine-tune a registered embedding model on a KB's own feedback, test sets and/or
    questions the LLM judge writes for its chunks; the result is registered as a
    candidate only if it beats the base on the dev split."""

    name: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="Registry name of the fine-tuned model (must be free)",
        examples=["e5-docs-ft1"],
        json_schema_extra={"pattern": MODEL_NAME.pattern},
    )
    base_model: str = Field(
        ..., min_length=1, max_length=200, description="A registered embedding model's name"
    )
    kb: str = Field(..., min_length=1, description="The knowledge base whose data it learns")
    sources: list[FineTuneSource] = Field(
        default_factory=lambda: ["feedback"],
        description="feedback (thumbs-up citations, corrections naming a chunk), testsets "
        "(cases with reference contexts), synthetic (the job first has the LLM judge write "
        "questions for sampled chunks of the live version and stores them as test set "
        "finetune-<name>-synthetic; 409 without a judge)",
    )
    testsets: list[str] | None = Field(
        None, description="Test set names ('name' or 'name@version') for source testsets"
    )
    synthetic_questions: int | None = Field(
        None,
        description="Questions the judge writes for source synthetic; default 100, 1-500 "
        "(422 without source synthetic)",
        # Checked by `eval.finetune_data.check_synthetic`, with a message saying how.
        json_schema_extra={"minimum": 1, "maximum": SYNTHETIC_MAX},
    )
    # The bounds are stated in the schema and checked by `eval.finetune.FineTuneParams`,
    # whose messages say which field and what range.
    epochs: int | None = Field(None, description="Default 1; 1-20", json_schema_extra=_range(1, 20))
    batch_size: int | None = Field(
        None, description="Default 16; 2-256", json_schema_extra=_range(2, 256)
    )
    learning_rate: float | None = Field(
        None, description="Default 2e-5; 1e-7 to 1e-3", json_schema_extra=_range(1e-7, 1e-3)
    )
    max_minutes: float | None = Field(
        None,
        description="Training time bound; default 30, 0.1 to 1440",
        json_schema_extra=_range(0.1, 24 * 60),
    )
    max_steps: int | None = Field(
        None,
        description="Optimizer steps bound; default none",
        json_schema_extra=_range(1, MAX_DB_INT),
    )
    max_seq_length: int | None = Field(
        None,
        description="Tokens per text while training (bounds a step's memory); default 256, 16-512",
        json_schema_extra=_range(16, 512),
    )
    hard_negatives: int | None = Field(
        None, description="Mined per train pair; default 1, 0-5", json_schema_extra=_range(0, 5)
    )
    min_dev_gain: float | None = Field(
        None,
        description="Dev recall@5 gain over the base needed to register; default 0.01, -1 to 1",
        json_schema_extra=_range(-1, 1),
    )
    seed: int | None = Field(
        None, description="Default 0; 0 to 2^32-1", json_schema_extra=_range(0, 2**32 - 1)
    )

    def hyperparameters(self) -> dict[str, Any]:
        keys = (
            "epochs",
            "batch_size",
            "learning_rate",
            "max_minutes",
            "max_steps",
            "max_seq_length",
            "hard_negatives",
            "min_dev_gain",
            "seed",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class FineTunePublic(PublicModel):
    """A fine-tuning run (its id is its job's id): request, dataset, loss per step, dev
    figures per epoch, outcome (queued → running → succeeded | refused | failed |
    cancelled) and the registered model."""

    id: str
    job_id: str
    kb: str | None
    name: str
    base_model: str
    params: JsonObject
    dataset: JsonObject
    status: str
    cancel_requested: bool
    steps: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    metrics: JsonObject
    report: JsonObject | None = Field(
        None,
        description="Base against fine-tuned on the dev split, once training ended: "
        "overall and by_language (recall@5, MRR@10, questions improved/worsened, hit@5 "
        "gained/lost) and questions (each one's rank_before/rank_after and "
        "hit@5_before/hit@5_after of its positive chunk)",
    )
    model_name: str | None
    error: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    finished_at: UtcDateTime | None


class FineTuneAccepted(BaseModel):
    job_id: str
    name: str
    base_model: str
    kb: str
    status: str
    dataset: JsonObject = Field(description="preview_id and counts of the data it will use")
    poll: str = Field(description="GET this for status and progress")
    run: str = Field(description="GET this for the loss curve and dev figures")


class FineTuneDatasetPublic(BaseModel):
    """What a fine-tuning run would train on now: id, counts by source, language and
    split, and the first pairs (texts as indexed, already redacted)."""

    id: str
    kb: str
    index_version: int
    sources: list[str]
    testsets: list[str]
    hard_negatives_mined: bool
    synthetic: dict[str, Any] | None = Field(
        None,
        description="Source synthetic: questions (how many the judge will write when the "
        "job runs: a preview generates none, so counts leave them out), judge, and a note",
    )
    counts: JsonObject
    sample: list[dict[str, Any]]
    trainable: bool
    refusal: str | None = Field(description="Why a run would be refused (422), if it would")
    min_train_pairs: int
    min_dev_pairs: int
