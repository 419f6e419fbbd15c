"""The parse stage on real documents of every supported format, plus the failure modes."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from core.errors import StageFailed, UnsupportedType
from core.types import Piece
from ingest.parse import UnstructuredParser
from ingest.sniff import DOCX, HTML, MARKDOWN, PDF, PPTX, TEXT
from tests.utils.corpus import make_docx, make_html, make_md, make_pdf, make_pptx, make_text

pytestmark = pytest.mark.unit

TITLE = "Honeybees"
PARAGRAPHS = [
    "A colony has one queen and thousands of workers that share the labour.",
    "# Foraging",
    "Workers visit flowers and carry nectar back to the hive in their honey stomachs.",
    "# Swarming",
    "In spring the old queen leaves with half of the workers to found a new colony.",
]


@pytest.fixture(scope="module")
def parser() -> UnstructuredParser:
    return UnstructuredParser()


def _texts(pieces: list[Piece]) -> list[str]:
    return [p.text for p in pieces]


def _section_of(pieces: list[Piece], fragment: str) -> str | None:
    return next(p.metadata["section"] for p in pieces if fragment in p.text)


def test_pdf_pages_and_sections(parser: UnstructuredParser) -> None:
    data = make_pdf(
        [
            "# Honeybees\n\n" + "\n\n".join(PARAGRAPHS[:3]),
            "\n\n".join(PARAGRAPHS[3:]),
        ]
    )
    pieces = parser.parse(data, media_type=PDF, filename="bees.pdf")

    by_text = {p.text: p.metadata for p in pieces}
    assert by_text[PARAGRAPHS[0]] == {
        "category": "NarrativeText",
        "page_number": 1,
        "section": "Honeybees",
        "language": "en",
    }
    assert by_text[PARAGRAPHS[2]]["section"] == "Foraging"
    assert by_text[PARAGRAPHS[4]] == {
        "category": "NarrativeText",
        "page_number": 2,
        "section": "Swarming",
        "language": "en",
    }
    assert by_text["Swarming"]["category"] == "Title"


def test_pdf_keeps_latin1_text(parser: UnstructuredParser) -> None:
    pieces = parser.parse(
        make_pdf(["Un café crème coûte trois euros à Paris."]), media_type=PDF, filename="cafe.pdf"
    )
    assert _texts(pieces) == ["Un café crème coûte trois euros à Paris."]


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (DOCX, make_docx(TITLE, PARAGRAPHS)),
        (HTML, make_html(TITLE, PARAGRAPHS)),
        (MARKDOWN, make_md(TITLE, PARAGRAPHS)),
        (TEXT, make_text(TITLE, PARAGRAPHS)),
    ],
    ids=["docx", "html", "md", "txt"],
)
def test_flowing_formats(parser: UnstructuredParser, media_type: str, data: bytes) -> None:
    pieces = parser.parse(data, media_type=media_type, filename="bees")

    assert _texts(pieces) == [TITLE, *[p.removeprefix("# ") for p in PARAGRAPHS]]
    assert pieces[0].metadata == {
        "category": "Title",
        "page_number": None,
        "section": TITLE,
        "language": "en",
    }
    assert _section_of(pieces, "queen and thousands") == TITLE
    assert _section_of(pieces, "carry nectar") == "Foraging"
    assert _section_of(pieces, "old queen leaves") == "Swarming"
    assert all(p.metadata["page_number"] is None for p in pieces)


def test_pptx_slides_are_pages(parser: UnstructuredParser) -> None:
    data = make_pptx(
        [
            ("Honeybees", "Colonies have one queen.\nWorkers do all the jobs."),
            ("Swarming", "The old queen leaves in spring."),
        ]
    )
    pieces = parser.parse(data, media_type=PPTX, filename="bees.pptx")

    meta = {p.text: p.metadata for p in pieces}
    assert meta["Workers do all the jobs."]["page_number"] == 1
    assert meta["Workers do all the jobs."]["section"] == "Honeybees"
    assert meta["The old queen leaves in spring."] == {
        "category": "NarrativeText",
        "page_number": 2,
        "section": "Swarming",
        "language": "en",
    }


def test_utf16_text_and_non_english(parser: UnstructuredParser) -> None:
    text = "Пчёлы живут семьями.\n\nОдна матка откладывает яйца, рабочие пчёлы собирают нектар.\n"
    pieces = parser.parse(text.encode("utf-16"), media_type=TEXT, filename="пчёлы.txt")
    assert _texts(pieces) == [
        "Пчёлы живут семьями.",
        "Одна матка откладывает яйца, рабочие пчёлы собирают нектар.",
    ]


def test_empty_elements_are_skipped(parser: UnstructuredParser) -> None:
    html = b"<html><body><p>   </p><h1>Title</h1><p></p><p>Body text is here.</p></body></html>"
    pieces = parser.parse(html, media_type=HTML, filename="a.html")
    assert _texts(pieces) == ["Title", "Body text is here."]


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(["Some text on page one."])[:200],
        make_pdf(["Some text."])[:-40],
        b"%PDF-1.7\n" + bytes(range(256)) * 8,
    ],
    ids=["truncated-half", "missing-trailer", "garbage-body"],
)
def test_corrupt_pdf_fails_permanently(parser: UnstructuredParser, data: bytes) -> None:
    with pytest.raises(StageFailed) as caught:
        parser.parse(data, media_type=PDF, filename="broken.pdf")
    error = caught.value
    assert error.permanent is True
    assert error.stage == "parse"
    assert error.document == "broken.pdf"
    assert error.message == (
        "parse failed for 'broken.pdf': not a valid PDF (file is truncated or corrupt)"
    )


def test_password_protected_pdf(parser: UnstructuredParser) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret plans."])))
    writer.encrypt("hunter2", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(StageFailed, match="password-protected"):
        parser.parse(buffer.getvalue(), media_type=PDF, filename="locked.pdf")


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (PDF, make_pdf(["", ""])),
        (DOCX, make_docx("", [])),
        (PPTX, make_pptx([("", "")])),
        (HTML, b"<html><body><img src='scan.png'></body></html>"),
        (MARKDOWN, b"\n\n   \n"),
        (TEXT, b"   \n\t\n"),
    ],
    ids=["pdf", "docx", "pptx", "html", "md", "txt"],
)
def test_document_without_text_fails(
    parser: UnstructuredParser, media_type: str, data: bytes
) -> None:
    with pytest.raises(StageFailed, match="no extractable text") as caught:
        parser.parse(data, media_type=media_type, filename="blank")
    assert caught.value.permanent is True


def test_corrupt_docx_fails_with_reason(parser: UnstructuredParser) -> None:
    data = make_docx(TITLE, PARAGRAPHS)
    with pytest.raises(StageFailed, match="not a valid DOCX file") as caught:
        parser.parse(data[:3000], media_type=DOCX, filename="bees.docx")
    assert caught.value.permanent is True
    assert caught.value.__cause__ is not None


def test_undecodable_text_fails(parser: UnstructuredParser) -> None:
    with pytest.raises(StageFailed, match="not UTF-8 text"):
        parser.parse(b"\x00\x01\x02 caf\xe9", media_type=TEXT, filename="broken.txt")


def test_unknown_media_type(parser: UnstructuredParser) -> None:
    with pytest.raises(UnsupportedType, match="no parser for 'image/png'"):
        parser.parse(b"\x89PNG", media_type="image/png", filename="a.png")


def test_config_and_name() -> None:
    parser = UnstructuredParser()
    assert parser.name == "parse"
    assert parser.config["strategy"] == "fast"
    with pytest.raises(ValueError, match="only 'fast'"):
        UnstructuredParser(strategy="hi_res")


def test_import_is_cheap() -> None:
    """Importing the stage must not drag in unstructured or spaCy (seconds of start-up)."""
    code = (
        "import sys, ingest.parse; "
        "print(any(m.split('.')[0] in ('unstructured', 'spacy') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
