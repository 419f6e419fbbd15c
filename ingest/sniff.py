"""Decide what an upload is from its bytes, in pure Python.

The file name and the client's Content-Type lie often enough (a PDF saved as `.txt`, a
`.docx` that is really a ZIP of images) that the parser is chosen from the content. No
libmagic: Debian's `libmagic1` is not always present, and the formats we accept are
cheap to recognise directly: magic bytes (PDF, RTF, OLE2 for Outlook MSG), the part
names inside a ZIP (DOCX/PPTX/XLSX, ODT's `mimetype` member), RFC 822 headers (EML),
a successful parse (JSON), a consistent delimiter (CSV). Text may be UTF-8, UTF-16/32
or a legacy code page (`ingest.encoding`). The name only breaks the Markdown-vs-plain-text
tie and lets a two-row table count as CSV.

Example::

    media_type = sniff_media_type(data, filename="notes.md")  # -> "text/markdown"
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

from core.errors import EmptyFile, UnsupportedType
from ingest.archive import check_container
from ingest.encoding import Decoded, detect

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
EML = "message/rfc822"
MSG = "application/vnd.ms-outlook"
JSON = "application/json"
RTF = "application/rtf"
ODT = "application/vnd.oasis.opendocument.text"
# Not a document: `check_upload` expands it (see ingest.archive) when archives are allowed.
ZIP = "application/zip"

SUPPORTED_MEDIA_TYPES: tuple[str, ...] = (
    PDF,
    DOCX,
    PPTX,
    XLSX,
    ODT,
    RTF,
    HTML,
    MARKDOWN,
    TEXT,
    CSV,
    JSON,
    EML,
    MSG,
)
SUPPORTED_LABEL = "PDF, DOCX, PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, JSON, EML, MSG"

# Readers (Acrobat included) accept a few bytes of junk before the PDF header; so do we.
_PDF_HEADER_WINDOW = 1024
# How much decoded text the HTML and Markdown heuristics look at.
_SNIFF_CHARS = 64 * 1024

# Leading bytes of formats people upload by mistake, so the error says what we saw.
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (_OLE2, "legacy Microsoft Office file (save it as DOCX/PPTX/XLSX)"),
    (b"%!PS", "PostScript document"),
)
# An Outlook .msg is an OLE2 file whose MAPI properties live in `__substg1.0_*` streams;
# directory entry names are UTF-16LE.
_MSG_STREAM = "__substg1.0_".encode("utf-16-le")

# The `mimetype` member of OpenDocument-style ZIPs (ODF, EPUB) that we refuse, and why.
_ODF = "application/vnd.oasis.opendocument"
_OTHER_ZIP_DOCUMENTS = {
    f"{_ODF}.spreadsheet": "an OpenDocument spreadsheet (save it as XLSX)",
    f"{_ODF}.presentation": "an OpenDocument presentation (save it as PPTX)",
    "application/epub+zip": "an EPUB e-book (convert it to PDF or HTML)",
}

# RFC 5322 header lines; a message must carry at least two of these, one identifying it.
_HEADER_LINE_RE = re.compile(rb"^([!-9;-~]+):[ \t]*(.*)$")
_MAIL_HEADERS = {
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"received",
    b"mime-version", b"return-path", b"delivered-to", b"reply-to", b"x-mailer",
}  # fmt: skip
_MAIL_IDENTIFYING = {b"from", b"received", b"message-id", b"mime-version", b"return-path"}
_EML_HEAD_BYTES = 16 * 1024

# CSV: rows sampled, and delimiters tried (not '|': that is a Markdown table).
_CSV_SAMPLE_ROWS = 50
_CSV_DELIMITERS = ",;\t"

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


def sniff_media_type(
    data: bytes, filename: str | None = None, *, allow_archive: bool = False
) -> str:
    """Return one of `SUPPORTED_MEDIA_TYPES` for `data`, judged by its content.

    A plain ZIP archive is `ZIP` when `allow_archive` (the caller expands it with
    `ingest.archive.expand_archive`), otherwise refused.

    Raises `EmptyFile` for zero bytes, `ArchiveRejected` for an Office/ODT file whose
    ZIP container is a bomb, and `UnsupportedType` for anything else we cannot parse
    (images, executables, legacy Office, undecodable text), with a message that names
    the file, what was detected and what is supported.
    """
    name = filename or "upload"
    if not data:
        raise EmptyFile(f"{name}: file is empty; upload a document with some text")
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return PDF
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data, name, allow_archive=allow_archive)
    if data.startswith(b"{\\rtf"):
        return RTF
    if data.startswith(_OLE2) and _MSG_STREAM in data:
        return MSG
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise _unsupported(name, what)
    if _looks_like_email(data):
        return EML  # before decoding: a message body may be 8-bit Latin-1

    text = _try_decode(data)
    if text is None:
        raise _unsupported(name, _describe_binary(data))
    return _sniff_text(text, filename)


def decode_text(data: bytes) -> str:
    """Decode bytes that `sniff_media_type` accepted as text: UTF-8, UTF-16/32, or a
    legacy code page found by `ingest.encoding.detect`."""
    return decode_with_encoding(data).text


def decode_with_encoding(data: bytes) -> Decoded:
    """`decode_text`, and the encoding it read the bytes with ("utf-8", "cp1251", ...)."""
    decoded = detect(data)
    if decoded is None:
        raise UnicodeDecodeError(
            "utf-8", data, 0, len(data), "not UTF-8, UTF-16 or a code page that reads as text"
        )
    return decoded


def _unsupported(name: str, detected: str) -> UnsupportedType:
    return UnsupportedType(
        f"{name}: unsupported content type (detected {detected}); supported: {SUPPORTED_LABEL}"
    )


def _sniff_zip(data: bytes, name: str, *, allow_archive: bool) -> str:
    """OOXML files are ZIPs; the part names tell Word from PowerPoint from Excel.
    OpenDocument files name their type in a stored `mimetype` member."""

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = set(archive.namelist())
            mimetype = ""
            if "mimetype" in parts and archive.getinfo("mimetype").file_size < 256:
                mimetype = archive.read("mimetype").decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise _unsupported(name, "a damaged or truncated ZIP/Office file") from None
    media_type: str | None = None
    if "[Content_Types].xml" in parts:
        if "word/document.xml" in parts:
            media_type = DOCX
        elif "ppt/presentation.xml" in parts:
            media_type = PPTX
        elif "xl/workbook.xml" in parts:
            media_type = XLSX
    elif mimetype == ODT:
        if "content.xml" not in parts:
            raise _unsupported(name, "a damaged OpenDocument text (it has no content.xml)")
        media_type = ODT
    elif mimetype in _OTHER_ZIP_DOCUMENTS:
        raise _unsupported(name, _OTHER_ZIP_DOCUMENTS[mimetype])
    elif mimetype.startswith(_ODF):
        raise _unsupported(name, f"an OpenDocument file of type {mimetype!r}")
    if media_type is not None:
        check_container(data, name)  # a 40 KB DOCX must not inflate to gigabytes
        return media_type
    if allow_archive:
        return ZIP
    raise _unsupported(name, "a ZIP archive")


def _try_decode(data: bytes) -> str | None:
    """The text, if `data` is text in UTF-8, UTF-16/32 or a legacy code page (cp1251,
    koi8-r, cp866, windows-1252, ...) with (almost) no control characters."""
    decoded = detect(data)
    return None if decoded is None else decoded.text


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

    lower_name = (filename or "").lower()
    named_md = lower_name.endswith((".md", ".markdown"))
    if _HTML_FRAGMENT_RE.match(start) and not named_md:
        return HTML
    if start[:1] in ("{", "[") and _is_json(text, filename):
        return JSON
    if not named_md and _looks_like_csv(head, named=lower_name.endswith((".csv", ".tsv"))):
        return CSV
    if named_md or _looks_like_markdown(head):
        return MARKDOWN
    return TEXT


def _is_json(text: str, filename: str | None) -> bool:
    try:
        json.loads(text)
    except RecursionError:
        raise _unsupported(filename or "upload", "JSON nested too deeply to read") from None
    except ValueError:
        return False
    return True


def _looks_like_csv(head: str, *, named: bool) -> bool:
    """Rows split by one delimiter into the same number (>= 2) of fields, no blank lines
    between them (prose has paragraphs), at least three rows (two for a `.csv` name)."""
    lines = head.splitlines()
    if len(head) == _SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the sample may cut the last row
    lines = lines[: _CSV_SAMPLE_ROWS * 4]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < (2 if named else 3) or any(not line.strip() for line in lines):
        return False
    sample = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
        rows = list(csv.reader(io.StringIO(sample), dialect))[:_CSV_SAMPLE_ROWS]
    except (csv.Error, ValueError):
        return False
    if len(rows) < (2 if named else 3):
        return False
    widths = {len(row) for row in rows}
    return len(widths) == 1 and widths.pop() >= 2


def _looks_like_email(data: bytes) -> bool:
    """RFC 822: a block of `Name: value` header lines (with folded continuations) ending in
    a blank line, naming at least two mail headers, one of which identifies a message."""
    head = data[:_EML_HEAD_BYTES]
    if not head[:1].isalpha():
        return False
    seen: set[bytes] = set()
    lines = head.split(b"\n")
    for line in lines[:-1]:  # the last one may be cut by the sample
        line = line.rstrip(b"\r")
        if not line:
            return len(seen & _MAIL_HEADERS) >= 2 and bool(seen & _MAIL_IDENTIFYING)
        if line[:1] in (b" ", b"\t") and seen:
            continue  # folded header
        match = _HEADER_LINE_RE.match(line)
        if match is None:
            return False
        seen.add(match.group(1).lower())
    return False


def _looks_like_markdown(text: str) -> bool:
    """Plain text often has a dash list; Markdown has headings, fences, links or tables."""
    strong = sum(len(p.findall(text)) for p in _MD_STRONG)
    weak = sum(len(p.findall(text)) for p in _MD_WEAK)
    return strong >= 2 or (strong >= 1 and weak >= 1)
