"""The rule-based plain-text and Markdown readers (ingest.textread) and their hook in the
parse stage: structure, sections, inline markup, Unicode, hostile input."""

from __future__ import annotations

import random
import time
import unicodedata

import pytest

from ingest import parse
from ingest.parse import UnstructuredParser
from ingest.sniff import MARKDOWN, RTF, TEXT
from ingest.textread import READER_VERSION, read_markdown, read_plain_text
from tests.utils.corpus import make_rtf
from tests.utils.pieces import shape, texts

pytestmark = pytest.mark.unit

# Guard only (the inputs below take well under a second); not a speed test.
HOSTILE_BOUND_S = 5.0


# ------------------------------------------------------------------ Markdown


def test_atx_headings_set_sections() -> None:
    md = (
        "# Honeybees\n\nA colony has one queen.\n\n## Foraging ##\n\n"
        "Workers carry nectar.\n\n### Swarming #\nThe old queen leaves.\n"
    )
    assert shape(read_markdown(md)) == [
        ("Title", "Honeybees", "Honeybees"),
        ("NarrativeText", "A colony has one queen.", "Honeybees"),
        ("Title", "Foraging", "Foraging"),
        ("NarrativeText", "Workers carry nectar.", "Foraging"),
        ("Title", "Swarming", "Swarming"),
        ("NarrativeText", "The old queen leaves.", "Swarming"),
    ]


def test_text_before_the_first_heading_has_no_section() -> None:
    pieces = read_markdown("Intro text.\n\n# Later\n\nBody.")
    assert pieces[0].metadata == {"category": "NarrativeText", "page_number": None, "section": None}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("# Foo#", "Foo#"),  # a closing sequence needs a space before it
        ("#   spaced   #####", "spaced"),
        ("# *Styled* `heading`", "Styled heading"),
    ],
)
def test_atx_heading_text(line: str, expected: str) -> None:
    assert shape(read_markdown(line + "\n\nBody.")) == [
        ("Title", expected, expected),
        ("NarrativeText", "Body.", expected),
    ]


@pytest.mark.parametrize("line", ["#hashtag", "####### seven", "\\# escaped"])
def test_not_an_atx_heading(line: str) -> None:
    assert [p.metadata["category"] for p in read_markdown(line)] == ["NarrativeText"]


def test_setext_headings() -> None:
    md = "Main title\n==========\n\nFirst paragraph.\n\nA sub\nheading\n---\n\nSecond paragraph.\n"
    assert shape(read_markdown(md)) == [
        ("Title", "Main title", "Main title"),
        ("NarrativeText", "First paragraph.", "Main title"),
        ("Title", "A sub heading", "A sub heading"),
        ("NarrativeText", "Second paragraph.", "A sub heading"),
    ]


def test_paragraph_lines_are_joined() -> None:
    md = (
        "A colony has one queen\nand thousands of workers  \n"  # two spaces: a hard break
        "that share the labour\\\nof the hive.\n"  # so is a trailing backslash
    )
    assert texts(read_markdown(md)) == [
        "A colony has one queen and thousands of workers that share the labour of the hive."
    ]


def test_lists_nested_and_numbered() -> None:
    md = (
        "# Tasks\n\n"
        "- first\n"
        "  - nested *one*\n"
        "    - deeper\n"
        "- second item that\n  wraps\n"
        "* star\n"
        "+ plus\n"
        "\n"
        "1. one\n"
        "2) two\n"
        "   10. nested numbered\n"
        "- [x] done\n"
        "- [ ] open\n"
    )
    assert shape(read_markdown(md)) == [
        ("Title", "Tasks", "Tasks"),
        *[
            ("ListItem", text, "Tasks")
            for text in [
                "first",
                "nested one",
                "deeper",
                "second item that wraps",
                "star",
                "plus",
                "one",
                "two",
                "nested numbered",
                "done",
                "open",
            ]
        ],
    ]


