"""The contract every ingestion stage follows."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from core.types import Piece, StageReport


@runtime_checkable
class Stage(Protocol):
    """A named, configured transformation: pieces in, pieces out.

    `name` is stable across releases and `config` is JSON-serialisable; together they
    form the stage's part of the ingestion config hash (chunk ids and cache keys depend
    on it). A stage must not keep per-document state between calls and records what it
    did in `report` under its own name. Bad input raises `core.errors.StageFailed`.

    Example::

        pieces = parser.parse(data, media_type="text/plain", filename="a.txt")
        for stage in (cleaner, redactor, chunker):
            pieces = stage(pieces, report)
    """

    name: str

    @property
    def config(self) -> dict[str, Any]: ...

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]: ...


class Parser(Protocol):
    """Raw bytes in, pieces out: the stage before `Stage`s run (`UnstructuredParser`
    in-process, `IsolatedParser` in worker processes). `parse` raises `StageFailed` for
    bytes that hold no text and `UnsupportedType` for a media type it cannot read."""

    name: str

    @property
    def config(self) -> dict[str, Any]: ...

    def warm_up(self) -> None: ...

    def parse(self, data: bytes, *, media_type: str, filename: str) -> list[Piece]: ...
