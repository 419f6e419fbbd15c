"""The PDF reader on PDFium (ingest.pdfread): paragraphs from line gaps, pages, titles by
font size and sections, hyphenation, columns, Cyrillic and accented text, broken, locked
and scanned files, closed handles, the lock, and memory over many documents.

PDFs are written by hand here (absolutely placed lines, so the geometry under test is
exactly what the test says): Helvetica with WinAnsi encoding for Latin text, a Type 0
font with Identity-H encoding and a ToUnicode map for anything else (Cyrillic).
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from api.bench.corpus import make_documents
from core.types import Piece
from ingest import pdfread
from ingest.formats import FormatError
from ingest.parse import _decrypted_pdf, pdf_from_objects
from ingest.pdfread import LIST_ITEM, NARRATIVE, PDF_READER_VERSION, TITLE, read_pdf
from tests.utils.corpus import make_pdf
from tests.utils.encrypted_pdf import QPDF_VARIANTS, VARIANTS, owner_locked_pdf, user_locked_pdf

pytestmark = pytest.mark.unit

# Guard only (the hostile inputs below read in well under a second); not a speed test.
HOSTILE_BOUND_S = 5.0
# The wording of the parse stage (ingest.parse._pdf_problem), kept by the reader.
LOCKED = "the PDF is password-protected; upload an unencrypted copy"
CORRUPT = "not a valid PDF (file is truncated or corrupt)"

Item = tuple[float, float, float, str]  # x, baseline y, font size, text

_TO_UNICODE = (
    b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
    b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
    b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
    b"48 beginbfrange\n"
    + b"".join(b"<%02X00> <%02XFF> <%02X00>\n" % (h, h, h) for h in range(48))
    + b"endbfrange\nendcmap CMapName currentdict /CMap defineresource pop end end"
)
# Objects 3-7: the two fonts (F1 Helvetica, F2 Type 0) and the Type 0 font's parts.
_FONTS = [
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    b"<< /Type /Font /Subtype /Type0 /BaseFont /DejaVuSans /Encoding /Identity-H "
    b"/DescendantFonts [5 0 R] /ToUnicode 6 0 R >>",
    b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans "
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
    b"/FontDescriptor 7 0 R /DW 550 /CIDToGIDMap /Identity >>",
    b"<< /Length %d >>\nstream\n%s\nendstream" % (len(_TO_UNICODE), _TO_UNICODE),
    b"<< /Type /FontDescriptor /FontName /DejaVuSans /Flags 32 "
    b"/FontBBox [-1021 -463 1793 1232] /ItalicAngle 0 /Ascent 928 /Descent -236 "
    b"/CapHeight 729 /StemV 80 >>",
]
_IMAGE = b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray "
_IMAGE += b"/BitsPerComponent 8 /Length 4 >>\nstream\n\x00\xff\xff\x00\nendstream"


def _string(text: str) -> tuple[bytes, bytes]:
    """(font name, PDF string) for one line: WinAnsi when it fits, else UTF-16 CIDs."""
    try:
        raw = text.encode("cp1252")
    except UnicodeEncodeError:
        return b"/F2", b"<" + text.encode("utf-16-be").hex().encode() + b">"
    escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"/F1", b"(" + escaped + b")"


def _pdf(pages: Sequence[Sequence[Item]], *, image: bool = False) -> bytes:
    """A PDF with one text object per item; `image` draws a picture on every page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", *_FONTS, _IMAGE]
    kids = []
    for page in pages:
        ops = [b"q 200 0 0 200 100 400 cm /Im1 Do Q"] if image else []
        for x, y, size, text in page:
            font, string = _string(text)
            ops.append(b"BT %s %g Tf %g %g Td %s Tj ET" % (font, size, x, y, string))
        content = b"\n".join(ops)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << "
            b"/Font << /F1 3 0 R /F2 4 0 R >> /XObject << /Im1 8 0 R >> >> /Contents %d 0 R >>"
            % len(objects)
        )
        kids.append(len(objects))
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    return pdf_from_objects(objects)


def _lines(
    texts: Sequence[str], *, y: float, size: float = 10, pitch: float = 13, x: float = 72
) -> list[Item]:
    """Consecutive lines of one paragraph, top to bottom."""
    return [(x, y - n * pitch, size, text) for n, text in enumerate(texts)]


def _shape(pieces: list[Piece]) -> list[tuple[str, int, str | None, str]]:
    return [
        (p.metadata["category"], p.metadata["page_number"], p.metadata["section"], p.text)
        for p in pieces
    ]


def _texts(pieces: list[Piece]) -> list[str]:
    return [p.text for p in pieces]


