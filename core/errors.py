"""Domain errors. The API maps each to one status code (see api/errors.py)."""

from __future__ import annotations


class RagopsError(Exception):
    """Base class: `code` is the machine-readable error code in API responses."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RagopsError):
    code = "not_found"


class Duplicate(RagopsError):
    code = "duplicate"


class InvalidInput(RagopsError):
    code = "invalid_input"


class EmptyFile(InvalidInput):
    code = "empty_file"


class TooLarge(InvalidInput):
    code = "too_large"


class UnsupportedType(InvalidInput):
    code = "unsupported_media_type"


class ArchiveRejected(InvalidInput):
    """A ZIP (an upload, or the container of a DOCX/PPTX/XLSX/ODT) trips a safety guard:
    `guard` names it: ratio, size, members, depth, path, encrypted, link, xml, damaged."""

    code = "archive_rejected"

    def __init__(self, message: str, *, guard: str) -> None:
        super().__init__(message)
        self.guard = guard

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_archive_rejected, (self.message, self.guard))


def _rebuild_archive_rejected(message: str, guard: str) -> ArchiveRejected:
    return ArchiveRejected(message, guard=guard)


class Conflict(RagopsError):
    code = "conflict"


class Unauthenticated(RagopsError):
    """No key, or a key that is not known (401)."""

    code = "unauthorized"


class Forbidden(RagopsError):
    """A known key whose role does not cover the action (403). A KB the key may not
    see is NotFound instead, so that keys cannot probe which KBs exist."""

    code = "forbidden"


class GateRefused(Conflict):
    """A promotion failed its KB's quality gate; `details` carries the decision and its
    evidence (every check with value, threshold and baseline)."""

    code = "quality_gate_failed"

    def __init__(self, message: str, *, details: dict) -> None:
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_gate_refused, (self.message, self.details))


def _rebuild_gate_refused(message: str, details: dict) -> GateRefused:
    return GateRefused(message, details=details)


class Overloaded(RagopsError):
    """Too much work is waiting (e.g. the ingestion queue is full): try again later.
    `retry_after` (whole seconds, at least 1) becomes the response's `Retry-After`
    header; `details` says which bound was hit."""

    code = "overloaded"

    def __init__(
        self, message: str, *, retry_after: int | None = None, details: dict | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else max(1, int(retry_after))
        self.details = details

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_overloaded, (self.message, self.retry_after, self.details))


def _rebuild_overloaded(message: str, retry_after: int | None, details: dict | None) -> Overloaded:
    return Overloaded(message, retry_after=retry_after, details=details)


class Unavailable(RagopsError):
    """A backing service or store cannot be reached or fails (an OpenAI-compatible
    generator endpoint, the Qdrant server, a FAISS index directory); not the caller's fault."""

    code = "unavailable"


class StageFailed(RagopsError):
    """A stage could not process one document. `permanent` means retrying won't help
    (corrupt or unsupported content), so the job fails at once instead of backing off."""

    code = "stage_failed"

    def __init__(
        self, stage: str, message: str, *, document: str | None = None, permanent: bool = True
    ) -> None:
        where = f"{stage} failed" + (f" for {document!r}" if document else "")
        super().__init__(f"{where}: {message}")
        self.stage = stage
        self.reason = message
        self.document = document
        self.permanent = permanent

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses process boundaries (the isolated parser); the default would call
        # `StageFailed(full_message)` and fail.
        return (
            _rebuild_stage_failed,
            (type(self), self.stage, self.reason, self.document, self.permanent),
        )


def _rebuild_stage_failed(
    cls: type[StageFailed], stage: str, reason: str, document: str | None, permanent: bool
) -> StageFailed:
    return cls(stage, reason, document=document, permanent=permanent)
