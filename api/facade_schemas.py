"""Response and error bodies of the OpenAI-compatible and Dify façades, for the OpenAPI
document (the routes build their JSON themselves, in the shapes those clients expect;
the request bodies are `api.routes.openai_compat.ChatCompletionRequest` and
`api.routes.dify.DifyRetrievalRequest`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.answer_schemas import Citation, PromptUsed


class OpenAIErrorBody(BaseModel):
    message: str
    type: str = Field(description="e.g. invalid_request_error, authentication_error")
    param: str | None = Field(None, description="The offending parameter, if one")
    code: str | None = Field(None, description="e.g. model_not_found, invalid_value")


class OpenAIError(BaseModel):
    """Every error of the OpenAI-compatible routes, in OpenAI's shape."""

    error: OpenAIErrorBody


class DifyError(BaseModel):
    """Errors of Dify's External Knowledge API: 1001 malformed Authorization header,
    1002 wrong key, 2001 unknown knowledge base, 400 malformed request."""

    error_code: int
    error_msg: str


class ModelObject(BaseModel):
    id: str = Field(description="A KB name, or `kb@<version>` for a ready or live version")
    object: Literal["model"]
    created: int = Field(description="Unix seconds: when the knowledge base was created")
    owned_by: str


class ModelObjectList(BaseModel):
    object: Literal["list"]
    data: list[ModelObject]


class ChatMessageOut(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop"]


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """A non-streamed answer. `answer_id`, `citations`, `index_version`, `generator`,
    `prompt` (and `ab_test`, `arm` when an A/B test served it) are ragops' additions."""

    id: str
    object: Literal["chat.completion"]
    created: int = Field(description="Unix seconds")
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    system_fingerprint: None = None
    answer_id: str = Field(description="Send feedback to POST /v1/answers/{id}/feedback")
    citations: list[Citation]
    index_version: int | None
    generator: str
    prompt: PromptUsed
    ab_test: str | None = None
    arm: str | None = None


class DifyRecord(BaseModel):
    content: str
    score: float = Field(ge=0.0, le=1.0)
    title: str
    metadata: dict = Field(description="The chunk's payload, document_id, chunk_id, filename")


class DifyRetrievalResponse(BaseModel):
    records: list[DifyRecord]
