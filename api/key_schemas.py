"""Request and response bodies of `/v1/keys` and `/v1/audit`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas import JsonObject, PublicModel, RequestModel, UtcDateTime
from core.access import ALL_KBS, Role

KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
KbRef = Annotated[str, Field(min_length=1, max_length=128)]
KbRefs = Annotated[list[KbRef], Field(min_length=1, max_length=1000)]


class KeyCreate(RequestModel):
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        pattern=KEY_NAME_PATTERN,
        examples=["support-bot"],
        description="Unique; letters, digits, '_', '-' or '.'",
    )
    role: Literal["reader", "reviewer", "owner", "admin"] = Field(
        ...,
        description="reader (retrieve, answer, feedback) < reviewer (evals, reports, gates, "
        "read) < owner (upload, delete, configure, build, promote) < admin (everything, keys)",
    )
    kbs: KbRefs | Literal["*"] = Field(
        ...,
        description='The knowledge bases (names or ids) the key may use, or "*" for all, '
        "present and future",
        examples=[["handbook"], "*"],
    )


class KeyPublic(PublicModel):
    id: str
    name: str
    role: Role
    kbs: list[str] | Literal["*"] = Field(
        ..., description='Names of the KBs the key may use, or "*" for all'
    )
    prefix: str = Field(..., description="The secret's first characters, to recognise it")
    created_at: UtcDateTime
    rotated_at: UtcDateTime | None = None
    last_used_at: UtcDateTime | None = Field(None, description="Updated at most once a minute")


class KeyCreated(KeyPublic):
    key: str = Field(..., description="The secret: shown this once, never again; store it now")


class KeyList(PublicModel):
    keys: list[KeyPublic]


class AuditEventPublic(PublicModel):
    id: int
    at: UtcDateTime
    key_id: str | None = Field(None, description="Who: a key id (bootstrap, anonymous)")
    action: str
    kb_id: str | None = None
    kb: str | None = Field(None, description="The KB's name, while it exists")
    target: str | None = None
    request_id: str | None = None
    outcome: Literal["ok", "denied", "error"]
    status: int | None = None
    method: str | None = None
    path: str | None = None
    detail: JsonObject = Field(default_factory=dict)


class AuditPage(PublicModel):
    events: list[AuditEventPublic]
    next_after: int | None = Field(
        None, description="Pass as `after` for the next page; null on the last page"
    )


def kbs_value(kb_ids: list[str] | None, names: dict[str, str]) -> list[str] | str:
    if kb_ids is None:
        return ALL_KBS
    return [names.get(kb_id, kb_id) for kb_id in kb_ids]


def key_public(key: Any, names: dict[str, str], secret: str | None = None) -> dict[str, Any]:
    body = {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "kbs": kbs_value(key.kbs, names),
        "prefix": key.prefix,
        "created_at": key.created_at,
        "rotated_at": key.rotated_at,
        "last_used_at": key.last_used_at,
    }
    if secret is not None:
        body["key"] = secret
    return body
