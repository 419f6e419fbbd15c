from __future__ import annotations

from fastapi import APIRouter

from api.answer_schemas import (
    PromptCreate,
    PromptList,
    PromptPublic,
    PromptSummary,
    PromptVersions,
)
from api.deps import RuntimeDep
from core.catalog.models import PromptTemplate
from retrieval import prompts

router = APIRouter(prefix="/prompts", tags=["prompts"])


def to_public(p: PromptTemplate) -> PromptPublic:
    return PromptPublic(
        name=p.name,
        version=p.version,
        system=p.system,
        template=p.template,
        description=p.description,
        created_at=p.created_at,
    )


@router.post("", status_code=201, response_model=PromptPublic)
def create(body: PromptCreate, rt: RuntimeDep) -> PromptPublic:
    """Save the next version of a prompt (version 1 for a new name). The template needs
    {context} (the delimited documents) and {query}; omitted parts take the built-in
    default's text."""
    with rt.db.session() as s:
        row = prompts.create_prompt(
            session=s,
            name=body.name,
            system=prompts.DEFAULT_SYSTEM if body.system is None else body.system,
            template=prompts.DEFAULT_TEMPLATE if body.template is None else body.template,
            description=body.description,
        )
        return to_public(row)


@router.get("", response_model=PromptList)
def list_all(rt: RuntimeDep) -> PromptList:
    with rt.db.session() as s:
        rows = prompts.list_prompts(session=s)
    by_name: dict[str, list[PromptTemplate]] = {}
    for row in rows:
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
def get_prompt(name: str, rt: RuntimeDep) -> PromptVersions:
    """The newest version and every version of a prompt."""
    with rt.db.session() as s:
        latest = prompts.resolve_prompt(session=s, name=name)
        rows = prompts.list_prompts(session=s, name=name)
        return PromptVersions(
            name=name, latest=to_public(latest), versions=[to_public(r) for r in rows]
        )


@router.get("/{name}/{version}", response_model=PromptPublic)
def get_version(name: str, version: int, rt: RuntimeDep) -> PromptPublic:
    with rt.db.session() as s:
        return to_public(prompts.resolve_prompt(session=s, name=name, version=version))
