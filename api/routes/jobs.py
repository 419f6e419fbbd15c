"""Any background job by the id a 202 response returned: status, progress, error."""

from __future__ import annotations

from fastapi import APIRouter

from api.access import PrincipalDep
from api.deps import SessionDep
from api.schemas import JobPublic
from core.catalog.models import Job
from core.errors import NotFound

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, session: SessionDep, viewer: PrincipalDep) -> JobPublic:
    """Poll a job: `queued` → `running` (progress 0..1, a message) → `succeeded` or
    `failed` (with the error; a failed attempt is retried with backoff first)."""
    job = session.get(Job, job_id)
    if job is None or not viewer.sees(job.kb_id):
        raise NotFound(f"job {job_id!r} not found; job ids come from 202 responses")
    return JobPublic.model_validate(job, from_attributes=True)
