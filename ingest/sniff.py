"""Decide what an upload is from its bytes, in pure Python.

The file name and the client's Content-Type lie often enough (a PDF saved as `.txt`, a
`.docx` that is really a ZIP of images) that the parser is chosen from the content. No
libmagic: Debian's `libmagic1` is not always present, and the six formats we accept are
cheap to recognise directly. The name only breaks the Markdown-vs-plain-text tie.

Example::

    media_type = sniff_media_type(data, filename="notes.md")  # -> "text/markdown"
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile

from core.errors import EmptyFile, UnsupportedType

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"

SUPPORTED_MEDIA_TYPES: tuple[str, ...] = (PDF, DOCX, PPTX, HTML, MARKDOWN, TEXT)
SUPPORTED_LABEL = "PDF, DOCX, PPTX, HTML, Markdown, plain text"

# Readers (Acrobat included) accept a few bytes of junk before the PDF header; so do we.
_PDF_HEADER_WINDOW = 1024
# Share of control characters (besides tab/newline/CR/FF) above which "text" is binary.
_MAX_CONTROL_RATIO = 0.01
# How much decoded text the HTML and Markdown heuristics look at.
_SNIFF_CHARS = 64 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Leading bytes of formats people upload by mistake, so the error says what we saw.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Microsoft Office file (save it as DOCX/PPTX)"),
    (b"{\\rtf", "RTF document"),
    (b"%!PS", "PostScript document"),
)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_LEADING_COMMENTS_RE = re.compile(r"^(?:\s*<!--.*?-->)*\s*", re.DOTALL)
_XML_PROLOG_RE = re.compile(r"^<\?xml[^>]*\?>\s*", re.IGNORECASE)
# These open a document only in HTML; a Markdown file never starts with them.
_HTML_DOCUMENT_RE = re.compile(r"^<(?:!doctype\s+html|html|head|body)[\s>/]", re.IGNORECASE)
# Fragments also start Markdown READMEs (`<p align="center">`), so they rank below Markdown.
_HTML_FRAGMENT_RE = re.compile(
    r"^<(?:meta|title|link|style|script|div|p|h[1-6]|table|ul|ol|section|article|main|"
    r"header|nav|span|a|img|br|form)[\s>/]",
    re.IGNORECASE,
)

_MD_STRONG = (
    re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE),  # ATX heading
    re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.MULTILINE),  # code fence
    re.compile(r"\[[^\]\n]+\]\([^)\s]+(?:\s+\"[^\"]*\")?\)"),  # inline link or image
    re.compile(r"^\S[^\n]*\n[ \t]{0,3}(?:=+|-{2,})[ \t]*$", re.MULTILINE),  # setext heading
    re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*\|", re.MULTILINE),  # table delimiter row
)
_MD_WEAK = (
    re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE),  # list item
    re.compile(r"^[ \t]{0,3}>[ \t]?\S", re.MULTILINE),  # block quote
    re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__|`[^`\n]+`"),  # strong emphasis, inline code
)


def sniff_media_type(data: bytes, filename: str | None = None) -> str:
    """Return one of `SUPPORTED_MEDIA_TYPES` for `data`, judged by its content.

    Raises `EmptyFile` for zero bytes and `UnsupportedType` for anything else we cannot
    parse (images, executables, other archives, spreadsheets, undecodable text), with a
    message that names the file, what was detected and what is supported.
    """
    name = filename or "upload"
    if not data:
        raise EmptyFile(f"{name}: file is empty; upload a document with some text")
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return PDF
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data, name)
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise _unsupported(name, what)

    text = _try_decode(data)
    if text is None:
        raise _unsupported(name, _describe_binary(data))
    return _sniff_text(text, filename)


def decode_text(data: bytes) -> str:
    """Decode bytes that `sniff_media_type` accepted as text (UTF-8, or a BOM's encoding)."""
    text = _try_decode(data)
    if text is None:
        raise UnicodeDecodeError("utf-8", data, 0, len(data), "not UTF-8 text or BOM-marked")
    return text


def _unsupported(name: str, detected: str) -> UnsupportedType:
    return UnsupportedType(
        f"{name}: unsupported content type (detected {detected}); supported: {SUPPORTED_LABEL}"
    )


def _sniff_zip(data: bytes, name: str) -> str:
    """OOXML files are ZIPs; the part names tell Word from PowerPoint from Excel."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _unsupported(name, "a damaged or truncated ZIP/Office file") from None
    if "[Content_Types].xml" in parts:
        if "word/document.xml" in parts:
            return DOCX
        if "ppt/presentation.xml" in parts:
            return PPTX
        if "xl/workbook.xml" in parts:
            raise _unsupported(name, "an XLSX spreadsheet")
    if "mimetype" in parts:
        raise _unsupported(name, "an OpenDocument file (save it as DOCX/PPTX)")
    raise _unsupported(name, "a ZIP archive")


def _try_decode(data: bytes) -> str | None:
    """Text is UTF-8 or BOM-marked Unicode with (almost) no control characters."""
    body, encoding = data, "utf-8"
    for bom, bom_encoding in _BOMS:
        if data.startswith(bom):
            body, encoding = data[len(bom) :], bom_encoding
            break
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    if text and len(_CONTROL_RE.findall(text)) / len(text) > _MAX_CONTROL_RATIO:
        return None
    return text


def _describe_binary(data: bytes) -> str:
    import filetype  # pure Python; only needed to word the error

    kind = filetype.guess(data[:8192])
    if kind is not None:
        return f"{kind.mime} ({kind.extension})"
    return "binary data"


def _sniff_text(text: str, filename: str | None) -> str:
    head = text[:_SNIFF_CHARS].lstrip("\ufeff")
    # Comments may sit before and after an XHTML `<?xml ...?>` prolog.
    start = _LEADING_COMMENTS_RE.sub("", head, count=1)
    start = _XML_PROLOG_RE.sub("", start, count=1)
    start = _LEADING_COMMENTS_RE.sub("", start, count=1)
    if _HTML_DOCUMENT_RE.match(start):
        return HTML
    if start[:4].lower() == "<svg":
        raise _unsupported(filename or "upload", "an SVG image")

    named_md = (filename or "").lower().endswith((".md", ".markdown"))
    if _HTML_FRAGMENT_RE.match(start) and not named_md:
        return HTML
    if named_md or _looks_like_markdown(head):
        return MARKDOWN
    return TEXT


def _looks_like_markdown(text: str) -> bool:
    """Plain text often has a dash list; Markdown has headings, fences, links or tables."""
    strong = sum(len(p.findall(text)) for p in _MD_STRONG)
    weak = sum(len(p.findall(text)) for p in _MD_WEAK)
    return strong >= 2 or (strong >= 1 and weak >= 1)
