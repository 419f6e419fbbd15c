"""Imported by the isolated parser's forkserver: warms unstructured once so that every
worker forked from it starts warm (see `ingest.isolate`). Importing it elsewhere costs
the full warm-up (several seconds), so only the forkserver and the workers do."""

from __future__ import annotations

import logging

from core.types import Piece
from ingest.parse import UnstructuredParser

_parser = UnstructuredParser()
_warm = False


def warm_up() -> None:
    global _warm
    if not _warm:
        _parser.warm_up()
        # Readers outside unstructured, so a worker's address space is complete before
        # its memory limit is measured from it.
        import openpyxl  # noqa: F401
        import striprtf.striprtf  # noqa: F401
        from lxml import etree  # noqa: F401

        _warm = True


def parse(data: bytes, *, media_type: str, filename: str) -> list[Piece]:
    return _parser.parse(data, media_type=media_type, filename=filename)


try:
    warm_up()
except Exception:  # noqa: BLE001 - the forkserver must start anyway; workers retry
    logging.getLogger(__name__).exception("parser warm-up in the forkserver failed")
