"""Bodies of the answer chain's routes: /answer, /prompts, feedback, answer settings
(public contract: field names are what clients send)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.limits import MAX_DB_INT, MAX_QUERY_CHARS
from api.schemas import PublicModel, RequestModel, RowWith, UtcDateTime, choices
from retrieval.generators import GENERATORS
from retrieval.prompts import NAME_PATTERN as PROMPT_NAME

_PROMPT_DOC = 'A prompt template: "name" (its newest version) or "name@version"'


class PromptRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=128)
    version: int | None = Field(None, ge=1, le=MAX_DB_INT)


class AnswerRequest(RequestModel):
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int | None = Field(None, ge=1, le=50, description="Passages retrieved (default 5)")
    generator: str | None = Field(
        None,
        examples=["extractive"],
        description="extractive | local | openai; default: the KB's, else the server's",
        json_schema_extra=choices((*GENERATORS, None)),
    )
    prompt: str | PromptRef | None = Field(None, description=_PROMPT_DOC)
    stream: bool = Field(False, description="Stream tokens as server-sent events")
    index_version: int | None = Field(
        None, ge=1, le=MAX_DB_INT, description="Pin a ready or live version"
    )
    score_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Minimum dense cosine similarity for a passage to be used; with none "
        'left the answer is "I don\'t know". Default: RAGOPS_ANSWER_SCORE_THRESHOLD',
    )
    filters: dict[str, Any] | None = Field(None, description="As in /retrieve")
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Who asks: keeps an A/B test's arm sticky for this user",
    )
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Used for A/B stickiness when no user_id is given",
    )


class Citation(BaseModel):
    index: int = Field(description="The [n] marker in the answer")
    chunk_id: str
    document_id: str
    filename: str
    page_number: int | None = None
    section: str | None = None
    score: float = Field(description="The retrieval score of the passage")


class PromptUsed(BaseModel):
    name: str
    version: int


class AnswerResponse(BaseModel):
    id: str = Field(description="Send feedback to POST /v1/answers/{id}/feedback")
    answer: str
    citations: list[Citation]
    index_version: int | None
    generator: str
    prompt: PromptUsed
    # Present only when a running A/B test served the request.
    ab_test: str | None = Field(None, description="The A/B test that served this answer")
    arm: str | None = Field(None, description="Its arm (see /v1/kbs/{kb}/ab-tests)")


class AnswerSettingsUpdate(RequestModel):
    generator: str | None = Field(
        None,
        description='extractive | local | openai; "" resets',
        json_schema_extra=choices((*GENERATORS, "", None)),
    )
    prompt: str | None = Field(None, description=_PROMPT_DOC + '; "" resets')


class AnswerSettingsPublic(PublicModel):
    generator: str = Field(description="What /answer uses when a request names none")
    generator_source: Literal["kb", "server"]
    prompt: PromptRef


class PromptCreate(RequestModel):
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        examples=["support"],
        description="Letters, digits, '_', '-' or '.', starting with a letter or digit",
        json_schema_extra={"pattern": PROMPT_NAME.pattern},
    )
    system: str | None = Field(
        None, max_length=20000, description="System message; default: the built-in one"
    )
    template: str | None = Field(
        None,
        max_length=20000,
        description="User message with {context} and {query}; default: the built-in one",
    )
    description: str = Field("", max_length=2000)


class PromptPublic(PublicModel):
    name: str
    version: int
    system: str
    template: str
    description: str
    created_at: UtcDateTime


class PromptSummary(BaseModel):
    name: str
    latest_version: int
    versions: int
    description: str
    updated_at: UtcDateTime


class PromptList(BaseModel):
    data: list[PromptSummary]


class PromptVersions(BaseModel):
    name: str
    latest: PromptPublic
    versions: list[PromptPublic]


class FeedbackCreate(RequestModel):
    rating: Literal[-1, 1] = Field(..., description="1 = helpful, -1 = not helpful")
    comment: str | None = Field(None, max_length=4000)
    correction: str | None = Field(None, max_length=20000, description="The right answer")
    supporting_chunk_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="With rating -1: the chunk that holds the right answer (a chunk_id of "
        "the answer's KB, from its contexts or /retrieve; 422 otherwise); fine-tuning "
        "pairs the question with it",
        # Checked by `retrieval.answers.add_feedback`, with a message saying where ids
        # come from.
        json_schema_extra={"pattern": "^[0-9a-f]{32}$"},
    )


class FeedbackPublic(PublicModel):
    id: str
    answer_id: str
    rating: int
    comment: str | None
    correction: str | None
    supporting_chunk_id: str | None = Field(
        None, description="The chunk the reviewer named as holding the right answer"
    )
    created_at: UtcDateTime


class AnswerPublic(PublicModel):
    id: str
    kb: str
    query: str
    answer: str
    citations: list[Citation]
    contexts: list[dict[str, Any]] = Field(description="Every passage the generator saw")
    generator: str
    generator_model: str | None
    prompt: PromptUsed
    index_version: int | None
    channel: str
    latency_ms: float
    arm: str | None
    created_at: UtcDateTime
    feedback: list[FeedbackPublic]

    @model_validator(mode="before")
    @classmethod
    def _prompt_from_columns(cls, row: Any) -> Any:
        """An Answer row keeps the prompt it used as prompt_name and prompt_version."""
        if isinstance(row, dict):
            return row
        return RowWith(row, {"prompt": {"name": row.prompt_name, "version": row.prompt_version}})