# ---------------------------------------------------------------- paragraphs and pages


def test_paragraphs_split_by_gaps_and_wrapped_lines_joined() -> None:
    page = [
        *_lines(["The first paragraph starts on this line", "and wraps onto a second one."], y=700),
        # A blank line's gap (26 pt) between paragraphs; 13 pt inside them.
        *_lines(["The second paragraph has one line only."], y=661),
        *_lines(["A third one begins here", "and carries on", "for three lines."], y=622),
    ]
    pieces = read_pdf(_pdf([page]))
    assert _texts(pieces) == [
        "The first paragraph starts on this line and wraps onto a second one.",
        "The second paragraph has one line only.",
        "A third one begins here and carries on for three lines.",
    ]
    assert [p.metadata for p in pieces] == [
        {"category": NARRATIVE, "page_number": 1, "section": None}
    ] * 3


def test_a_change_of_font_size_ends_a_paragraph() -> None:
    page = [
        *_lines(["Body text at ten points", "runs over two lines."], y=700),
        *_lines(["A note at eight points right below."], y=674, size=8, pitch=10),
    ]
    assert _texts(read_pdf(_pdf([page]))) == [
        "Body text at ten points runs over two lines.",
        "A note at eight points right below.",
    ]


def test_double_spaced_text_keeps_its_paragraphs() -> None:
    """The gap that separates paragraphs is judged against the document's own line pitch."""
    first = [
        "A manuscript is often printed double spaced",
        "so that the editor has room for remarks",
        "between the lines, and its paragraphs are",
        "set apart by a little more space still.",
    ]
    second = ["The second paragraph of the manuscript", "follows after such a gap."]
    page = [*_lines(first, y=700, pitch=24), *_lines(second, y=700 - 4 * 24 - 14, pitch=24)]
    assert _texts(read_pdf(_pdf([page]))) == [" ".join(first), " ".join(second)]


def test_first_line_indent_starts_a_paragraph_without_a_gap() -> None:
    page = [
        (90, 700, 10, "An indented first line opens"),
        (72, 687, 10, "the first paragraph, which ends here."),
        (90, 674, 10, "The next one is indented too"),
        (72, 661, 10, "and has no gap above it."),
    ]
    assert _texts(read_pdf(_pdf([page]))) == [
        "An indented first line opens the first paragraph, which ends here.",
        "The next one is indented too and has no gap above it.",
    ]


def test_page_numbers_follow_the_pages() -> None:
    pages = [
        _lines(["Text on the first page."], y=700),
        [],  # a blank page
        _lines(["Text on the third page.", "It wraps."], y=700),
    ]
    assert _shape(read_pdf(_pdf(pages))) == [
        (NARRATIVE, 1, None, "Text on the first page."),
        (NARRATIVE, 3, None, "Text on the third page. It wraps."),
    ]


THIRTEEN_WORDS = "one two three four five six seven eight nine ten eleven twelve thirteen"


def test_titles_by_font_size_set_sections_across_pages() -> None:
    pages = [
        [
            (72, 720, 20, "Volcano Report"),
            *_lines(["Magma rises through the crust.", "It erupts as lava."], y=690),
            (72, 640, 14, "Hazards"),
            *_lines(["Pyroclastic flows are the deadliest hazard."], y=615),
        ],
        [
            *_lines(["Lahars follow heavy rain on fresh ash."], y=720),
            # Short and unpunctuated, but at body size: not a title.
            *_lines(["Monitoring stations"], y=690),
            # Large, but a sentence; large, but too long.
            (72, 660, 14, "This large line ends with a full stop."),
            (72, 630, 14, THIRTEEN_WORDS),
            (72, 600, 14, "Forecasting"),
            *_lines(["Swarms of small earthquakes come first."], y=575),
        ],
    ]
    assert _shape(read_pdf(_pdf(pages))) == [
        (TITLE, 1, "Volcano Report", "Volcano Report"),
        (NARRATIVE, 1, "Volcano Report", "Magma rises through the crust. It erupts as lava."),
        (TITLE, 1, "Hazards", "Hazards"),
        (NARRATIVE, 1, "Hazards", "Pyroclastic flows are the deadliest hazard."),
        (NARRATIVE, 2, "Hazards", "Lahars follow heavy rain on fresh ash."),
        (NARRATIVE, 2, "Hazards", "Monitoring stations"),
        (NARRATIVE, 2, "Hazards", "This large line ends with a full stop."),
        (NARRATIVE, 2, "Hazards", THIRTEEN_WORDS),
        (TITLE, 2, "Forecasting", "Forecasting"),
        (NARRATIVE, 2, "Forecasting", "Swarms of small earthquakes come first."),
    ]


