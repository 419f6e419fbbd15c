"""The rule-based HTML reader (ingest.htmlread): blocks, sections, lists, tables, code,
dropped elements, encodings, deep and hostile input, and the same text as unstructured
on the bench corpus."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from api.bench.corpus import make_documents
from core.types import Piece
from ingest import parse
from ingest.formats import FormatError
from ingest.htmlread import HTML_READER_VERSION, MAX_DEPTH, _TreeReader, read_html
from ingest.sniff import decode_text
from tests.utils.pieces import normalised_text, shape
from tests.utils.samples import build_corpus

pytestmark = pytest.mark.unit

# Guard only (the inputs below take well under a second); not a speed test.
HOSTILE_BOUND_S = 5.0


def _texts(html: str) -> list[str]:
    return [p.text for p in read_html(html)]


# ------------------------------------------------------------------ blocks and sections


def test_headings_set_sections() -> None:
    html = (
        "<p>Before any heading.</p>"
        "<h1>Honeybees</h1><p>A colony has one <b>queen</b>.</p>"
        "<h2>Foraging</h2><p>Workers carry nectar.</p>"
        "<h3>Swarming</h3><p>The old queen leaves.</p>"
        "<h2>  </h2><p>An empty heading changes nothing.</p>"
    )
    assert shape(read_html(html)) == [
        ("NarrativeText", "Before any heading.", None),
        ("Title", "Honeybees", "Honeybees"),
        ("NarrativeText", "A colony has one queen.", "Honeybees"),
        ("Title", "Foraging", "Foraging"),
        ("NarrativeText", "Workers carry nectar.", "Foraging"),
        ("Title", "Swarming", "Swarming"),
        ("NarrativeText", "The old queen leaves.", "Swarming"),
        ("NarrativeText", "An empty heading changes nothing.", "Swarming"),
    ]


def test_piece_metadata_contract() -> None:
    html = (
        "<h1>T</h1><p>text</p><ul><li>item</li></ul><pre>code</pre>"
        "<table><tr><td>cell</td></tr></table>"
    )
    pieces = read_html(html)
    assert [p.metadata["category"] for p in pieces] == [
        "Title",
        "NarrativeText",
        "ListItem",
        "CodeSnippet",
        "Table",
    ]
    for piece in pieces:
        assert piece.metadata == {
            "category": piece.metadata["category"],
            "page_number": None,
            "section": "T",
        }


def test_inline_elements_join_their_block() -> None:
    html = (
        '<p>Read <a href="/x">the <em>whole</em> guide</a>, run <code>make</code>, '
        "then H<sub>2</sub>O and <my-widget>custom</my-widget> <span>spans</span>.</p>"
    )
    assert _texts(html) == ["Read the whole guide, run make, then H2O and custom spans."]


def test_whitespace_is_collapsed() -> None:
    html = "<p>\n   one\t\ttwo\n\n three&nbsp;&nbsp;four\u2003five  </p>"
    assert _texts(html) == ["one two three four five"]


def test_text_around_child_blocks_is_kept() -> None:
    html = "<div>intro <p>para</p> tail <b>bold</b></div><section>aa <div>bb</div> c d</section>"
    assert _texts(html) == ["intro", "para", "tail bold", "aa", "bb", "c d"]


def test_block_inside_inline_element_is_its_own_piece() -> None:
    html = '<a href="/post"><div><h3>Card title</h3><p>Card text.</p></div></a> after'
    assert shape(read_html(html)) == [
        ("Title", "Card title", "Card title"),
        ("NarrativeText", "Card text.", "Card title"),
        ("NarrativeText", "after", "Card title"),
    ]


def test_br_is_a_line_break_except_in_headings() -> None:
    html = "<h2>Part<br>two</h2><p>first line<br>  second line<br><br>third</p>"
    assert shape(read_html(html)) == [
        ("Title", "Part two", "Part two"),
        ("NarrativeText", "first line\nsecond line\nthird", "Part two"),
    ]


def test_bullet_paragraphs_and_single_characters() -> None:
    html = "<p>• first point</p><p>- second point</p><p>-5 degrees</p><p>|</p><p>•</p><p>ok</p>"
    assert shape(read_html(html)) == [
        ("ListItem", "first point", None),
        ("ListItem", "second point", None),
        ("NarrativeText", "-5 degrees", None),
        ("NarrativeText", "ok", None),
    ]


def test_only_main_is_read_when_there_is_one() -> None:
    html = (
        "<body><header><h1>Site name</h1></header>"
        "<main><h2>Article</h2><p>Body text.</p></main>"
        "<footer>Copyright</footer></body>"
    )
    assert shape(read_html(html)) == [
        ("Title", "Article", "Article"),
        ("NarrativeText", "Body text.", "Article"),
    ]


# ------------------------------------------------------------------ lists


def test_nested_lists() -> None:
    html = (
        "<h2>Tasks</h2><ul>"
        "<li>first</li>"
        "<li>parent<ul><li>child <em>one</em></li><li>child two</li></ul>after the child list</li>"
        "<li><p>loose item</p></li>"
        "</ul><ol><li>one</li><li>two</li></ol><p>After the list.</p>"
    )
    assert shape(read_html(html)) == [
        ("Title", "Tasks", "Tasks"),
        *[
            ("ListItem", text, "Tasks")
            for text in [
                "first",
                "parent",
                "child one",
                "child two",
                "after the child list",
                "loose item",
                "one",
                "two",
            ]
        ],
        ("NarrativeText", "After the list.", "Tasks"),
    ]


def test_definition_lists() -> None:
    html = "<dl><dt>Starter</dt><dd>A culture of flour and water.</dd></dl>"
    assert shape(read_html(html)) == [
        ("NarrativeText", "Starter", None),
        ("ListItem", "A culture of flour and water.", None),
    ]


# ------------------------------------------------------------------ tables


def test_table_rows_and_cells() -> None:
    html = (
        "<h2>Schedule</h2>"
        "<table><caption>Feeding  schedule</caption>"
        "<thead><tr><th>Day</th><th>Flour</th><th>Notes</th></tr></thead>"
        "<tbody>"
        "<tr><td>Monday</td><td>50 g</td><td>rye <b>only</b></td></tr>"
        "<tr><td>Wednesday</td><td></td><td>skip</td></tr>"
        "<tr><td>Friday</td><td>100 g</td><td></td></tr>"
        "<tr><td> </td><td></td></tr>"
        "<tr><td>Sunday</td><td>before<br>baking</td></tr>"
        "</tbody></table>"
        "<p>After the table.</p>"
    )
    assert shape(read_html(html)) == [
        ("Title", "Schedule", "Schedule"),
        (
            "Table",
            "Feeding schedule\n"
            "Day | Flour | Notes\n"
            "Monday | 50 g | rye only\n"
            "Wednesday |  | skip\n"
            "Friday | 100 g\n"
            "Sunday | before baking",
            "Schedule",
        ),
        ("NarrativeText", "After the table.", "Schedule"),
    ]


def test_blocks_and_tables_inside_a_cell_are_cell_text() -> None:
    html = (
        "<table><tr><td><p>one</p><p>two</p></td>"
        "<td><ul><li>a</li><li>b</li></ul></td>"
        "<td><table><tr><td>inner</td><td>table</td></tr></table></td></tr></table>"
    )
    assert _texts(html) == ["one two | a b | inner table"]


def test_table_without_cell_text_gives_nothing() -> None:
    html = "<table><caption>Only a caption</caption><tr><td> </td></tr></table><p>next</p>"
    assert _texts(html) == ["next"]


def test_table_inside_a_list_item() -> None:
    html = "<ul><li>item<table><tr><td>c1</td><td>c2</td></tr></table>more</li></ul>"
    assert shape(read_html(html)) == [
        ("ListItem", "item", None),
        ("Table", "c1 | c2", None),
        ("ListItem", "more", None),
    ]


# ------------------------------------------------------------------ code


def test_pre_is_kept_verbatim() -> None:
    html = (
        "<p>Config:</p><pre>\n\n  <code>interval = 7  # days</code>\n"
        "\tswarm = (&quot;May&quot;, &quot;June&quot;)\n"
        "<span class='k'>if</span> x &lt; 3:<br>    go()\n\n</pre><p>Done.</p>"
    )
    assert shape(read_html(html)) == [
        ("NarrativeText", "Config:", None),
        (
            "CodeSnippet",
            '  interval = 7  # days\n\tswarm = ("May", "June")\nif x < 3:\n    go()',
            None,
        ),
        ("NarrativeText", "Done.", None),
    ]


def test_blocks_inside_pre_are_lines() -> None:
    html = "<pre><div>line one</div><div>line two</div>tail</pre>"
    assert shape(read_html(html)) == [("CodeSnippet", "line one\nline two\ntail", None)]


# ------------------------------------------------------------------ dropped


def test_dropped_elements_keep_the_text_after_them() -> None:
    html = (
        "<html><head><title>Page title</title><style>p { color: red }</style>"
        "<script>var x = '<p>not text</p>';</script></head><body>"
        "<nav><ul><li><a href='/'>Home</a></li><li>About</li></ul></nav>"
        "<p>A<script>alert(1)</script> B<style>.x{}</style> C<!-- note --> D<?php echo 1; ?> E"
        "<noscript>Enable JavaScript</noscript> F<template><p>template</p></template> G"
        "<del>deleted</del> H<svg><text>drawing</text></svg> I<iframe>fallback</iframe> J</p>"
        "<form><label for=q>Search</label><input type=hidden name=t value=secret>"
        "<input name=q><select><option>everywhere</option></select>"
        "<textarea>typed</textarea><button>Go</button><p>Form text stays.</p></form>"
        "<figure><img src=a.png alt='alt text'><figcaption>A caption.</figcaption></figure>"
        "</body></html>"
    )
    assert _texts(html) == ["A B C D E F G H I J", "Form text stays.", "A caption."]


def test_title_alone_gives_no_pieces() -> None:
    assert read_html("<html><head><title>Only a title</title></head><body> </body></html>") == []


@pytest.mark.parametrize(
    "html",
    [
        "",
        "  \n\t ",
        "<html></html>",
        "<!-- just a comment -->",
        "<html><body><p> &nbsp; </p><div></div></body></html>",
        "<script>document.write('x')</script><style>p{}</style>",
        "<p>x</p>",  # a single character is not a paragraph
    ],
    ids=["empty", "blank", "no-body", "comment", "blank-blocks", "script-only", "one-char"],
)
def test_page_without_text_gives_no_pieces(html: str) -> None:
    assert read_html(html) == []


def test_math_reads_its_tex_and_katex_visuals_are_skipped() -> None:
    formula = (
        '<math><semantics><mrow><mi>x</mi></mrow><annotation encoding="application/x-tex">'
        "x^2</annotation></semantics></math>"
    )
    html = (
        f"<p>Plain {formula} and alt <math alttext='y_1'><mi>y</mi></math> end.</p>"
        '<p>KaTeX <span class="katex"><span class="katex-mathml">'
        f'{formula}</span><span class="katex-html" aria-hidden="true">'
        "<span>x</span><span>2</span></span></span> done.</p>"
        f'<math display="block" alttext="E=mc^2"><mi>E</mi></math>'
    )
    assert _texts(html) == ["Plain x^2 and alt y_1 end.", "KaTeX x^2 done.", "E=mc^2"]


# ------------------------------------------------------------------ input forms


def test_xhtml_with_namespace_and_encoding_declaration() -> None:
    # The declared encodings are wrong for the text: the caller already decoded it.
    html = (
        '<?xml version="1.0" encoding="windows-1251"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="ru">'
        '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251" />'
        "<title>Маяки</title></head>"
        "<body><h1>Маяки Балтики</h1><p>Линза Френеля<br />видна за 20 миль.</p></body></html>"
    )
    assert shape(read_html(html)) == [
        ("Title", "Маяки Балтики", "Маяки Балтики"),
        ("NarrativeText", "Линза Френеля\nвидна за 20 миль.", "Маяки Балтики"),
    ]


def test_meta_charset_and_bom_do_not_redecode() -> None:
    html = '\ufeff<html><head><meta charset="iso-8859-1"></head><body><p>Año, señor</p></body>'
    assert _texts(html) == ["Año, señor"]


def test_fragment_without_html_or_body() -> None:
    html = (
        "<h2>Release notes</h2>\nVersion 2.3 fixes <a href='#'>three bugs</a>.\n"
        "<ul><li>x1</li></ul>"
    )
    assert shape(read_html(html)) == [
        ("Title", "Release notes", "Release notes"),
        ("NarrativeText", "Version 2.3 fixes three bugs.", "Release notes"),
        ("ListItem", "x1", "Release notes"),
    ]


def test_character_references() -> None:
    html = (
        "<p>&lt;tag&gt; &amp;amp; &copy; &eacute;t&eacute; &#8364;5 &#x1F41D; "
        "&mdash; &unknown; AT&T</p>"
    )
    assert _texts(html) == ["<tag> &amp; © été €5 🐝 — &unknown; AT&T"]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            "<h1>Пчёлы</h1><p>В семье одна <b>матка</b> и тысячи рабочих пчёл.</p>"
            "<ul><li>Нектар</li><li>Пыльца</li></ul>",
            [
                ("Title", "Пчёлы", "Пчёлы"),
                ("NarrativeText", "В семье одна матка и тысячи рабочих пчёл.", "Пчёлы"),
                ("ListItem", "Нектар", "Пчёлы"),
                ("ListItem", "Пыльца", "Пчёлы"),
            ],
        ),
        (
            "<h1>Masa madre</h1><p>Aliméntela cada 12&nbsp;horas: ¿harina de centeno? "
            "¡Sí!</p><table><tr><th>Día</th><th>Año</th></tr><tr><td>Miércoles</td>"
            "<td>2024</td></tr></table>",
            [
                ("Title", "Masa madre", "Masa madre"),
                (
                    "NarrativeText",
                    "Aliméntela cada 12 horas: ¿harina de centeno? ¡Sí!",
                    "Masa madre",
                ),
                ("Table", "Día | Año\nMiércoles | 2024", "Masa madre"),
            ],
        ),
    ],
    ids=["ru", "es"],
)
def test_cyrillic_and_spanish(html: str, expected: list[tuple[str, str, str]]) -> None:
    assert shape(read_html(html)) == expected


def test_lone_surrogate_does_not_fail() -> None:
    assert _texts("<p>a \ud800 b</p>") == ["a ? b"]


# ------------------------------------------------------------------ deep and hostile


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 5000 + "deep text" + "</div>" * 5000,
        "<ul><li>item" * 5000,
        "<b><i>unclosed inline tags " * 5000,
    ],
    ids=["divs", "lists", "inline"],
)
def test_5000_deep_page_is_refused_quickly(html: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FormatError, match=f"more than {MAX_DEPTH} elements deep"):
        read_html(html)
    assert time.perf_counter() - started < 2.0


def test_page_nested_to_the_parser_limit_is_read() -> None:
    depth = MAX_DEPTH - 10
    html = "<div>" * depth + "deep <b>text</b>" + "</div>" * depth + "<p>after</p>"
    started = time.perf_counter()
    assert _texts(html) == ["deep text", "after"]
    assert time.perf_counter() - started < 2.0


def test_tree_walk_does_not_recurse() -> None:
    """A tree deeper than Python's recursion limit (built directly: libxml2 stops at
    MAX_DEPTH) is read in full."""
    depth = 5000
    assert depth > sys.getrecursionlimit()
    root = etree.Element("body")
    element = root
    for level in range(depth):
        # A block with an inline element in it: each block ends the previous piece.
        element = etree.SubElement(element, "span" if level % 2 else "div")
        element.text = f"w{level}"
    started = time.perf_counter()
    pieces = _TreeReader(set()).read(root)
    assert time.perf_counter() - started < 2.0
    assert [p.text for p in pieces] == [f"w{level}w{level + 1}" for level in range(0, depth, 2)]


HOSTILE = {
    "inline-elements": lambda: "<p>" + "<b>x</b> " * 200_000 + "</p>",
    "line-breaks": lambda: "<p>" + "a<br>" * 200_000 + "</p>",
    "paragraphs": lambda: "<p>some words</p>" * 100_000,
    "table-cells": lambda: "<table>" + ("<tr>" + "<td>c</td>" * 100 + "</tr>") * 1000,
    "unclosed-paragraphs": lambda: "<p>x <b>y" * 100_000,
    "unclosed-items": lambda: "<ul>" + "<li>item" * 100_000,
    "katex": lambda: (
        (
            '<span class="katex"><span class="katex-mathml"><math alttext="x"></math></span>'
            '<span class="katex-html">x</span></span> '
        )
        * 20_000
    ),
}


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_html_reads_fast(build) -> None:
    html = build()
    started = time.perf_counter()
    pieces = read_html(html)
    assert time.perf_counter() - started < HOSTILE_BOUND_S
    assert pieces
    assert all(p.text and p.text == p.text.strip() for p in pieces)


# ------------------------------------------------------------------ against unstructured


def _unstructured_pieces(text: str) -> list[Piece]:
    """unstructured's `partition_html` as the parse stage calls it, directly, so the
    comparison still holds when the stage itself reads HTML with htmlread."""
    from unstructured.partition.html import partition_html

    parse._configure_unstructured()
    return parse._to_pieces(partition_html(text=text, languages=["eng"]))


@pytest.mark.slow  # loads unstructured and spaCy, builds the whole bench corpus
def test_same_text_as_unstructured_on_the_bench_corpus() -> None:
    docs = [d for d in make_documents(90) if d.filename.endswith(".html")]
    assert len(docs) >= 15
    for doc in docs:
        text = decode_text(doc.data)
        ours = read_html(text)
        theirs = _unstructured_pieces(text)
        assert normalised_text(ours) == normalised_text(theirs), doc.filename
        assert normalised_text(ours) == " ".join(" ".join((doc.title, *doc.paragraphs)).split())
        assert [p.text for p in ours] == [p.text for p in theirs], doc.filename
        titles = [
            (p.text, p.metadata["section"]) for p in ours if p.metadata["category"] == "Title"
        ]
        assert titles == [
            (p.text, p.metadata["section"]) for p in theirs if p.metadata["category"] == "Title"
        ]
        assert [p.metadata["section"] for p in ours] == [p.metadata["section"] for p in theirs]


def test_same_pieces_as_unstructured_on_the_sample_page(tmp_path: Path) -> None:
    (page,) = [path for path in build_corpus(tmp_path) if path.suffix == ".html"]
    text = page.read_text("utf-8")
    pieces = read_html(text)
    assert len(pieces) == 10
    assert shape(pieces) == shape(_unstructured_pieces(text))


def test_reader_version() -> None:
    assert HTML_READER_VERSION == "1"
