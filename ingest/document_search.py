"""Search and filters over a KB's documents (the console's document list, issue 17):
filename text, status, media type, language and upload metadata, plus facet counts.

Rows have the columns of `ingest.documents.list_documents` (a document joined to its
current revision). Metadata filters compare a value as JSON writes it, the same on
SQLite and PostgreSQL::

    rows, total = find_documents(
        session=s, kb=kb, where=DocumentFilter(language="es", metadata=[("team", "legal")])
    )
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Text, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.catalog.models import Document, DocumentRevision, KnowledgeBase
from core.errors import InvalidInput
from ingest.documents import listed_documents
from ingest.language import LANGUAGES, OTHER

DOCUMENT_LANGUAGES = (*LANGUAGES, OTHER)
# Metadata filter keys: what a JSON path can name without quoting rules that differ
# between SQLite and PostgreSQL.
_METADATA_KEY = re.compile(r"^[\w .:-]{1,128}$")


@dataclass(frozen=True)
class DocumentFilter:
    """Every filter given must hold; None (or an empty list) leaves it out."""

    status: str | None = None
    text: str | None = None  # in the filename, case-insensitive
    media_type: str | None = None
    language: str | None = None
    metadata: list[tuple[str, str]] = field(default_factory=list)


def parse_metadata_filters(raw: list[str] | None) -> list[tuple[str, str]]:
    """`key=value` items as pairs; InvalidInput naming the bad item otherwise."""
    pairs = []
    for item in raw or []:
        key, sep, value = item.partition("=")
        if not sep or not _METADATA_KEY.match(key):
            raise InvalidInput(
                f"metadata filter {item!r}: write key=value (e.g. team=legal); the key is "
                "1-128 letters, digits, spaces, '_', '.', ':' or '-'"
            )
        pairs.append((key, value))
    return pairs


def _metadata_equals(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    """The document's metadata `key` written as text equals `value`: a string as is, a
    number as JSON writes it (`2020`, `1.5`), a boolean as `true`/`false`."""
    if dialect == "sqlite":
        path = "$." + json.dumps(key)
        kind = func.json_type(Document.metadata_, path)
        text = case(
            (kind == "true", "true"),
            (kind == "false", "false"),
            else_=cast(func.json_extract(Document.metadata_, path), Text),
        )
        return text == value
    return Document.metadata_[key].as_string() == value


def _language() -> ColumnElement[Any]:
    return DocumentRevision.report["language"].as_string()


def find_documents(
    *, session: Session, kb: KnowledgeBase, where: DocumentFilter, limit: int, offset: int = 0
) -> tuple[list[Row], int]:
    """One page of the KB's documents matching `where`, by filename, and how many match."""
    if where.language is not None and where.language not in DOCUMENT_LANGUAGES:
        raise InvalidInput(
            f"language {where.language!r} is not one of {', '.join(DOCUMENT_LANGUAGES)}"
        )
    query = listed_documents().where(Document.kb_id == kb.id)
    if where.status:
        query = query.where(DocumentRevision.status == where.status)
    if where.text:
        query = query.where(Document.filename.icontains(where.text, autoescape=True))
    if where.media_type:
        query = query.where(DocumentRevision.media_type == where.media_type)
    if where.language:
        query = query.where(_language() == where.language)
    dialect = session.get_bind().dialect.name
    for key, value in where.metadata:
        query = query.where(_metadata_equals(dialect, key, value))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Document.filename, Document.id).offset(offset).limit(limit)
    ).all()
    return list(rows), total


def document_facets(*, session: Session, kb: KnowledgeBase) -> dict[str, dict[str, int]]:
    """How many of the KB's documents have each media type and each language."""
    current = (
        select(func.count())
        .select_from(Document)
        .join(DocumentRevision, DocumentRevision.id == Document.current_revision_id)
        .where(Document.kb_id == kb.id)
    )
    types = session.execute(
        current.add_columns(DocumentRevision.media_type).group_by(DocumentRevision.media_type)
    ).all()
    language = _language()
    languages = session.execute(current.add_columns(language).group_by(language)).all()
    return {
        "media_type": {t: n for n, t in sorted(types, key=lambda r: str(r[1]))},
        "language": {lang or "none": n for n, lang in sorted(languages, key=lambda r: str(r[1]))},
    }
