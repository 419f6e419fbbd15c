"""Request and response models of /v1/testsets and /v1/evals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.limits import MAX_DB_INT
from api.schemas import METADATA_COLUMN, JsonObject, NullAsEmptyList, Progress, PublicModel


class TestSetPublic(PublicModel):
    __test__ = False

    name: str
    version: int
    description: str
    source: str
    case_count: int
    created_at: datetime


class TestSetList(BaseModel):
    __test__ = False

    testsets: list[TestSetPublic]


class TestCasePublic(PublicModel):
    __test__ = False

    position: int
    question: str
    reference_answer: str | None
    reference_contexts: list[str]
    reference_doc_ids: list[str]
    tags: list[str]
    metadata: dict[str, Any] = Field(validation_alias=METADATA_COLUMN)


class TestSetDetail(TestSetPublic):
    cases: list[TestCasePublic]


class TestSetGenerate(BaseModel):
    __test__ = False

    kb: str
    name: str
    size: int = Field(..., ge=1, le=500, description="cases to generate")
    languages: list[str] | None = Field(None, description="ISO 639-1 codes, e.g. ['en', 'es']")


class TestSetGenerationPublic(PublicModel):
    __test__ = False

    job_id: str
    status: str
    progress: Progress
    message: str
    error: str | None
    kb: str
    name: str
    size: int
    languages: Annotated[list[str], NullAsEmptyList]
    index_version: int
    judge: str
    testset: TestSetPublic | None = None
    created_at: datetime
    finished_at: datetime | None


class EvalCreate(BaseModel):
    testset: str
    testset_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    kb: str
    index_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    generator: str | None = None
    prompt: str | None = Field(None, description="name or name@version")
    top_k: int | None = Field(None, ge=1, le=100)
    mode: str | None = None
    metrics: list[str] | None = None


class EvalRunPublic(PublicModel):
    id: str
    status: str
    progress: Progress
    question_count: int
    completed_count: int
    key: dict[str, Any]
    key_hash: str
    metrics: list[str]
    aggregate: JsonObject
    wall_seconds: float
    usage: JsonObject
    error: str | None
    job_id: str | None
    created_at: datetime
    finished_at: datetime | None


class EvalRunList(BaseModel):
    runs: list[EvalRunPublic]


class EvalResultPublic(PublicModel):
    position: int
    question: str
    answer: str
    retrieved: list[dict[str, Any]]
    scores: dict[str, Any]
    seconds: float


class EvalResultList(BaseModel):
    run_id: str
    results: list[EvalResultPublic]
