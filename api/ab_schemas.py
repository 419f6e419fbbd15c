"""Request and response models of /v1/kbs/{kb}/ab-tests (public contract)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.eval_schemas import EvalRunPublic
from api.limits import MAX_DB_INT
from api.schemas import PublicModel, RequestModel, UtcDateTime, choices, each_of
from eval.ab import NAME_PATTERN as AB_NAME
from eval.metrics import ALL_METRICS
from retrieval.generators import GENERATORS


class ArmCreate(RequestModel):
    name: str = Field(..., min_length=1, max_length=64, examples=["control"])
    weight: float = Field(
        ..., gt=0, description="Relative share of traffic: 50/50, 1/1 and 90/10 all work"
    )
    index_version: int | None = Field(
        None,
        ge=1,
        le=MAX_DB_INT,
        description="A ready or live version; default: the live one at creation",
    )
    generator: str | None = Field(
        None,
        description="extractive | local | openai; default: the KB's, else the server's",
        json_schema_extra=choices((*GENERATORS, None)),
    )
    prompt: str | None = Field(
        None, description='"name" or "name@version"; default: the KB\'s, else "default"'
    )


class ABTestCreate(RequestModel):
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        examples=["small-chunks"],
        json_schema_extra={"pattern": AB_NAME.pattern},
    )
    arms: list[ArmCreate] = Field(..., min_length=2, max_length=10)
    created_by: str | None = Field(None, max_length=128)


class ArmPublic(BaseModel):
    """An arm as stored: every field resolved when the test was created."""

    name: str
    weight: float
    index_version: int
    generator: str
    prompt: str = Field(description="name@version")


class ABTestPublic(PublicModel):
    id: str
    kb: str
    name: str
    status: Literal["running", "stopped"]
    arms: list[ArmPublic]
    created_by: str | None
    created_at: UtcDateTime
    stopped_at: UtcDateTime | None


class ABTestList(BaseModel):
    tests: list[ABTestPublic]


class ArmEval(BaseModel):
    run_id: str
    testset: str
    testset_version: int
    params: dict[str, Any]
    question_count: int
    finished_at: UtcDateTime | None
    scores: dict[str, float | None] = Field(description="Metric means of the run")


class ArmReport(ArmPublic):
    share: float = Field(description="weight / total weight")
    answers: int = Field(description="Answers this arm served")
    distinct_subjects: int | None = Field(
        description="Distinct users/sessions served (null where the catalog does not "
        "record subjects)"
    )
    feedback: int
    thumbs_up: int
    thumbs_down: int
    positive_rate: float | None = Field(description="thumbs_up / (thumbs_up + thumbs_down)")
    positive_rate_ci95: list[float] | None = Field(
        description="95% Wilson score interval [low, high] of positive_rate"
    )
    mean_latency_ms: float | None
    eval: ArmEval | None = Field(
        description="The latest succeeded eval run of exactly this arm's configuration"
    )


class ABTestReport(ABTestPublic):
    arms: list[ArmReport]  # type: ignore[assignment]


class ABEvaluate(RequestModel):
    testset: str = Field(..., min_length=1)
    testset_version: int | None = Field(
        None, ge=1, le=MAX_DB_INT, description="Default: the newest"
    )
    top_k: int | None = Field(None, ge=1, le=100)
    metrics: list[str] | None = Field(None, json_schema_extra=each_of(ALL_METRICS))


class ArmRun(BaseModel):
    arm: str
    run: EvalRunPublic


class ABEvaluateResponse(BaseModel):
    test: str
    runs: list[ArmRun]
