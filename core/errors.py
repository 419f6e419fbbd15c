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


class Conflict(RagopsError):
    code = "conflict"


class Overloaded(RagopsError):
    code = "overloaded"


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
        self.document = document
        self.permanent = permanent
