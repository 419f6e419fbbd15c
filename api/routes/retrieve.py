from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep
from api.schemas import RetrievedChunkPublic, RetrieveRequest, RetrieveResponse
from core.kbs import get_kb
from retrieval.search import retrieve

router = APIRouter(prefix="/kbs/{kb}", tags=["retrieval"])


@router.post("/retrieve", response_model=RetrieveResponse)
def retrieve_chunks(kb: str, body: RetrieveRequest, rt: RuntimeDep) -> RetrieveResponse:
    """Top passages of the KB's live index version, best first, with citations."""
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
    result = retrieve(
        rt,
        kb=kb_row,
        query=body.query,
        top_k=body.top_k,
        filters=body.filters,
        score_threshold=body.score_threshold,
        index_version=body.index_version,
    )
    return RetrieveResponse(
        index_version=result.index_version,
        results=[RetrievedChunkPublic(**r.__dict__) for r in result.results],
    )