def test_list_item_with_a_second_paragraph_stays_one_piece() -> None:
    md = "- item\n\n  more about the item\n- next\n\nAfter the list.\n"
    assert shape(read_markdown(md)) == [
        ("ListItem", "item\nmore about the item", None),
        ("ListItem", "next", None),
        ("NarrativeText", "After the list.", None),
    ]


def test_list_interrupting_a_paragraph() -> None:
    """As in CommonMark: a bullet or a list starting at 1 interrupts a paragraph, any
    other number is hard-wrapped text ("born in\\n1984. He ...")."""
    pieces = read_markdown("Steps:\n1. open\n\nBorn in\n1984. He moved.\n\nItems:\n- a\n")
    assert shape(pieces) == [
        ("NarrativeText", "Steps:", None),
        ("ListItem", "open", None),
        ("NarrativeText", "Born in 1984. He moved.", None),
        ("NarrativeText", "Items:", None),
        ("ListItem", "a", None),
    ]


def test_code_fences_are_kept_verbatim() -> None:
    code = 'def f(x):\n    # not a heading\n    return x * 2  # *not* emphasis\n\n\tprint("[a](b)")'
    md = f"# Code\n\n```python\n{code}\n```\n\n~~~\n- not a list\n> not a quote\n~~~~\n\nAfter.\n"
    assert shape(read_markdown(md)) == [
        ("Title", "Code", "Code"),
        ("CodeSnippet", code, "Code"),
        ("CodeSnippet", "- not a list\n> not a quote", "Code"),
        ("NarrativeText", "After.", "Code"),
    ]


def test_code_fence_inside_a_list_and_unclosed_fence() -> None:
    md = "- item\n  ```\n  code\n    more\n  ```\n- next\n\n```\nruns to the end\n# still code"
    assert shape(read_markdown(md)) == [
        ("ListItem", "item", None),
        ("CodeSnippet", "code\n  more", None),
        ("ListItem", "next", None),
        ("CodeSnippet", "runs to the end\n# still code", None),
    ]


def test_indented_code_block() -> None:
    md = "Text.\n\n    indented code\n      keeps its shape\n\nMore text.\n"
    assert shape(read_markdown(md)) == [
        ("NarrativeText", "Text.", None),
        ("CodeSnippet", "indented code\n  keeps its shape", None),
        ("NarrativeText", "More text.", None),
    ]


def test_tables() -> None:
    md = (
        "## Prices\n\n"
        "| Region | Product | Amount |\n"
        "|:-------|:-------:|-------:|\n"
        "| North | **Raw** honey | 1200 |\n"
        "| South | [Wax](http://x) | `a\\|b` |\n"
        "\n"
        "Name | Value\n"
        "--- | ---\n"
        "a | 1\n"
    )
    assert shape(read_markdown(md)) == [
        ("Title", "Prices", "Prices"),
        (
            "Table",
            "Region | Product | Amount\nNorth | Raw honey | 1200\nSouth | Wax | a|b",
            "Prices",
        ),
        ("Table", "Name | Value\na | 1", "Prices"),
    ]


