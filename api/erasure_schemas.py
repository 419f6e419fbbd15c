"""Request and response bodies of the erase routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas import PublicModel, RequestModel, UtcDateTime
from core.erasure import MAX_VALUE_LENGTH, MAX_VALUES, MIN_VALUE_LENGTH

# At least three characters that are not white space: "   " or "a b" would match far more
# than one person's data. A pattern (not a validator) so the OpenAPI schema says it.
VALUE_PATTERN = r"\S[\s\S]*\S[\s\S]*\S"
ErasureValue = Annotated[
    str,
    Field(min_length=MIN_VALUE_LENGTH, max_length=MAX_VALUE_LENGTH, pattern=VALUE_PATTERN),
]


class ErasureRequest(RequestModel):
    values: list[ErasureValue] = Field(
        ...,
        min_length=1,
        max_length=MAX_VALUES,
        description="What identifies the data subject: e-mail addresses, phone numbers, "
        f"names (each {MIN_VALUE_LENGTH}-{MAX_VALUE_LENGTH} characters, at least three of "
        "them not white space; matched case-insensitively as substrings, as given); never "
        "stored, never echoed",
        examples=[["ana.garcia@example.com", "+34 612 345 678"]],
    )


class ErasureReceipt(PublicModel):
    id: str
    kind: Literal["document", "subject"]
    status: Literal["running", "completed", "failed"]
    kb_ids: list[str]
    key_id: str | None
    request_id: str | None
    created_at: UtcDateTime
    finished_at: UtcDateTime | None
    error: str | None = Field(None, description="Why the erase is not complete (retried)")
    stores: dict[str, dict[str, Any]] = Field(
        ...,
        description="Per store: `count` removed, `ids` where its rows have ids, and notes "
        "(never the erased values)",
    )


class ErasureList(PublicModel):
    erasures: list[ErasureReceipt]