def test_a_title_may_wrap_over_two_lines() -> None:
    page = [
        *_lines(["The Long Title of a Report", "on Two Lines"], y=720, size=18, pitch=22),
        *_lines(["Body text follows the title.", "It is longer than the title."], y=660),
    ]
    assert _shape(read_pdf(_pdf([page])))[0] == (
        TITLE,
        1,
        "The Long Title of a Report on Two Lines",
        "The Long Title of a Report on Two Lines",
    )


def test_list_items() -> None:
    page = [
        *_lines(["Three ways to watch a volcano:"], y=720),
        *_lines(["• seismometers on the slopes,", "  read every second;"], y=700),
        *_lines(["- satellite images;"], y=674),
        *_lines(["1. gas samples from the vents."], y=661),
        (72, 620, 16, "2. Numbered heading"),
        *_lines(["Closing words of the page."], y=590),
    ]
    assert _shape(read_pdf(_pdf([page]))) == [
        (NARRATIVE, 1, None, "Three ways to watch a volcano:"),
        (LIST_ITEM, 1, None, "seismometers on the slopes, read every second;"),
        (LIST_ITEM, 1, None, "satellite images;"),
        (LIST_ITEM, 1, None, "1. gas samples from the vents."),
        (TITLE, 1, "2. Numbered heading", "2. Numbered heading"),
        (NARRATIVE, 1, "2. Numbered heading", "Closing words of the page."),
    ]


def test_hyphenated_line_ends() -> None:
    page = [
        # "example" occurs elsewhere in the document: the hyphen was a soft break.
        *_lines(["This is an exam-", "ple of a broken word."], y=720),
        *_lines(["Another example follows."], y=680),
        # A compound, a number and a word the document never spells whole keep theirs.
        *_lines(["A well-", "known fact about COVID-", "19 and inter-", "national trade."], y=640),
        # A dash after a space is no hyphen: the lines are joined with a space.
        *_lines(["Dashes stay -", "as they are."], y=570),
    ]
    assert _texts(read_pdf(_pdf([page]))) == [
        "This is an example of a broken word.",
        "Another example follows.",
        "A well-known fact about COVID-19 and inter-national trade.",
        "Dashes stay - as they are.",
    ]


# ---------------------------------------------------------------- columns


LEFT = [
    "The left column tells how keepers lived",
    "on the rock for months at a time and",
    "wound the clockwork every four hours.",
]
RIGHT = [
    "The right column explains how a lens",
    "bends the light of a single flame into",
    "a beam seen twenty nautical miles away.",
]


def test_two_columns_drawn_row_by_row_are_not_interleaved() -> None:
    """PDFium joins text on one baseline into one line: the gutter cuts it again."""
    page = [(72, 720, 18, "Lighthouses")]
    for row, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        page += [(72, 690 - 13 * row, 10, left), (320, 690 - 13 * row, 10, right)]
    assert _texts(read_pdf(_pdf([page]))) == ["Lighthouses", " ".join(LEFT), " ".join(RIGHT)]


def test_two_columns_drawn_one_after_the_other() -> None:
    page = [*_lines(LEFT, y=690), *_lines(RIGHT, y=690, x=320)]
    assert _texts(read_pdf(_pdf([page]))) == [" ".join(LEFT), " ".join(RIGHT)]


def test_section_numbers_stay_with_their_headings() -> None:
    """Aligned gaps after short numbers (a table of contents) are not a gutter."""
    page = [(72, 700 - 13 * n, 10, f"2.{n}") for n in range(1, 5)]
    page += [(96, 700 - 13 * n, 10, f"Section {n} of the guide") for n in range(1, 5)]
    # Drawn number then heading, row by row, as a typesetter writes them.
    page.sort(key=lambda item: (-item[1], item[0]))
    pieces = read_pdf(_pdf([page]))
    assert " ".join(_texts(pieces)) == " ".join(
        f"2.{n} Section {n} of the guide" for n in range(1, 5)
    )


# ---------------------------------------------------------------- text


def test_cyrillic_text() -> None:
    page = [
        (72, 720, 18, "Вулканы Камчатки"),
        *_lines(
            [
                "Камчатка насчитывает около трёхсот вулканов, из",
                "которых около тридцати действующих; «Ключевская",
                "сопка» — самый высокий вулкан Евразии.",
            ],
            y=690,
        ),
    ]
    assert _shape(read_pdf(_pdf([page]))) == [
        (TITLE, 1, "Вулканы Камчатки", "Вулканы Камчатки"),
        (
            NARRATIVE,
            1,
            "Вулканы Камчатки",
            "Камчатка насчитывает около трёхсот вулканов, из которых около тридцати "
            "действующих; «Ключевская сопка» — самый высокий вулкан Евразии.",
        ),
    ]


