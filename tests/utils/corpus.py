"""Build real documents in memory, for tests and for the bundled `samples/` corpus.

Every builder takes a title plus paragraphs; a paragraph that starts with `"# "` is a
section heading (rendered as the format's own heading: `<h2>`, Word "Heading 2", `##`,
a bold PDF line). The PDF writer is hand-rolled so tests need no PDF library.

Example::

    data = make_pdf(["Volcanoes\\n\\nMagma rises...", "Lava flows\\n\\nBasalt..."])
"""

from __future__ import annotations

import datetime as dt
import html
import io
import textwrap
import zipfile
from collections.abc import Sequence
from typing import Any

HEADING_PREFIX = "# "

# Page geometry in PDF points (US Letter, one-inch margins).
_PAGE_W, _PAGE_H, _MARGIN = 612, 792, 72
_BODY_SIZE, _HEADING_SIZE = 11, 14
_LEADING = 15
# Fixed timestamps keep DOCX/PPTX output byte-identical between runs (stable content hashes).
_FIXED_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Helvetica averages about half an em per character, so ~85 characters fill 6.5 inches.
_WRAP_CHARS = 85


def _split_heading(paragraph: str) -> tuple[bool, str]:
    if paragraph.startswith(HEADING_PREFIX):
        return True, paragraph[len(HEADING_PREFIX) :].strip()
    return False, paragraph


def make_pdf(pages: Sequence[str]) -> bytes:
    """A minimal but valid PDF: one page per string, paragraphs split on blank lines.

    pdfminer (hence unstructured's "fast" strategy) extracts nothing unless each page's
    `/Resources` maps the font name used in the content stream and each stream's
    `/Length` is exact, so both are written carefully; fonts carry `/WinAnsiEncoding` so
    Latin-1 text such as "café" survives.
    """
    fonts = (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    )
    # Object numbers: 1 catalog, 2 page tree, 3-4 fonts, then (page, content) pairs.
    first_page = 5
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        *fonts,
    ]
    for i, page in enumerate(pages):
        stream = _page_stream(page)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_W} {_PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            f"/Contents {first_page + 2 * i + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment marks the file as binary
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _page_stream(page: str) -> bytes:
    """Each line is placed absolutely so a blank gap separates paragraphs for pdfminer."""
    ops: list[bytes] = []
    y = _PAGE_H - _MARGIN
    for paragraph in (p.strip() for p in page.split("\n\n")):
        if not paragraph:
            continue
        is_heading, text = _split_heading(paragraph)
        font, size = (b"/F2", _HEADING_SIZE) if is_heading else (b"/F1", _BODY_SIZE)
        for line in textwrap.wrap(" ".join(text.split()), _WRAP_CHARS) or [""]:
            ops.append(
                b"BT %s %d Tf %d %d Td %s Tj ET" % (font, size, _MARGIN, y, _pdf_string(line))
            )
            y -= _LEADING
        y -= _LEADING  # paragraph gap
    return b"\n".join(ops)


def make_docx(title: str, paragraphs: Sequence[str]) -> bytes:
    """A Word document: the title in the "Title" style, headings as "Heading 2"."""
    import docx

    document = docx.Document()
    _fix_core_properties(document.core_properties, title)
    document.add_heading(title, level=0)
    for paragraph in paragraphs:
        is_heading, text = _split_heading(paragraph)
        if is_heading:
            document.add_heading(text, level=2)
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


def make_pptx(slides: Sequence[tuple[str, str]]) -> bytes:
    """A deck of title-and-content slides; each body line becomes one bullet."""
    import pptx

    deck = pptx.Presentation()
    _fix_core_properties(deck.core_properties, slides[0][0] if slides else "")
    layout = deck.slide_layouts[1]  # "Title and Content"
    for title, body in slides:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        frame = slide.placeholders[1].text_frame
        lines = [line.strip() for line in body.split("\n") if line.strip()]
        frame.text = lines[0] if lines else ""
        for line in lines[1:]:
            frame.add_paragraph().text = line
    buffer = io.BytesIO()
    deck.save(buffer)
    return _normalise_zip(buffer.getvalue())


def _fix_core_properties(props: Any, title: str) -> None:
    props.title = title
    props.created = props.modified = props.last_printed = _FIXED_TIME


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite an OOXML package with fixed member timestamps (zipfile stamps 'now')."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(
                zipfile.ZipInfo(info.filename, _ZIP_TIME),
                src.read(info),
                compress_type=zipfile.ZIP_DEFLATED,
            )
    return out.getvalue()


