"""Request and response bodies of quality gates, promotion decisions and schedules."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field

from api.limits import MAX_DB_INT
from api.schemas import (
    JsonObject,
    NullAsEmptyDict,
    NullAsEmptyList,
    PublicModel,
    RequestModel,
    UtcDateTime,
    choices,
    each_of,
)
from eval.metrics import ALL_METRICS
from eval.schedules import KINDS
from retrieval.generators import GENERATORS
from retrieval.search import MODES


class GateParams(RequestModel):
    generator: str | None = Field(None, json_schema_extra=choices((*GENERATORS, None)))
    prompt: str | None = Field(None, description="name or name@version")
    top_k: int | None = Field(None, ge=1, le=100)
    mode: str | None = Field(None, json_schema_extra=choices((*MODES, None)))


class GateUpdate(RequestModel):
    testset: str = Field(min_length=1)
    testset_version: int | None = Field(
        None, ge=1, le=MAX_DB_INT, description="None: the newest version"
    )
    min_scores: dict[str, float] = Field(
        default_factory=dict, description='floors, e.g. {"faithfulness": 0.8}'
    )
    max_regression: float | None = Field(
        None, description="largest allowed drop of a compared metric below the live version"
    )
    metrics: list[str] = Field(
        default_factory=list,
        description="metrics compared with live (empty: all in common)",
        json_schema_extra=each_of(ALL_METRICS),
    )
    params: GateParams = Field(default_factory=GateParams)
    actor: str | None = None


class GatePublic(PublicModel):
    kb: str
    testset: str
    testset_version: int | None
    min_scores: Annotated[dict[str, float], NullAsEmptyDict]
    max_regression: float | None
    metrics: Annotated[list[str], NullAsEmptyList]
    params: JsonObject
    updated_by: str | None
    updated_at: UtcDateTime


class PromoteRequest(RequestModel):
    force: bool = Field(False, description="promote despite the gate (needs actor and reason)")
    actor: str | None = Field(None, max_length=128, description="who asks; recorded")
    reason: str | None = Field(None, max_length=2000)


class DecisionPublic(BaseModel):
    id: str
    kb: str | None
    subject_type: str
    subject: str
    index_version: int | None
    baseline_version: int | None
    eval_run_id: str | None
    baseline_run_id: str | None
    outcome: str
    passed: bool | None
    forced: bool
    actor: str | None
    reason: str
    evidence: dict[str, Any]
    created_at: UtcDateTime | None


class DecisionList(BaseModel):
    decisions: list[DecisionPublic]


class ScheduleCreate(RequestModel):
    name: str = Field(min_length=1, max_length=128)
    kind: str = Field(description="live_nightly or on_ready", json_schema_extra=choices(KINDS))
    kb: str | None = Field(None, description="one KB; None: every KB")
    testset: str = Field(min_length=1)
    testset_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    cron: str | None = Field(None, description='UTC crontab, live_nightly only; "0 2 * * *"')
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ScheduleUpdate(RequestModel):
    # Fields where null means something (every KB, no cron, the newest version); a
    # null elsewhere leaves the field as it is.
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"kb", "cron", "testset_version"})

    kb: str | None = None
    testset: str | None = None
    testset_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    cron: str | None = None
    params: dict[str, Any] | None = None
    enabled: bool | None = None


class SchedulePublic(PublicModel):
    name: str
    kind: str
    kb: str | None
    testset: str
    testset_version: int | None
    cron: str | None
    params: JsonObject
    enabled: bool
    last_run_at: UtcDateTime | None
    next_run_time: UtcDateTime | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class SystemJob(BaseModel):
    id: str
    name: str | None = None
    trigger: str
    next_run_time: UtcDateTime | None = None


class ScheduleList(BaseModel):
    schedules: list[SchedulePublic]
    system: list[SystemJob] = Field(
        description="the scheduler's own jobs (GC, reconcile, sync) with their next runs"
    )


class ScheduleRun(BaseModel):
    schedule: str
    eval_run_ids: list[str]