def test_pipe_without_delimiter_row_is_text() -> None:
    assert shape(read_markdown("a | b\nc | d\n")) == [("NarrativeText", "a | b c | d", None)]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __strong__", "bold and strong"),
        ("*italic* and _emphasis_", "italic and emphasis"),
        ("***both*** and **bold *nested* text**", "both and bold nested text"),
        ("`code` and ``a ` tick``", "code and a ` tick"),
        ("`**not bold**` inside code", "**not bold** inside code"),
        ("[link text](https://example.com/a_(b)) here", "link text here"),
        ('[titled](https://example.com "Title") link', "titled link"),
        ("![alt text](img.png) image", "alt text image"),
        ("[![badge](b.svg)](https://ci)", "badge"),
        (
            "see <https://example.com/x?a=b> or <ann@example.com>",
            "see https://example.com/x?a=b or ann@example.com",
        ),
        ('<span class="x">inline</span> <b>html</b><br/>next', "inline html next"),
        ("a <!-- hidden --> b", "a b"),
        ("\\*not emphasis\\* and \\[not a link\\]", "*not emphasis* and [not a link]"),
        ("&amp; &lt;tag&gt; &#1055; &copy;", "& <tag> П ©"),
        ("snake_case_name and __init__.py", "snake_case_name and init.py"),
        ("2 * 3 * 4 and a*b", "2 * 3 * 4 and a*b"),
        ("List<T> and Map<K, V>", "List<T> and Map<K, V>"),
        ("[unmatched and (parens)", "[unmatched and (parens)"),
        ("*unclosed emphasis", "*unclosed emphasis"),
        (
            "[full][ref] and [collapsed][] and [short] and [none]",
            "full and collapsed and short and [none]",
        ),
    ],
)
def test_inline_markup_is_stripped(markdown: str, expected: str) -> None:
    md = f"{markdown}\n\n[ref]: https://example.com\n[Short]: /s\n[collapsed]: /c\n"
    assert texts(read_markdown(md)) == [expected]


def test_front_matter_is_dropped() -> None:
    md = "---\ntitle: Bees\ntags: [a, b]\n---\n# Honeybees\n\nBody.\n"
    assert texts(read_markdown(md)) == ["Honeybees", "Body."]


def test_rule_at_the_top_without_a_closing_one_is_not_front_matter() -> None:
    assert texts(read_markdown("---\nJust text.\n")) == ["Just text."]


def test_block_quotes() -> None:
    md = "> A quoted\n> paragraph.\n>\n> > Nested quote\nlazy line.\n\n> # Quoted heading\n"
    assert shape(read_markdown(md)) == [
        ("NarrativeText", "A quoted paragraph.", None),
        ("NarrativeText", "Nested quote lazy line.", None),
        ("NarrativeText", "Quoted heading", None),
    ]


def test_rules_comments_and_definitions_are_dropped() -> None:
    md = (
        "Before.\n\n***\n- - -\n___\n\n<!-- a comment\nover lines -->\n\n"
        "<!-- one line -->\n\n[ref]: https://example.com\n\nAfter [ref].\n"
    )
    assert texts(read_markdown(md)) == ["Before.", "After ref."]


def test_html_only_blocks_leave_nothing() -> None:
    md = '<div align="center">\n<img src="logo.png">\n</div>\n\nText.\n'
    assert texts(read_markdown(md)) == ["Text."]


def test_crlf_and_bom() -> None:
    md = "\ufeff# Title\r\n\r\nLine one\r\nline two\r\n"
    assert shape(read_markdown(md)) == [
        ("Title", "Title", "Title"),
        ("NarrativeText", "Line one line two", "Title"),
    ]


# ------------------------------------------------------------------ plain text


def test_plain_paragraphs_titles_and_list_items() -> None:
    text = (
        "Honeybees\n\n"
        "A colony has one queen and\nthousands of workers that share the labour.\n"
        "- first item\n  continues here\n"
        "• second item\n"
        "1. numbered one\n"
        "2) numbered two\n\n"
        "Foraging\n\n"
        "Workers visit flowers.\n"
    )
    assert shape(read_plain_text(text)) == [
        ("Title", "Honeybees", "Honeybees"),
        (
            "NarrativeText",
            "A colony has one queen and thousands of workers that share the labour.",
            "Honeybees",
        ),
        ("ListItem", "first item continues here", "Honeybees"),
        ("ListItem", "second item", "Honeybees"),
        ("ListItem", "1. numbered one", "Honeybees"),
        ("ListItem", "2) numbered two", "Honeybees"),
        ("Title", "Foraging", "Foraging"),
        ("NarrativeText", "Workers visit flowers.", "Foraging"),
    ]