def make_html(title: str, paragraphs: Sequence[str]) -> bytes:
    """A complete UTF-8 HTML page with a `<title>`, an `<h1>` and `<h2>` sections."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for paragraph in paragraphs:
        is_heading, text = _split_heading(paragraph)
        tag = "h2" if is_heading else "p"
        body.append(f"<{tag}>{html.escape(text)}</{tag}>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    return page.encode("utf-8")


def make_md(title: str, paragraphs: Sequence[str]) -> bytes:
    """Markdown with an ATX title; headings become `##` sections."""
    blocks = [f"# {title}"]
    for paragraph in paragraphs:
        is_heading, text = _split_heading(paragraph)
        blocks.append(f"## {text}" if is_heading else paragraph)
    return ("\n\n".join(blocks) + "\n").encode("utf-8")


def make_text(title: str, paragraphs: Sequence[str]) -> bytes:
    """Plain UTF-8 text: the title and headings are bare lines, paragraphs blank-separated."""
    blocks = [title] + [_split_heading(p)[1] for p in paragraphs]
    return ("\n\n".join(blocks) + "\n").encode("utf-8")


def make_xlsx(sheets: dict[str, Sequence[Sequence[Any]]]) -> bytes:
    """A workbook with one worksheet per entry, rows written as given (first row: header)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    _fix_core_properties(book.properties, next(iter(sheets), ""))
    buffer = io.BytesIO()
    book.save(buffer)
    return _normalise_zip(buffer.getvalue())


def make_csv(rows: Sequence[Sequence[Any]], *, delimiter: str = ",") -> bytes:
    """UTF-8 CSV with a header row; cells are quoted only when needed."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def make_eml(
    subject: str,
    paragraphs: Sequence[str],
    *,
    sender: str = "Ana García <ana@example.es>",
    to: str = "team@example.com",
    with_html: bool = False,
) -> bytes:
    """An RFC 822 message (UTF-8, quoted-printable as needed), plain text or plain + HTML."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(_FIXED_TIME)
    message["Message-ID"] = "<fixture-1@example.com>"
    message.set_content("\n\n".join(paragraphs) + "\n")
    if with_html:
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        message.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    return bytes(message)


def make_json(value: Any) -> bytes:
    """Pretty-printed UTF-8 JSON (non-ASCII kept as is)."""
    import json

    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


def make_odt(title: str, paragraphs: Sequence[str]) -> bytes:
    """A minimal OpenDocument text: the title as a level-1 heading, headings level 2."""
    body = [_odt_heading(title, 1)]
    for paragraph in paragraphs:
        is_heading, text = _split_heading(paragraph)
        if is_heading:
            body.append(_odt_heading(text, 2))
        else:
            body.append(f"<text:p>{html.escape(text, quote=False)}</text:p>")
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.3">'
        "<office:body><office:text>" + "".join(body) + "</office:text></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.3">'
        '<manifest:file-entry manifest:full-path="/"'
        ' manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        # ODF rule: `mimetype` first and stored, so `file` and our sniffer can read it.
        archive.writestr(
            zipfile.ZipInfo("mimetype", _ZIP_TIME), "application/vnd.oasis.opendocument.text"
        )
        for name, data in (("content.xml", content), ("META-INF/manifest.xml", manifest)):
            archive.writestr(
                zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
            )
    return out.getvalue()


def _odt_heading(text: str, level: int) -> str:
    return f'<text:h text:outline-level="{level}">{html.escape(text, quote=False)}</text:h>'


def make_rtf(title: str, paragraphs: Sequence[str]) -> bytes:
    """RTF with non-ASCII as `\\uN?` escapes (how Word writes Cyrillic), bold headings."""

    def escape(text: str) -> str:
        out = []
        for char in text:
            if char in "\\{}":
                out.append("\\" + char)
            elif ord(char) < 128:
                out.append(char)
            else:
                code = ord(char)
                out.append(f"\\u{code if code < 32768 else code - 65536}?")
        return "".join(out)

    lines = [r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Helvetica;}}", r"\f0\fs22"]
    lines.append(r"{\b " + escape(title) + r"}\par")
    for paragraph in paragraphs:
        is_heading, text = _split_heading(paragraph)
        lines.append((r"{\b " + escape(text) + "}" if is_heading else escape(text)) + r"\par")
    lines.append("}")
    return "\n".join(lines).encode("ascii")


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP archive of `members` (path -> bytes) with fixed timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=compression)
    return out.getvalue()
