"""Content sniffing decides by bytes; the file name only breaks the Markdown/text tie."""

from __future__ import annotations

import io
import random
import zipfile

import pytest

from core.errors import EmptyFile, UnsupportedType
from ingest.sniff import DOCX, HTML, MARKDOWN, PDF, PPTX, TEXT, decode_text, sniff_media_type
from tests.utils.corpus import make_docx, make_html, make_md, make_pdf, make_pptx, make_text

pytestmark = pytest.mark.unit

PARAGRAPHS = ["Bees live in colonies.", "# Foraging", "Workers collect nectar."]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (make_pdf(["Page one.", "Page two."]), "a.pdf", PDF),
        (make_docx("Bees", PARAGRAPHS), "a.docx", DOCX),
        (make_pptx([("Bees", "Colonies\nHoney")]), "a.pptx", PPTX),
        (make_html("Bees", PARAGRAPHS), "a.html", HTML),
        (make_md("Bees", PARAGRAPHS), "a.md", MARKDOWN),
        (make_text("Bees", PARAGRAPHS), "a.txt", TEXT),
    ],
    ids=["pdf", "docx", "pptx", "html", "md", "txt"],
)
def test_each_format_is_recognised(data: bytes, filename: str, expected: str) -> None:
    assert sniff_media_type(data, filename) == expected
    assert sniff_media_type(data) == expected


@pytest.mark.parametrize(
    ("data", "lying_name", "expected"),
    [
        (make_pdf(["Quarterly numbers."]), "report.txt", PDF),
        (make_docx("Bees", PARAGRAPHS), "notes.pdf", DOCX),
        (make_pptx([("Bees", "Honey")]), "deck.docx", PPTX),
        (make_html("Bees", PARAGRAPHS), "page.txt", HTML),
        (b"Just a plain sentence.\nAnd another one.\n", "fake.html", TEXT),
    ],
)
def test_content_wins_over_a_lying_extension(data: bytes, lying_name: str, expected: str) -> None:
    assert sniff_media_type(data, lying_name) == expected


def test_pdf_header_after_leading_junk() -> None:
    assert sniff_media_type(b"\r\n\xef\xbb\xbf" + make_pdf(["x"]), "a.bin") == PDF


@pytest.mark.parametrize(
    "text",
    [
        "<!DOCTYPE html><html><body><p>Hi</p></body></html>",
        "\ufeff  \n<html lang='en'><p>Hi</p></html>",
        "<!-- generated -->\n<html><p>Hi</p></html>",
        "<?xml version='1.0'?>\n<!DOCTYPE html PUBLIC '-//W3C//DTD XHTML 1.0//EN'><html/>",
        "<div class='post'><p>Just a fragment.</p></div>",
    ],
)
def test_html_variants(text: str) -> None:
    assert sniff_media_type(text.encode(), "page") == HTML


def test_markdown_is_detected_from_structure_without_a_name() -> None:
    text = "# Title\n\nSome text with a [link](https://example.com).\n\n- one\n- two\n"
    assert sniff_media_type(text.encode(), "README.txt") == MARKDOWN


def test_md_extension_breaks_the_tie_for_plain_prose() -> None:
    prose = b"Just prose, no markup at all.\n\nA second paragraph.\n"
    assert sniff_media_type(prose, "notes.md") == MARKDOWN
    assert sniff_media_type(prose, "notes.txt") == TEXT
    assert sniff_media_type(prose) == TEXT


def test_md_extension_keeps_readme_that_starts_with_html() -> None:
    readme = b'<p align="center"><img src="logo.png"></p>\n\n# Project\n\nText.\n'
    assert sniff_media_type(readme, "README.md") == MARKDOWN


def test_a_dash_list_alone_is_still_plain_text() -> None:
    text = b"Shopping:\n- eggs\n- flour\n- butter\n"
    assert sniff_media_type(text, "list.txt") == TEXT


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_bom_marked_unicode_is_text(encoding: str) -> None:
    data = "Grüße aus Köln — привет.\n".encode(encoding)
    assert sniff_media_type(data, "a.txt") == TEXT
    assert decode_text(data) == "Grüße aus Köln — привет.\n"


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64, "image/jpeg"),
        (b"MZ\x90\x00" + b"\x00" * 128, "application/x-msdownload"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "application/x-executable"),
        (random.Random(0).randbytes(4096), "binary data"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "legacy Microsoft Office"),
        (b"%!PS-Adobe-3.0\n", "PostScript"),
        # Every high byte once each, four times over: no code page reads it as text.
        (bytes(range(0x80, 0x100)) * 4, "binary data"),
        (b"text\x00with\x00nuls", "binary data"),
        (b"\x01\x02\x03\x04abc" * 10, "binary data"),
    ],
    ids=["png", "jpeg", "exe", "elf", "random", "ole2", "ps", "high-bytes", "nul", "control"],
)
def test_binary_and_unsupported_content_is_rejected(data: bytes, detected: str) -> None:
    with pytest.raises(UnsupportedType) as caught:
        sniff_media_type(data, "report.exe")
    message = caught.value.message
    assert message.startswith("report.exe: unsupported content type (detected ")
    assert message.endswith(
        "supported: PDF, DOCX, PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, JSON, "
        "EML, MSG"
    )
    assert detected in message


@pytest.mark.parametrize(
    ("members", "detected"),
    [
        ({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}, "spreadsheet"),
        ({"mimetype": b"application/vnd.oasis.opendocument.presentation"}, "presentation"),
        ({"mimetype": b"application/epub+zip"}, "EPUB e-book"),
        ({"mimetype": b"application/vnd.oasis.opendocument.text"}, "damaged OpenDocument"),
        ({"photo.jpg": b"\xff\xd8\xff", "readme.txt": b"hi"}, "a ZIP archive"),
        ({"word/document.xml": b"<w:document/>"}, "a ZIP archive"),  # no [Content_Types]
    ],
)
def test_other_zips_are_rejected(members: dict[str, bytes], detected: str) -> None:
    with pytest.raises(UnsupportedType, match=detected):
        sniff_media_type(_zip(members), "file.docx")


def test_truncated_docx_is_rejected_as_damaged() -> None:
    data = make_docx("Bees", PARAGRAPHS)
    with pytest.raises(UnsupportedType, match="damaged or truncated"):
        sniff_media_type(data[: len(data) // 2], "bees.docx")


def test_empty_upload() -> None:
    with pytest.raises(EmptyFile, match="empty.txt: file is empty"):
        sniff_media_type(b"", "empty.txt")


def test_svg_is_not_html() -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>'
    with pytest.raises(UnsupportedType, match="SVG"):
        sniff_media_type(svg, "logo.svg")


def test_message_names_upload_when_filename_missing() -> None:
    with pytest.raises(UnsupportedType, match="^upload: "):
        sniff_media_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
