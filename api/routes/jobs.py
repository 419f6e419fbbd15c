"""Any background job by the id a 202 response returned: status, progress, error."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep
from api.schemas import JobPublic
from core.catalog.models import Job
from core.errors import NotFound

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, rt: RuntimeDep) -> JobPublic:
    """Poll a job: `queued` → `running` (progress 0..1, a message) → `succeeded` or
    `failed` (with the error; a failed attempt is retried with backoff first)."""
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found; job ids come from 202 responses")
        return JobPublic(
            id=job.id,
            kind=job.kind,
            kb_id=job.kb_id,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            progress=round(job.progress, 4),
            message=job.message,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )
