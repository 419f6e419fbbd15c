"""The DOCX reader (ingest.docxread): paragraphs, headings and sections, lists and their
labels, tables, page numbers, tracked changes, text boxes, headers and footers, broken
packages, and agreement with unstructured's partition_docx on the bench corpus."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import docx
import pytest
from docx.enum.text import WD_BREAK

from core.types import Piece
from ingest import docxread
from ingest.docxread import DOCX_READER_VERSION, read_docx
from ingest.formats import FormatError
from tests.utils.pieces import normalised_text, shape, texts

pytestmark = pytest.mark.unit

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = (
    f'xmlns:w="{W_NS}" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
# Guard only (the hostile inputs below read in milliseconds); not a speed test.
HOSTILE_BOUND_S = 5.0


# ------------------------------------------------------------------ helpers


def _package(
    body: str,
    *,
    styles: str | None = None,
    numbering: str | None = None,
    settings: str | None = None,
    parts: dict[str, str] | None = None,
) -> bytes:
    """A minimal DOCX: `body` is the XML inside `w:body`; `parts` maps relationship ids
    of headers/footers ("hdr1") to their XML inside `w:hdr`/`w:ftr`."""
    rels: list[str] = []
    files: dict[str, str] = {}
    for name, kind, xml in (
        ("styles.xml", "styles", styles),
        ("numbering.xml", "numbering", numbering),
        ("settings.xml", "settings", settings),
    ):
        if xml is not None:
            files[f"word/{name}"] = xml
            rels.append(f'<Relationship Id="{kind}" Type="{REL_TYPE}{kind}" Target="{name}"/>')
    for rel_id, xml in (parts or {}).items():
        kind = "header" if rel_id.startswith("hdr") else "footer"
        root = "w:hdr" if kind == "header" else "w:ftr"
        files[f"word/{rel_id}.xml"] = f"<{root} {NS}>{xml}</{root}>"
        rels.append(f'<Relationship Id="{rel_id}" Type="{REL_TYPE}{kind}" Target="{rel_id}.xml"/>')
    files["word/document.xml"] = f"<w:document {NS}><w:body>{body}</w:body></w:document>"
    files["word/_rels/document.xml.rels"] = (
        f'<Relationships xmlns="{REL_NS}">{"".join(rels)}</Relationships>'
    )
    files["_rels/.rels"] = (
        f'<Relationships xmlns="{REL_NS}"><Relationship Id="rId1" '
        f'Type="{REL_TYPE}officeDocument" Target="word/document.xml"/></Relationships>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in files.items():
            archive.writestr(name, xml)
    return out.getvalue()


def _styles(*styles: str) -> str:
    normal = (
        '<w:style w:type="paragraph" w:default="1" w:styleId="Normal">'
        '<w:name w:val="Normal"/></w:style>'
    )
    return f"<w:styles {NS}>{normal}{''.join(styles)}</w:styles>"


def _style(style_id: str, name: str, based_on: str | None = None, ppr: str = "") -> str:
    based = f'<w:basedOn w:val="{based_on}"/>' if based_on else ""
    return (
        f'<w:style w:type="paragraph" w:styleId="{style_id}"><w:name w:val="{name}"/>'
        f"{based}<w:pPr>{ppr}</w:pPr></w:style>"
    )


def _p(text: str = "", *, style: str | None = None, ppr: str = "", runs: str = "") -> str:
    props = (f'<w:pStyle w:val="{style}"/>' if style else "") + ppr
    run = f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>' if text else ""
    return f"<w:p><w:pPr>{props}</w:pPr>{run}{runs}</w:p>"


def _numbered(text: str, num_id: str, ilvl: int = 0, style: str | None = None) -> str:
    return _p(
        text,
        style=style,
        ppr=f'<w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr>',
    )


def _cell(*paragraphs: str, merge: str = "") -> str:
    return f"<w:tc><w:tcPr>{merge}</w:tcPr>{''.join(paragraphs) or '<w:p/>'}</w:tc>"


def _table(*rows: list[str]) -> str:
    return "<w:tbl>" + "".join(f"<w:tr>{''.join(row)}</w:tr>" for row in rows) + "</w:tbl>"


def _saved(document: Any) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pages(pieces: list[Piece]) -> list[tuple[str, int | None]]:
    return [(p.text, p.metadata["page_number"]) for p in pieces]


# ------------------------------------------------------------------ headings, sections


def test_headings_set_sections_and_metadata_has_exactly_three_keys() -> None:
    document = docx.Document()
    document.add_heading("Honeybees", level=0)
    document.add_paragraph("A colony has one queen.")
    document.add_heading("Foraging", level=1)
    document.add_paragraph("Workers carry nectar.")
    document.add_heading("Dances", level=3)
    document.add_paragraph("The waggle dance points at flowers.")
    pieces = read_docx(_saved(document))
    assert shape(pieces) == [
        ("Title", "Honeybees", "Honeybees"),
        ("NarrativeText", "A colony has one queen.", "Honeybees"),
        ("Title", "Foraging", "Foraging"),
        ("NarrativeText", "Workers carry nectar.", "Foraging"),
        ("Title", "Dances", "Dances"),
        ("NarrativeText", "The waggle dance points at flowers.", "Dances"),
    ]
    assert all(set(p.metadata) == {"category", "page_number", "section"} for p in pieces)
    assert DOCX_READER_VERSION == "1"


def test_text_before_the_first_heading_has_no_section_and_unknown_styles_are_body_text() -> None:
    styles = _styles(_style("Heading1", "heading 1"))
    body = _p("Preface.") + _p("Later", style="Heading1") + _p("Body.", style="NoSuchStyle")
    assert shape(read_docx(_package(body, styles=styles))) == [
        ("NarrativeText", "Preface.", None),
        ("Title", "Later", "Later"),
        ("NarrativeText", "Body.", "Later"),
    ]
    # Without a styles part a style id alone says nothing.
    pieces = read_docx(_package(body))
    assert {p.metadata["category"] for p in pieces} == {"NarrativeText"}


def test_localised_heading_styles_are_recognised_by_name_outline_and_based_on() -> None:
    styles = _styles(
        _style("Ttulo1", "heading 1", "Normal", '<w:outlineLvl w:val="0"/>'),
        _style("Heading2", "heading 2", "Normal", '<w:outlineLvl w:val="1"/>'),
        _style("Zagolovok", "Заголовок отчёта", "Heading2"),  # custom name, inherits level 1
        _style("Ttulo", "Title", "Normal"),
        _style("Cuerpo", "Cuerpo de texto", "Normal", '<w:outlineLvl w:val="9"/>'),
    )
    body = (
        _p("Informe anual", style="Ttulo")
        + _p("Título principal", style="Ttulo1")
        + _p("Texto normal.")
        + _p("Подраздел", style="Zagolovok")
        + _p("Текст раздела.", style="Cuerpo")
        + _p("Outline only", ppr='<w:outlineLvl w:val="3"/>')
        + _p("Body after it.")
    )
    assert shape(read_docx(_package(body, styles=styles))) == [
        ("Title", "Informe anual", "Informe anual"),
        ("Title", "Título principal", "Título principal"),
        ("NarrativeText", "Texto normal.", "Título principal"),
        ("Title", "Подраздел", "Подраздел"),
        ("NarrativeText", "Текст раздела.", "Подраздел"),
        ("Title", "Outline only", "Outline only"),
        ("NarrativeText", "Body after it.", "Outline only"),
    ]


def test_cyrillic_and_spanish_text_is_kept_exactly() -> None:
    document = docx.Document()
    document.add_heading("Пчёлы и мёд", level=1)
    document.add_paragraph("Матка откладывает яйца; рабочие пчёлы собирают нектар.")
    document.add_heading("Las abejas", level=1)
    document.add_paragraph("¿Cuántas abejas hay? Añadió: «la colmena está llena».")
    assert texts(read_docx(_saved(document))) == [
        "Пчёлы и мёд",
        "Матка откладывает яйца; рабочие пчёлы собирают нектар.",
        "Las abejas",
        "¿Cuántas abejas hay? Añadió: «la colmena está llena».",
    ]


# ------------------------------------------------------------------ paragraph text


def test_runs_tabs_breaks_hyperlinks_and_fields() -> None:
    runs = (
        '<w:r><w:t xml:space="preserve">See </w:t></w:r>'
        '<w:hyperlink r:id="x"><w:r><w:t>the site</w:t></w:r></w:hyperlink>'
        "<w:r><w:tab/><w:t>tabbed</w:t><w:br/><w:t>next line, well</w:t>"
        "<w:noBreakHyphen/><w:t>known</w:t></w:r>"
        '<w:r><w:br w:type="column"/><w:softHyphen/><w:t xml:space="preserve"> page </w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        '<w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>7</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
        '<w:fldSimple w:instr=" NUMPAGES "><w:r><w:t xml:space="preserve"> of 9</w:t></w:r>'
        "</w:fldSimple>"
    )
    assert texts(read_docx(_package(_p(runs=runs)))) == [
        "See the site\ttabbed\nnext line, well-known page 7 of 9"
    ]


def test_tracked_deletions_are_skipped_and_insertions_kept() -> None:
    runs = (
        '<w:r><w:t xml:space="preserve">The hive has </w:t></w:r>'
        '<w:del w:id="1" w:author="a"><w:r><w:delText>two</w:delText></w:r></w:del>'
        '<w:ins w:id="2" w:author="a"><w:r><w:t>one</w:t></w:r></w:ins>'
        '<w:moveFrom w:id="3" w:author="a"><w:r><w:t> moved away</w:t></w:r></w:moveFrom>'
        '<w:r><w:t xml:space="preserve"> queen</w:t></w:r>'
        '<w:moveTo w:id="4" w:author="a"><w:r><w:t xml:space="preserve"> today</w:t></w:r>'
        "</w:moveTo><w:r><w:t>.</w:t></w:r>"
    )
    deleted_paragraph = (
        '<w:p><w:del w:id="5" w:author="a"><w:r><w:delText>Gone.</w:delText></w:r></w:del></w:p>'
    )
    pieces = read_docx(_package(_p(runs=runs) + deleted_paragraph))
    assert texts(pieces) == ["The hive has one queen today."]


def test_text_box_is_read_once_after_its_anchor() -> None:
    box = "<w:txbxContent>" + _p("Boxed note.") + _p("Second box line.") + "</w:txbxContent>"
    runs = (
        "<w:r><mc:AlternateContent>"
        '<mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic><a:graphicData>'
        f"<wps:wsp><wps:txbx>{box}</wps:txbx></wps:wsp>"
        "</a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
        f"<mc:Fallback><w:pict><v:shape><v:textbox>{box}</v:textbox></v:shape></w:pict>"
        "</mc:Fallback></mc:AlternateContent></w:r>"
    )
    body = _p("Anchor paragraph.", runs=runs) + _p("Next paragraph.")
    assert texts(read_docx(_package(body))) == [
        "Anchor paragraph.",
        "Boxed note.",
        "Second box line.",
        "Next paragraph.",
    ]


def test_vml_text_box_without_alternate_content_is_read() -> None:
    runs = (
        "<w:r><w:pict><v:shape><v:textbox><w:txbxContent>"
        + _p("Old-style box.")
        + "</w:txbxContent></v:textbox></v:shape></w:pict></w:r>"
    )
    assert texts(read_docx(_package(_p("Anchor.", runs=runs)))) == ["Anchor.", "Old-style box."]


def test_content_controls_are_read_except_contents_and_placeholders() -> None:
    body = (
        '<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/>'
        "</w:docPartObj></w:sdtPr><w:sdtContent>"
        + _p("Introduction\t3")
        + "</w:sdtContent></w:sdt>"
        + '<w:sdt><w:sdtPr><w:alias w:val="Cover"/></w:sdtPr><w:sdtContent>'
        + _p("Annual report 2024")
        + "</w:sdtContent></w:sdt>"
        + _p(
            "Name: ",
            runs=(
                "<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent>"
                "<w:r><w:t>Click here to enter text.</w:t></w:r></w:sdtContent></w:sdt>"
                "<w:sdt><w:sdtContent><w:r><w:t>Ada</w:t></w:r></w:sdtContent></w:sdt>"
                "<w:smartTag><w:r><w:t xml:space='preserve'> Lovelace</w:t></w:r></w:smartTag>"
            ),
        )
    )
    assert texts(read_docx(_package(body))) == ["Annual report 2024", "Name: Ada Lovelace"]


def test_empty_paragraphs_give_nothing_and_an_empty_document_gives_no_pieces() -> None:
    assert read_docx(_saved(docx.Document())) == []
    assert read_docx(_package(_p() + _p("   ") + "<w:p/>")) == []
    assert read_docx(_package("")) == []


# ------------------------------------------------------------------ lists


def test_list_styles_numbering_labels_and_typed_bullets() -> None:
    document = docx.Document()
    document.add_heading("Steps", level=1)
    for text in ("smoke the hive", "open the lid"):
        document.add_paragraph(text, style="List Bullet")
    for text in ("Install the hive", "Feed the bees"):
        document.add_paragraph(text, style="List Number")
    document.add_paragraph("• a typed bullet")
    document.add_paragraph("- a typed dash item")
    document.add_paragraph("-5 degrees is cold")
    document.add_paragraph("Plain text.", style="List Paragraph")
    assert shape(read_docx(_saved(document)))[1:] == [
        ("ListItem", "smoke the hive", "Steps"),
        ("ListItem", "open the lid", "Steps"),
        ("ListItem", "1. Install the hive", "Steps"),
        ("ListItem", "2. Feed the bees", "Steps"),
        ("ListItem", "a typed bullet", "Steps"),
        ("ListItem", "a typed dash item", "Steps"),
        ("NarrativeText", "-5 degrees is cold", "Steps"),
        ("ListItem", "Plain text.", "Steps"),
    ]


NUMBERING = (
    f"<w:numbering {NS}>"
    '<w:abstractNum w:abstractNumId="10">'
    '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/>'
    '<w:lvlText w:val="%1."/></w:lvl>'
    '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/>'
    '<w:lvlText w:val="%1.%2"/></w:lvl>'
    '<w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/>'
    '<w:lvlText w:val="%3)"/></w:lvl>'
    '<w:lvl w:ilvl="3"><w:start w:val="4"/><w:numFmt w:val="upperRoman"/>'
    '<w:lvlText w:val="%4."/><w:lvlRestart w:val="0"/></w:lvl>'
    "</w:abstractNum>"
    '<w:abstractNum w:abstractNumId="20"><w:lvl w:ilvl="0"><w:numFmt w:val="bullet"/>'
    '<w:lvlText w:val="\uf0b7"/></w:lvl></w:abstractNum>'
    '<w:num w:numId="1"><w:abstractNumId w:val="10"/></w:num>'
    '<w:num w:numId="2"><w:abstractNumId w:val="20"/></w:num>'
    '<w:num w:numId="3"><w:abstractNumId w:val="10"/>'
    '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="5"/></w:lvlOverride></w:num>'
    "</w:numbering>"
)


def test_numbering_labels_follow_levels_restarts_overrides_and_tables() -> None:
    styles = _styles(
        _style("Heading1", "heading 1", "Normal", '<w:outlineLvl w:val="0"/>'),
        _style("Heading2", "heading 2", "Normal", '<w:outlineLvl w:val="1"/>'),
    )
    body = (
        _numbered("Introduction", "1", 0, "Heading1")
        + _numbered("Scope", "1", 1, "Heading2")
        + _numbered("first", "1", 2)
        + _numbered("second", "1", 2)
        + _numbered("roman", "1", 3)
        + _table([_cell(_numbered("in a cell", "1", 2)), _cell(_p("plain"))])
        + _numbered("fourth", "1", 2)
        + _numbered("Methods", "1", 0, "Heading1")
        + _numbered("restarted", "1", 2)
        + _numbered("not restarted", "1", 3)
        + _numbered("bullet", "2")
        + _numbered("from five", "3")
        + _numbered("numbering off", "0")
    )
    assert shape(read_docx(_package(body, styles=styles, numbering=NUMBERING))) == [
        ("Title", "1. Introduction", "1. Introduction"),
        ("Title", "1.1 Scope", "1.1 Scope"),
        ("ListItem", "a) first", "1.1 Scope"),
        ("ListItem", "b) second", "1.1 Scope"),
        ("ListItem", "IV. roman", "1.1 Scope"),
        ("Table", "in a cell | plain", "1.1 Scope"),  # cells show no label but count
        ("ListItem", "d) fourth", "1.1 Scope"),
        ("Title", "2. Methods", "2. Methods"),
        ("ListItem", "a) restarted", "2. Methods"),
        ("ListItem", "V. not restarted", "2. Methods"),
        ("ListItem", "bullet", "2. Methods"),
        ("ListItem", "5. from five", "2. Methods"),
        ("NarrativeText", "numbering off", "2. Methods"),
    ]


# ------------------------------------------------------------------ tables


def test_table_rows_and_cells() -> None:
    document = docx.Document()
    document.add_paragraph("Stock:")
    table = document.add_table(rows=3, cols=3)
    for i, row in enumerate([["Name", "Qty", "Note"], ["Apple", "3", ""], ["", "", ""]]):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    table.cell(0, 2).add_paragraph("(kg)")
    document.add_table(rows=2, cols=2)  # empty: no piece
    document.add_paragraph("After.")
    pieces = read_docx(_saved(document))
    assert shape(pieces) == [
        ("NarrativeText", "Stock:", None),
        ("Table", "Name | Qty | Note (kg)\nApple | 3", None),
        ("NarrativeText", "After.", None),
    ]


def test_merged_and_nested_cells() -> None:
    nested = _table([_cell(_p("inner 1")), _cell(_p("inner 2"))])
    body = _table(
        [_cell(_p("Region"), merge='<w:vMerge w:val="restart"/>'), _cell(_p("North"))],
        [_cell(merge="<w:vMerge/>"), _cell(_p("South"), nested)],
    )
    assert texts(read_docx(_package(body))) == ["Region | North\n | South inner 1 inner 2"]


# ------------------------------------------------------------------ page numbers


def test_no_page_breaks_means_no_page_numbers() -> None:
    pieces = read_docx(_package(_p("One.") + _p("Two.")))
    assert _pages(pieces) == [("One.", None), ("Two.", None)]


def test_explicit_page_breaks_number_pages() -> None:
    document = docx.Document()
    document.add_heading("Page one", level=1)
    document.add_paragraph("First page text.")
    document.add_page_break()
    document.add_paragraph("Second page text.")
    paragraph = document.add_paragraph("Before a mid-paragraph break ")
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    paragraph.add_run("and after it.")
    assert _pages(read_docx(_saved(document))) == [
        ("Page one", 1),
        ("First page text.", 1),
        ("Second page text.", 2),
        ("Before a mid-paragraph break", 2),
        ("and after it.", 3),
    ]


def _section_end(kind: str) -> str:
    return _p(ppr=f'<w:sectPr><w:type w:val="{kind}"/></w:sectPr>')


def test_page_break_before_and_section_breaks_need_text_on_the_page() -> None:
    # A section's `w:type` says how that section starts; the first one's does not count.
    body = (
        _p("One.")
        + _p("Two.", ppr="<w:pageBreakBefore/>")
        + _p(runs='<w:r><w:br w:type="page"/></w:r>')
        + _p("Three.", ppr="<w:pageBreakBefore/>")  # already at the top of page 3
        + _section_end("nextPage")
        + _p("Four.")
        + _section_end("nextPage")
        + _p("Still four.")
        + _section_end("continuous")
        + _p("Six.")
        + '<w:sectPr><w:type w:val="evenPage"/></w:sectPr>'
    )
    # The last section starts on an even page: after page 4 comes 5, left blank.
    assert _pages(read_docx(_package(body))) == [
        ("One.", 1),
        ("Two.", 2),
        ("Three.", 3),
        ("Four.", 4),
        ("Still four.", 4),
        ("Six.", 6),
    ]


def test_rendered_page_breaks_split_paragraphs_and_ignore_hard_breaks() -> None:
    body = (
        _p("Chapter", style="Heading1")
        + _p(
            "Before the break ",
            runs="<w:r><w:lastRenderedPageBreak/><w:t>after the break.</w:t></w:r>",
        )
        + _p(runs='<w:r><w:br w:type="page"/></w:r>')
        + _p(runs="<w:r><w:lastRenderedPageBreak/><w:t>Page three.</w:t></w:r>")
    )
    assert _pages(read_docx(_package(body))) == [
        ("Chapter", 1),
        ("Before the break", 1),
        ("after the break.", 2),
        ("Page three.", 3),
    ]


def test_table_rows_with_breaks_advance_the_page() -> None:
    broken = "<w:p><w:r><w:lastRenderedPageBreak/><w:t>{}</w:t></w:r></w:p>"
    body = (
        _p("Start.")
        + _table(
            [_cell(_p("r1a")), _cell(_p("r1b"))],
            [_cell(broken.format("r2a")), _cell(broken.format("r2b"))],
        )
        + _p("After the table.")
    )
    assert _pages(read_docx(_package(body))) == [
        ("Start.", 1),
        ("r1a | r1b\nr2a | r2b", 1),
        ("After the table.", 2),
    ]


# ------------------------------------------------------------------ headers and footers


def test_headers_and_footers_per_section() -> None:
    first_section = (
        '<w:sectPr><w:headerReference w:type="default" r:id="hdr1"/>'
        '<w:footerReference w:type="default" r:id="ftr1"/></w:sectPr>'
    )
    last_section = (
        '<w:sectPr><w:headerReference w:type="default" r:id="hdr2"/>'
        '<w:headerReference w:type="first" r:id="hdr3"/>'
        '<w:headerReference w:type="even" r:id="hdr4"/><w:titlePg/></w:sectPr>'
    )
    body = (
        _p("Part one", style="Heading1")
        + _p("First section.", ppr=first_section)
        + _p("Second section.")
        + last_section
    )
    parts = {
        "hdr1": _p("ACME Corp") + _p("Confidential"),
        "ftr1": _table([_cell(_p("Page")), _cell(_p("1"))]),
        "hdr2": _p("Second header"),
        "hdr3": _p("First page header"),
        "hdr4": _p("Even header"),  # not used: settings do not enable even pages
    }
    styles = _styles(_style("Heading1", "heading 1"))
    pieces = read_docx(_package(body, styles=styles, parts=parts))
    # The second section starts on a new page (no `w:type`: "nextPage"), so pages are
    # counted; headers and footers repeat on every page of their section: no number.
    assert [(p.metadata["category"], p.text, p.metadata["page_number"]) for p in pieces] == [
        ("Header", "ACME Corp\nConfidential", None),
        ("Title", "Part one", 1),
        ("NarrativeText", "First section.", 1),
        ("Footer", "Page | 1", None),
        ("Header", "Second header", None),
        ("Header", "First page header", None),
        ("NarrativeText", "Second section.", 2),
    ]
    settings = f"<w:settings {NS}><w:evenAndOddHeaders/></w:settings>"
    with_even = read_docx(_package(body, styles=styles, parts=parts, settings=settings))
    assert "Even header" in texts(with_even)


def test_a_section_linked_to_the_previous_header_does_not_repeat_it() -> None:
    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Running head"
    document.sections[0].footer.paragraphs[0].text = "Running foot"
    document.add_paragraph("One.")
    document.add_section()
    document.add_paragraph("Two.")
    pieces = read_docx(_saved(document))
    assert [(p.metadata["category"], p.text) for p in pieces] == [
        ("Header", "Running head"),
        ("NarrativeText", "One."),
        ("Footer", "Running foot"),  # the first section ends here
        ("NarrativeText", "Two."),  # the second has no references: linked, not repeated
    ]


def test_section_breaks_inside_content_controls_count_and_those_in_tables_do_not() -> None:
    ends_first = '<w:sectPr><w:footerReference w:type="default" r:id="ftr1"/></w:sectPr>'
    stray = '<w:sectPr><w:footerReference w:type="default" r:id="ftr2"/></w:sectPr>'
    body = (
        "<w:sdt><w:sdtPr/><w:sdtContent>"
        + _p("Cover.", ppr=ends_first)
        + "</w:sdtContent></w:sdt>"
        + _table([_cell(_p("In a table.", ppr=stray))])
        + _p("Body.")
        + '<w:sectPr><w:type w:val="continuous"/>'
        '<w:footerReference w:type="default" r:id="ftr3"/></w:sectPr>'
    )
    parts = {"ftr1": _p("Cover footer"), "ftr2": _p("Never"), "ftr3": _p("Body footer")}
    assert texts(read_docx(_package(body, parts=parts))) == [
        "Cover.",
        "Cover footer",
        "In a table.",
        "Body.",
        "Body footer",
    ]


# ------------------------------------------------------------------ broken packages


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 truncated", "not a ZIP package"),
        (b"\x00" * 100, "not a ZIP package"),
    ],
)
def test_corrupt_zip_is_a_format_error(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=f"not a valid Word document \\({reason}"):
        read_docx(data)


def test_truncated_docx_is_a_format_error() -> None:
    data = _saved(docx.Document())
    with pytest.raises(FormatError, match="not a valid Word document"):
        read_docx(data[: len(data) // 2])


def test_zip_without_document_xml_is_a_format_error() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("content.xml", "<office:document-content/>")
    with pytest.raises(FormatError) as error:
        read_docx(out.getvalue())
    assert str(error.value) == "not a valid Word document (the package has no word/document.xml)"


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<w:document><w:body>", "word/document.xml: "),
        (
            '<!DOCTYPE d [<!ENTITY a "aaaa">]><w:document xmlns:w="' + W_NS + '"/>',
            "declares a DTD",
        ),
        ("<html><body>not word</body></html>", "holds 'html', not a document"),
        (
            '<w:document xmlns:w="http://purl.oclc.org/ooxml/wordprocessingml/main"/>',
            "Strict Open XML is not supported",
        ),
    ],
)
def test_unreadable_document_xml_is_a_format_error(xml: str, reason: str) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", xml)
    with pytest.raises(FormatError, match="not a valid Word document") as error:
        read_docx(out.getvalue())
    assert reason in str(error.value)


def test_broken_auxiliary_parts_are_ignored() -> None:
    body = _numbered("item", "1") + _p("Heading?", style="Heading1")
    pieces = read_docx(_package(body, styles="<w:styles", numbering="not xml"))
    assert shape(pieces) == [("ListItem", "item", None), ("NarrativeText", "Heading?", None)]


# ------------------------------------------------------------------ hostile input


def test_style_cycles_and_deep_chains_terminate() -> None:
    chain = [_style(f"S{i}", f"custom {i}", f"S{i + 1}") for i in range(3000)]
    chain.append(_style("S3000", "custom end", "S0"))  # back to the start: a cycle
    chain.append(_style("H", "plain name", "S1500", '<w:outlineLvl w:val="0"/>'))
    body = "".join(_p(f"p{i}", style=f"S{i}") for i in range(0, 3001, 100)) + _p("h", style="H")
    started = time.perf_counter()
    pieces = read_docx(_package(body, styles=_styles(*chain)))
    assert time.perf_counter() - started < HOSTILE_BOUND_S
    assert len(pieces) == 32
    assert pieces[-1].metadata["category"] == "Title"


def test_large_styles_part_is_cut_without_changing_what_is_read() -> None:
    template = zipfile.ZipFile(io.BytesIO(_saved(docx.Document()))).read("word/styles.xml")
    assert len(template) > docxread._STYLES_CUT_BYTES
    cut = docxread._paragraph_styles_xml(template)
    assert cut is not None and len(cut) < len(template) / 4
    cut_styles, cut_default = docxread._load_styles(template)
    full = docxread._parse_xml(template)
    paragraph_ids = {
        s.get(f"{{{W_NS}}}styleId")
        for s in full.iterfind(f"{{{W_NS}}}style")
        if s.get(f"{{{W_NS}}}type") == "paragraph"
    }
    assert set(cut_styles) == paragraph_ids and cut_default == "Normal"


# ------------------------------------------------------------------ against unstructured


@pytest.mark.slow
def test_bench_corpus_text_matches_unstructured() -> None:
    import io

    from unstructured.partition.docx import partition_docx

    from api.bench.corpus import make_documents
    from ingest import parse

    documents = [d for d in make_documents(90) if d.filename.endswith(".docx")]
    assert len(documents) >= 20
    parse._configure_unstructured()
    for document in documents:
        # unstructured as the parse stage called it before this reader replaced it.
        elements = partition_docx(file=io.BytesIO(document.data), languages=["eng"])
        theirs = parse._to_pieces(elements)
        ours = read_docx(document.data)
        assert normalised_text(ours) == normalised_text(theirs), document.filename
        # Same headings, sections and page numbers; only NLP categories of body text
        # ("UncategorizedText") differ.
        assert [(p.text, p.metadata["section"], p.metadata["page_number"]) for p in ours] == [
            (p.text, p.metadata["section"], p.metadata["page_number"]) for p in theirs
        ]
        assert [p.text for p in ours if p.metadata["category"] == "Title"] == [
            p.text for p in theirs if p.metadata["category"] == "Title"
        ]
