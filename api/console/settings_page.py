"""A knowledge base's settings page (`/console/kbs/{kb}/settings`) and the choices its
fields offer, which the create form on the KB list shares (`templates/kb_fields.html`).

The page is rendered with the KB's stored settings, so nothing moves once it loads;
`static/settings.js` sends what changed through the public API. A KB without an index
takes the changes with `PATCH /v1/kbs/{kb}`. A KB with one keeps its embedding model,
chunking, cleaning and redaction per index version (the API refuses to patch them, 409),
so the page says so up front and builds a new version with the changes (`POST
/v1/kbs/{kb}/versions`, as the API's message asks) that takes effect once promoted on
the Versions tab; the description is always patched.

`may` is a template global (as `quality_page` also sets it), so `kb_tabs.html` shows the
Settings tab on every KB page to the keys that may patch the KB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.console.pages import KbVisit, may, open_kb, page, runtime
from api.runtime import Runtime
from core.catalog.models import KnowledgeBase, VersionStatus
from core.config import DEFAULT_ENTITY_OPERATORS, Settings
from index.versions import list_versions
from ingest.config import CleaningConfig, IngestionConfig, RedactionConfig
from ingest.embed import PACKAGED_MODELS
from ingest.redact import SUPPORTED_ENTITIES

router = APIRouter(include_in_schema=False)


def field_choices(settings: Settings) -> dict[str, Any]:
    """What the KB fields offer (`kb_fields.html` takes it as `choices`)."""
    redaction = RedactionConfig.model_fields
    return {
        # Packaged models by their short names (the hub ids name the same models).
        "models": sorted({m for m in PACKAGED_MODELS if "/" not in m}),
        "default_model": settings.embedding_model,
        "entities": SUPPORTED_ENTITIES,
        "default_entities": list(settings.redaction_entities),
        "operators": _literal_values(redaction["operator"].annotation),
        "languages": ("en", "es", "ru"),
        "normalizations": _literal_values(
            CleaningConfig.model_fields["unicode_normalization"].annotation
        ),
        "default_entity_operators": DEFAULT_ENTITY_OPERATORS,
    }


def _literal_values(annotation: Any) -> tuple[str, ...]:
    return tuple(getattr(annotation, "__args__", ()))


def create_values(settings: Settings) -> dict[str, Any]:
    """The create form's starting values: a new KB's defaults (the model field stays
    empty: the server's default, shown as its placeholder)."""
    return {**IngestionConfig.defaults(settings).model_dump(), "embedding_model": ""}


@dataclass(frozen=True)
class IndexState:
    """Whether the KB has any index version (then its ingestion settings change only
    through a new version) and which one is live."""

    has_index: bool
    live_number: int | None
    live_model: str | None


def _index_state(rt: Runtime, kb: KnowledgeBase) -> IndexState:
    with rt.db.session() as session:
        versions = list_versions(session=session, kb=kb)
        live = next((v for v in versions if v.status == VersionStatus.LIVE), None)
        return IndexState(
            has_index=bool(versions),
            live_number=live.number if live else None,
            live_model=live.embedding_model if live else None,
        )


@router.get("/console/kbs/{kb}/settings")
async def settings_page(request: Request, kb: str) -> Response:
    opened = await open_kb(request, kb)
    if not isinstance(opened, KbVisit):
        return opened
    p, row = opened.visitor.principal, opened.kb
    common = {
        "kb": row,
        "tab": "settings",
        "can_documents": may(p, "GET", "/v1/kbs/{kb}/documents"),
    }
    if not may(p, "PATCH", "/v1/kbs/{kb}"):
        return page(request, "settings.html", opened.visitor, status=403, denied=True, **common)
    rt = runtime(request)
    state = await run_in_threadpool(_index_state, rt, row)
    values = IngestionConfig.model_validate(row.config).model_dump()
    return page(
        request,
        "settings.html",
        opened.visitor,
        **common,
        denied=False,
        values={**values, "description": row.description},
        choices=field_choices(rt.settings),
        index=state,
        can_versions=may(p, "GET", "/v1/kbs/{kb}/versions"),
    )
