from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.answer_schemas import (
    PromptCreate,
    PromptList,
    PromptPublic,
    PromptSummary,
    PromptVersions,
)
from api.deps import SessionDep
from api.limits import MAX_DB_INT
from core.catalog.models import PromptTemplate
from retrieval import prompts

router = APIRouter(prefix="/prompts", tags=["prompts"])


def to_public(p: PromptTemplate) -> PromptPublic:
    return PromptPublic.model_validate(p, from_attributes=True)


@router.post("", status_code=201, response_model=PromptPublic)
def create(body: PromptCreate, session: SessionDep) -> PromptPublic:
    """Save the next version of a prompt (version 1 for a new name). The template needs
    {context} (the delimited documents) and {query}; omitted parts take the built-in
    default's text."""
    row = prompts.create_prompt(
        session=session,
        name=body.name,
        system=prompts.DEFAULT_SYSTEM if body.system is None else body.system,
        template=prompts.DEFAULT_TEMPLATE if body.template is None else body.template,
        description=body.description,
    )
    return to_public(row)


@router.get("", response_model=PromptList)
def list_all(session: SessionDep) -> PromptList:
    by_name: dict[str, list[PromptTemplate]] = {}
    for row in prompts.list_prompts(session=session):
        by_name.setdefault(row.name, []).append(row)
    return PromptList(
        data=[
            PromptSummary(
                name=name,
                latest_version=versions[-1].version,
                versions=len(versions),
                description=versions[-1].description,
                updated_at=versions[-1].created_at,
            )
            for name, versions in by_name.items()
        ]
    )


@router.get("/{name}", response_model=PromptVersions)
def get_prompt(name: str, session: SessionDep) -> PromptVersions:
    """The newest version and every version of a prompt."""
    latest = prompts.resolve_prompt(session=session, name=name)
    rows = prompts.list_prompts(session=session, name=name)
    return PromptVersions(
        name=name, latest=to_public(latest), versions=[to_public(r) for r in rows]
    )


@router.get("/{name}/{version:int}", response_model=PromptPublic)
def get_version(
    name: str, version: Annotated[int, Path(ge=1, le=MAX_DB_INT)], session: SessionDep
) -> PromptPublic:
    return to_public(prompts.resolve_prompt(session=session, name=name, version=version))
