"""Request and response models of /v1/testsets and /v1/evals."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from api.limits import MAX_DB_INT
from api.schemas import (
    METADATA_COLUMN,
    JsonObject,
    NullAsEmptyList,
    Progress,
    PublicModel,
    RequestModel,
    UtcDateTime,
    choices,
    each_of,
)
from eval.generate import LANGUAGES
from eval.metrics import ALL_METRICS
from eval.testsets import MAX_CASES
from eval.testsets import RESERVED_NAMES as TESTSET_RESERVED
from retrieval.generators import GENERATORS
from retrieval.search import MODES


class TestSetPublic(PublicModel):
    __test__ = False

    name: str
    version: int
    description: str
    source: str
    case_count: int
    created_at: UtcDateTime


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


# Checked by `eval.testsets.check_name` (surrounding spaces are dropped).
TESTSET_NAME = {
    "pattern": r"^[^/]*[^/\s][^/]*$",
    "not": {"enum": sorted(TESTSET_RESERVED)},
    "description": "1-128 characters without '/'; not "
    + " or ".join(sorted(TESTSET_RESERVED))
    + " (a route of its own)",
}


class TestCaseIn(BaseModel):
    """A case as sent (JSON body, or one line of a .jsonl file): `question` plus at least
    one reference (`reference_answer`, `reference_contexts` or `reference_doc_ids`)."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, pattern=r"\S")
    reference_answer: str | None = None
    # A single string is a list of one; null or "" an empty list.
    reference_contexts: list[str] | str | None = None
    reference_doc_ids: list[str] | str | None = None
    tags: list[str] | str | None = None
    metadata: dict[str, Any] | None = None


class TestSetCreate(BaseModel):
    """The JSON form of POST /v1/testsets (documentation: the route reads the body
    itself, as JSON or multipart)."""

    __test__ = False

    name: str = Field(..., min_length=1, max_length=128, json_schema_extra=TESTSET_NAME)
    description: str = ""
    cases: list[TestCaseIn] = Field(..., min_length=1, max_length=MAX_CASES)


class TestSetUpload(BaseModel):
    """The multipart form of POST /v1/testsets."""

    __test__ = False

    file: bytes = Field(..., description=".jsonl (one case per line) or .csv")
    # (No `not` here: schemathesis cannot combine it with a binary part.)
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        json_schema_extra={k: v for k, v in TESTSET_NAME.items() if k != "not"},
    )
    description: str = ""


class TestSetGenerate(RequestModel):
    __test__ = False
    model_config = ConfigDict(extra="ignore")

    kb: str
    name: str = Field(..., min_length=1, max_length=128, json_schema_extra=TESTSET_NAME)
    size: int = Field(..., ge=1, le=500, description="cases to generate")
    languages: list[str] | None = Field(
        None,
        description="ISO 639-1 codes, e.g. ['en', 'es']",
        json_schema_extra=each_of(LANGUAGES),
    )


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
    created_at: UtcDateTime
    finished_at: UtcDateTime | None


class EvalCreate(RequestModel):
    model_config = ConfigDict(extra="ignore")

    testset: str
    testset_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    kb: str
    index_version: int | None = Field(None, ge=1, le=MAX_DB_INT)
    generator: str | None = Field(None, json_schema_extra=choices((*GENERATORS, None)))
    prompt: str | None = Field(None, description="name or name@version")
    top_k: int | None = Field(None, ge=1, le=100)
    mode: str | None = Field(None, json_schema_extra=choices((*MODES, None)))
    metrics: list[str] | None = Field(None, json_schema_extra=each_of(ALL_METRICS))


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
    created_at: UtcDateTime
    finished_at: UtcDateTime | None


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