def test_spanish_accents() -> None:
    page = [
        (72, 720, 18, "Erupción del Nevado del Ruiz"),
        *_lines(["¿Qué pasó en Armero? Los lahares bajaron", "por el cañón en 1985."], y=690),
    ]
    assert _texts(read_pdf(_pdf([page]))) == [
        "Erupción del Nevado del Ruiz",
        "¿Qué pasó en Armero? Los lahares bajaron por el cañón en 1985.",
    ]
    latin1 = make_pdf(["Un café crème coûte trois euros à Paris."])
    assert _texts(read_pdf(latin1)) == ["Un café crème coûte trois euros à Paris."]


def test_invisible_text_is_read() -> None:
    """Text render mode 3 (invisible): the OCR layer over a scanned page."""
    content = b"BT 3 Tr /F1 10 Tf 72 700 Td (Recognised words over a scan.) Tj ET"
    data = pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
            _FONTS[0],
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>",
        ]
    )
    assert _texts(read_pdf(data)) == ["Recognised words over a scan."]


def test_control_characters_are_dropped() -> None:
    pieces = read_pdf(_pdf([[(72, 700, 10, "Bell\x07 and\x00 null\x01 gone")]]))
    assert _texts(pieces) == ["Bell and null gone"]


# ---------------------------------------------------------------- failures and empty files


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(["Some text on page one."])[:200],
        make_pdf(["Some text."])[:-40],
        b"%PDF-1.7\n" + bytes(range(256)) * 8,
        b"",
        b"plain text, not a PDF",
    ],
    ids=["truncated-half", "missing-trailer", "garbage-body", "empty", "not-pdf"],
)
def test_corrupt_pdf_raises_format_error(data: bytes) -> None:
    with pytest.raises(FormatError) as caught:
        read_pdf(data)
    assert str(caught.value) == CORRUPT


def test_a_damaged_cross_reference_table_is_repaired() -> None:
    """PDFium rebuilds it by scanning the objects (unstructured found no text here)."""
    good = make_pdf(["Some text on page one.", "And page two."])
    damaged = re.sub(rb"\d{10} 00000 n", b"0000000000 00000 n", good)
    assert damaged != good
    assert _texts(read_pdf(damaged)) == ["Some text on page one.", "And page two."]


def test_pdf_without_pages_raises_format_error() -> None:
    with pytest.raises(FormatError, match=r"^not a valid PDF \(it has no pages\)$"):
        read_pdf(make_pdf([]))