@pytest.mark.parametrize(
    ("line", "is_title"),
    [
        ("Introduction", True),
        ("Chapter 2: the long winter", True),  # the colon is inside, not at the end
        ("Results for Q3 2024", True),
        ("Пчёлы и их жизнь", True),
        ("Сбор нектара", True),
        ("La vida de las abejas", True),
        ("This line is short.", False),
        ("¿Dónde están las abejas?", False),
        ('He said "stop."', False),  # the full stop counts past the closing quote
        ("Ingredients:", False),
        ("Dear John,", False),
        ("1. Introduction", False),  # a list item
        ("- bullet", False),
        ("2024", False),  # no letter
        ("one two three four five six seven eight nine ten eleven twelve", True),
        ("one two three four five six seven eight nine ten eleven twelve thirteen", False),
    ],
)
def test_plain_title_rule(line: str, is_title: bool) -> None:
    pieces = read_plain_text(f"{line}\n\nA paragraph follows here.\n")
    assert (pieces[0].metadata["category"] == "Title") is is_title
    assert pieces[1].metadata["section"] == (line if is_title else None)


def test_plain_title_needs_a_paragraph_of_its_own_and_text_after_it() -> None:
    # Last line of the file, and a heading line glued to its paragraph: not titles.
    pieces = read_plain_text("Introduction\nThe text starts at once.\n\nThe end\n")
    assert shape(pieces) == [
        ("NarrativeText", "Introduction The text starts at once.", None),
        ("NarrativeText", "The end", None),
    ]


def test_plain_underlines_and_separators_end_paragraphs() -> None:
    text = "Title\n=====\nBody text.\n\n* * *\n\nMore text.\n-----\n"
    assert shape(read_plain_text(text)) == [
        ("Title", "Title", "Title"),
        ("NarrativeText", "Body text.", "Title"),
        ("NarrativeText", "More text.", "Title"),
    ]


def test_plain_text_keeps_markup_characters() -> None:
    text = "Use **stars** and [brackets](here) as typed.\n\n— Dialogue line, said she.\n"
    assert shape(read_plain_text(text)) == [
        ("NarrativeText", "Use **stars** and [brackets](here) as typed.", None),
        ("NarrativeText", "— Dialogue line, said she.", None),
    ]


# ------------------------------------------------------------------ both


ES = "La colmena guarda miel de azahar; ¿quién cuida a la reina? Las obreras, ¡claro!"
RU = "В семье одна матка и тысячи рабочих пчёл. Ёжик, йод и «ёлка» — без изменений."


@pytest.mark.parametrize("read", [read_plain_text, read_markdown])
@pytest.mark.parametrize("sentence", [ES, RU], ids=["es", "ru"])
def test_spanish_and_russian_come_through_unchanged(read, sentence: str) -> None:
    pieces = read(f"{sentence}\n\n{sentence}\n")
    assert texts(pieces) == [sentence, sentence]


@pytest.mark.parametrize("read", [read_plain_text, read_markdown])
def test_normalisation_form_is_kept(read) -> None:
    decomposed = unicodedata.normalize("NFD", "Canción de la abeja y ёлка.")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert texts(read(decomposed)) == [decomposed]


@pytest.mark.parametrize("read", [read_plain_text, read_markdown])
@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n", "\ufeff"])
def test_empty_input_gives_no_pieces(read, text: str) -> None:
    assert read(text) == []


@pytest.mark.parametrize("read", [read_plain_text, read_markdown])
def test_piece_metadata_contract(read) -> None:
    for piece in read("Heading\n\nSome text.\n\n- item\n"):
        assert set(piece.metadata) == {"category", "page_number", "section"}
        assert piece.metadata["page_number"] is None
        assert piece.text == piece.text.strip()


# ------------------------------------------------------------------ hostile input

_MB = 1024 * 1024


def _random_line(alphabet: str, size: int = _MB) -> str:
    return "".join(random.Random(0).choices(alphabet, k=size))


