from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.access import PrincipalDep
from api.deps import KbDep, RuntimeDep, load_kbs
from api.schemas import (
    MultiRetrieveRequest,
    MultiRetrieveResponse,
    RetrievedChunkPublic,
    RetrieveRequest,
    RetrieveResponse,
)
from retrieval.search import DEFAULT_MODE, RetrievedChunk, retrieve, retrieve_many

router = APIRouter(prefix="/kbs/{kb}", tags=["retrieval"])
multi_router = APIRouter(tags=["retrieval"])


def _public(hit: RetrievedChunk) -> RetrievedChunkPublic:
    return RetrievedChunkPublic(**hit.__dict__)


def _options(body: RetrieveRequest | MultiRetrieveRequest) -> dict[str, Any]:
    return {
        "filters": body.filters,
        "score_threshold": body.score_threshold,
        "mode": body.mode,
        "mmr_diversity": body.mmr,
        "mmr_lambda": body.mmr_lambda,
        "rerank": body.rerank,
    }


@router.post("/retrieve", response_model=RetrieveResponse, response_model_exclude_none=False)
def retrieve_chunks(kb: KbDep, body: RetrieveRequest, rt: RuntimeDep) -> Response:
    """Top passages of the KB's live index version, best first, with citations."""
    # The response is validated once, here, and encoded by pydantic's serializer:
    # returning the model would make FastAPI validate it again against
    # `response_model` and encode it through `jsonable_encoder` + `json.dumps`.
    result = retrieve(
        rt,
        kb=kb,
        query=body.query,
        top_k=body.top_k,
        index_version=body.index_version,
        **_options(body),
    )
    response = RetrieveResponse(
        index_version=result.index_version,
        results=[_public(r) for r in result.results],
        mode=result.mode,
        language=result.language,
    )
    return Response(response.model_dump_json(), media_type="application/json")


@multi_router.post("/retrieve", response_model=MultiRetrieveResponse)
def retrieve_across(
    body: MultiRetrieveRequest, rt: RuntimeDep, viewer: PrincipalDep
) -> MultiRetrieveResponse:
    """Top passages across several KBs (each KB's live version), fused by reciprocal rank;
    every hit names its KB in `metadata.kb`."""
    kbs = load_kbs(rt, body.kbs, viewer=viewer)
    result = retrieve_many(rt, kbs=kbs, query=body.query, top_k=body.top_k, **_options(body))
    return MultiRetrieveResponse(
        index_versions=result.index_versions,
        results=[_public(r) for r in result.results],
        mode=body.mode or DEFAULT_MODE,
    )