def test_pdf_needing_a_password_raises_format_error() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret plans."])))
    writer.encrypt("hunter2", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    for data in (buffer.getvalue(), user_locked_pdf(["Secret plans."])):
        with pytest.raises(FormatError) as caught:
            read_pdf(data)
        assert str(caught.value) == LOCKED


PAGES = ["Page one of the archive.", "Page two of the archive."]


@pytest.mark.parametrize("variant", VARIANTS)
def test_owner_password_only_pdf_after_the_callers_decryption(variant: str) -> None:
    data = _decrypted_pdf(owner_locked_pdf(PAGES, variant), "archive.pdf")
    assert [(p.metadata["page_number"], p.text) for p in read_pdf(data)] == [
        (1, PAGES[0]),
        (2, PAGES[1]),
    ]


@pytest.mark.parametrize("variant", QPDF_VARIANTS)
def test_owner_password_only_pdf_opens_as_it_is(variant: str) -> None:
    assert _texts(read_pdf(owner_locked_pdf(PAGES, variant))) == PAGES


def test_pages_without_text_give_no_pieces() -> None:
    assert read_pdf(_pdf([[], []], image=True)) == []  # a scan: an image per page
    assert read_pdf(make_pdf(["", ""])) == []


# ---------------------------------------------------------------- the bench corpus


@pytest.fixture(scope="module")
def bench_pdfs() -> list[Any]:
    docs = [d for d in make_documents(150) if d.filename.endswith(".pdf")]
    assert len(docs) >= 15
    return docs


def test_bench_corpus_text_equals_its_source(bench_pdfs: list[Any]) -> None:
    for doc in bench_pdfs:
        pieces = read_pdf(doc.data)
        source = [doc.title, *doc.paragraphs]
        assert " ".join(_texts(pieces)).split() == " ".join(source).split(), doc.filename
        # Paragraph by paragraph: each piece is a source paragraph, or its part on one
        # page when a page break cuts it.
        assert all(any(p.text in s for s in source) for p in pieces), doc.filename
        assert {p.metadata["category"] for p in pieces} == {NARRATIVE}
        assert [p.metadata["page_number"] for p in pieces] == sorted(
            p.metadata["page_number"] for p in pieces
        )
        assert pieces[-1].metadata["page_number"] == 2


# ---------------------------------------------------------------- resources


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_reading_many_documents_does_not_grow_memory(bench_pdfs: list[Any]) -> None:
    """Loose: a text page left open costs about 0.3 MiB here, 100 MiB over this loop."""
    data = [doc.data for doc in bench_pdfs]
    for n in range(40):
        read_pdf(data[n % len(data)])
    before = _rss_mib()
    for n in range(300):
        read_pdf(data[n % len(data)])
    assert _rss_mib() - before < 25


class _Recorder:
    """PDFium's functions, each call checked to run under the reader's lock and the
    opening and closing ones counted."""

    def __init__(self, lib: Any, fail: str | None = None) -> None:
        self.lib = lib
        self.fail = fail
        self.calls: dict[str, int] = {}
        self.unlocked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.lib, name)
        if not callable(target) or not name.startswith("FPDF"):
            return target

        def call(*args: Any) -> Any:
            if not pdfread._LOCK.locked():
                self.unlocked.append(name)
            if name == self.fail:
                raise RuntimeError("injected failure")
            result = target(*args)
            if not name.endswith(("LoadPage", "LoadMemDocument64")) or result:
                self.calls[name] = self.calls.get(name, 0) + 1
            return result

        return call

    def balanced(self) -> bool:
        pairs = [
            ("FPDF_LoadMemDocument64", "FPDF_CloseDocument"),
            ("FPDF_LoadPage", "FPDF_ClosePage"),
            ("FPDFText_LoadPage", "FPDFText_ClosePage"),
        ]
        return all(self.calls.get(a, 0) == self.calls.get(b, 0) for a, b in pairs)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def install(fail: str | None = None) -> _Recorder:
        spy = _Recorder(pdfread._pdfium(), fail)
        monkeypatch.setattr(pdfread, "_pdfium", lambda: spy)
        return spy

    yield install


@pytest.mark.parametrize(
    ("data", "fail", "error", "opens"),
    [
        (make_pdf(["One page.", "Two pages."]), None, None, True),
        (make_pdf([]), None, FormatError, True),  # opens, has no pages
        (make_pdf(["Some text."])[:-40], None, FormatError, False),
        (make_pdf(["One page.", "Two pages."]), "FPDFText_CountChars", RuntimeError, True),
        (make_pdf(["One page."]), "FPDFText_GetCharOrigin", RuntimeError, True),
    ],
    ids=["ok", "no-pages", "corrupt", "fails-reading-page", "fails-reading-line"],
)
def test_every_handle_is_closed_and_every_call_locked(
    recorder: Any, data: bytes, fail: str | None, error: type[Exception] | None, opens: bool
) -> None:
    spy = recorder(fail)
    if error is None:
        assert read_pdf(data)
    else:
        with pytest.raises(error):
            read_pdf(data)
    assert spy.calls.get("FPDF_LoadMemDocument64", 0) == int(opens)
    assert spy.balanced(), spy.calls
    assert spy.unlocked == []


def test_threads_read_in_parallel_like_one(bench_pdfs: list[Any]) -> None:
    data = [doc.data for doc in bench_pdfs[:8]] * 3
    expected = [_shape(read_pdf(d)) for d in data]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert [_shape(p) for p in pool.map(read_pdf, data)] == expected
    assert isinstance(pdfread._LOCK, type(threading.Lock()))


def test_reader_version_is_exported() -> None:
    assert PDF_READER_VERSION == "1"


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "page",
    [
        # 3000 lines of one paragraph, each ending in a hyphen.
        _lines([f"w{n}-" for n in range(3000)], y=780, size=0.2, pitch=0.25),
        # 4000 one-letter objects scattered over the page.
        [(float(n * 37 % 540), float(n * 53 % 760), 6, "x") for n in range(4000)],
        # 2000 one-word cells of a 20-column table: gaps everywhere.
        [(20.0 + 29 * (n % 20), 780.0 - 7.5 * (n // 20), 5, f"c{n}") for n in range(2000)],
    ],
    ids=["hyphens", "scattered", "table"],
)
def test_hostile_pages_read_in_bounded_time(page: list[Item]) -> None:
    start = time.perf_counter()
    pieces = read_pdf(_pdf([page]))
    assert time.perf_counter() - start < HOSTILE_BOUND_S
    assert pieces