HOSTILE = {
    "stars-and-brackets": lambda: _random_line("*["),
    "stars-brackets-closers": lambda: _random_line("*[]()_`<>!\\&"),
    "alternating-star-bracket": lambda: "*[" * (_MB // 2),
    "unclosed-links": lambda: "[a](" * (_MB // 4),
    "nested-brackets": lambda: "[" * (_MB // 2) + "](x)" * 1000 + "]" * (_MB // 2),
    "reference-labels": lambda: "[x]: /u\n\n" + "[x][" * (_MB // 4),
    "angle-brackets": lambda: "<a" * (_MB // 2),
    "backticks": lambda: _random_line("`a"),
    "deep-quote-line": lambda: ">" * _MB + " deep",
    "deep-quote-lines": lambda: "\n".join(">" * depth + " quoted" for depth in range(3000)),
    "deep-list": lambda: "\n".join(" " * depth + "- item" for depth in range(3000)),
    "unclosed-fence": lambda: "```\n" + "x *y* [z]\n" * 50_000,
    "hashes": lambda: "#" * _MB,
}


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markdown_reads_fast(build) -> None:
    text = build()
    started = time.perf_counter()
    pieces = read_markdown(text)
    markdown_s = time.perf_counter() - started
    started = time.perf_counter()
    plain = read_plain_text(text)
    plain_s = time.perf_counter() - started

    assert markdown_s < HOSTILE_BOUND_S
    assert plain_s < HOSTILE_BOUND_S
    for result in (pieces, plain):
        assert sum(len(p.text) for p in result) <= len(text)
        assert all(p.text and p.text == p.text.strip() for p in result)


def test_hostile_star_bracket_line_keeps_its_brackets() -> None:
    text = _random_line("*[")
    (piece,) = read_markdown(text)
    # No `]` anywhere: every `[` is literal text; emphasis pairs may drop stars.
    assert piece.text.count("[") == text.count("[")
    assert set(piece.text) <= {"*", "["}
    assert piece.metadata["category"] == "NarrativeText"


def test_deeply_nested_quotes_keep_their_text() -> None:
    pieces = read_markdown("\n".join(">" * depth + f" line {depth}" for depth in range(1, 2001)))
    assert texts(pieces) == [" ".join(f"line {depth}" for depth in range(1, 2001))]


# ------------------------------------------------------------------ the parse stage


@pytest.fixture
def no_unstructured(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(media_type: str):
        raise AssertionError(f"unstructured partitioner used for {media_type}")

    monkeypatch.setattr(parse, "_partitioner", refuse)


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (MARKDOWN, "# Пчёлы\n\nВ семье одна **матка** и тысячи рабочих пчёл.\n".encode()),
        (TEXT, "Пчёлы\n\nВ семье одна матка и тысячи рабочих пчёл.\n".encode()),
    ],
    ids=["md", "txt"],
)
def test_parser_reads_text_and_markdown_without_unstructured(
    no_unstructured: None, media_type: str, data: bytes
) -> None:
    pieces = UnstructuredParser().parse(data, media_type=media_type, filename="bees")
    assert [(p.text, p.metadata) for p in pieces] == [
        ("Пчёлы", {"category": "Title", "page_number": None, "section": "Пчёлы", "language": "ru"}),
        (
            "В семье одна матка и тысячи рабочих пчёл.",
            {
                "category": "NarrativeText",
                "page_number": None,
                "section": "Пчёлы",
                "language": "ru",
            },
        ),
    ]


def test_parser_reads_rtf_text_without_unstructured(no_unstructured: None) -> None:
    data = make_rtf("Honeybees", ["A colony has one queen.", "# Foraging", "Workers fly out."])
    pieces = UnstructuredParser().parse(data, media_type=RTF, filename="bees.rtf")
    assert shape(pieces) == [
        ("Title", "Honeybees", "Honeybees"),
        ("NarrativeText", "A colony has one queen.", "Honeybees"),
        ("Title", "Foraging", "Foraging"),
        ("NarrativeText", "Workers fly out.", "Foraging"),
    ]


def test_parser_config_names_the_text_reader() -> None:
    assert UnstructuredParser().config["text_reader"] == READER_VERSION == "ragops-textread-1"
