"""Rule-based reader for HTML: text in, `Piece`s out.

Why this exists: speed. unstructured's `partition_html` builds a Python object per
element and classifies every paragraph with NLP heuristics (is it narrative? an
address? an e-mail?): about 90 ms for a 600-word page, as long as embedding it. Here
libxml2 (through lxml) parses the page and one flat pass over the tree cuts it into
pieces: about 0.1 ms for the same page (unstructured: 80-90 ms), the same way in every
language.

Every piece carries exactly `category`, `page_number` (always None) and `section` (the
text of the nearest heading at or above it, else None), as the unstructured path does;
the caller adds the language.

What is read:

- Only the first `<main>` element when the page has one (the rest is site chrome),
  else `<body>`, else the whole document: unstructured's rule.
- Block elements (`p`, `div`, `section`, `article`, `aside`, `header`, `footer`, `main`,
  `blockquote`, `address`, `li`, `dl`, `dt`, `dd`, `ul`, `ol`, `h1`..`h6`, `pre`,
  `table`, `figure`, `figcaption`, `form`, `fieldset`, `legend`, `details`, `summary`,
  `hr`, ...; `_BLOCKS` has them all) start a new piece and end it. Everything else,
  including unknown and custom elements, is inline: its text joins its block's text
  (`<b>`, `<a>`, `<span>`, `<code>`, `<my-widget>`, ...). Text directly inside a block
  around its child blocks is kept, each run its own piece: `<div>intro <p>para</p>
  tail</div>` gives "intro", "para", "tail".
- Categories: "Title" for `h1`..`h6` (its text becomes the `section` of what follows),
  "ListItem" for `li` and `dd`, "CodeSnippet" for `pre`, "Table" for `table`,
  "NarrativeText" for anything else. A block inside a block takes the category of the
  nearest one of these around it: `<li><p>x</p></li>` is a "ListItem", `<li>` in a
  `<pre>` is code.
- Whitespace: every run of whitespace (Unicode's, so also no-break spaces) becomes one
  space and a piece is stripped. `<br>` is a line break (spaces around it go); in a
  heading or a table cell it is a space, so sections and table rows stay one line.
  Blank lines are dropped.
- `<pre>`: its text verbatim (tabs, indentation, inline markup's text), less leading and
  trailing blank lines. `<br>` and block elements in it are line breaks, so it stays one
  piece.
- `<table>`: one piece; each row's cells (`td`, `th`) collapsed to one line each and
  joined with " | " (empty cells kept so columns line up, except at the end of a row),
  rows joined with newlines, rows without text dropped; a `<caption>` is the first line.
  Everything in a cell, nested blocks, lists and tables included, is that cell's text,
  spaced at block boundaries. Text in a table outside its cells and caption is dropped,
  and so is a table with no cell text (a caption alone is not a table).
- A paragraph-like piece ("NarrativeText") that starts with a bullet glyph and a space
  (`•`, `·`, `◦`, `○`, `●`, `‣`, `⁃`, `∙`, `-`, `–`, `*` and a few more) is a
  "ListItem" without the bullet; one of a single character (a stray "|" or "×") is
  dropped. Both as unstructured does.
- Math: a `<math>` element reads as its TeX annotation or `alttext`, else nothing; with
  `display="block"` it is a piece of its own. KaTeX's visual copy of a formula
  (`.katex-html` next to `.katex-mathml`) is skipped, as unstructured does.
- Dropped with everything in them (the text after them stays): `head` (so `<title>`;
  unstructured drops it too), `title`, `script`, `style`, `noscript`, `template`,
  `nav` (menus are site chrome; unstructured drops them too), `del` (deleted text),
  `dialog`, form controls (`button`, `label`, `select`, `option`, `textarea`,
  `datalist`; an `<input>`, hidden or not, has no text), embedded content and its
  fallback text (`svg`, `iframe`, `object`, `audio`, `video`, `canvas`, `noembed`,
  `noframes`, `xml`, `ix:header`), images (`<img>` alt text is not read). Comments,
  processing instructions and the doctype never reach the tree.
- Character references are decoded by the parser; an unknown one stays as written.

Deliberate differences from unstructured (0.27, `partition_html` v1). The first two
change which text is read; the others only how it is cut, spaced and labelled (on the
bench corpus pages the text is identical, only categories differ):

- `<figure>`, `<form>`, `<details>`/`<summary>` are read (unstructured drops them
  whole: figure captions, FAQ answers, and every page an ASP.NET form wraps would be
  lost); their controls, labels and images still go.
- Image alt text is not read (unstructured makes an "Image" piece of it, which also
  splits the paragraph around an inline image).
- Table cells: inline markup does not add spaces ("H<sub>2</sub>O" is "H2O";
  unstructured joins every text node with a space, "H 2 O"); cells and rows keep their
  separators (unstructured makes one space-joined line of the whole table).
- A single-character block is dropped only when it is "NarrativeText" (unstructured:
  whenever its category is guessed, so also `<li>x</li>`'s tail); a bullet needs a
  space after it ("•foo" and "*Note" keep their first character; unstructured strips
  it).
- Categories: no NLP classification, so "NarrativeText" where unstructured says
  "UncategorizedText", "Address" or "EmailAddress"; a `<li>`'s text after a nested list
  stays "ListItem"; `dt` is "NarrativeText" (unstructured: classified).
- Line breaks: `<br>` is a newline inside the piece (unstructured: a space); `<pre>`
  keeps its first line's indentation (unstructured strips the piece); elements that
  unstructured treats as inline but browsers show as blocks (`figcaption`, `fieldset`,
  `legend`, `menu`, `caption` or `td` outside a table, ...) start
  their own piece. The text is the same once whitespace is normalised.
- Not interpreted, like unstructured: CSS (`display: none`, inline elements styled as
  blocks), the `hidden` and `aria-hidden` attributes (tab panels and accordions are
  hidden until opened, and their text is content), layout tables (a page laid out in
  a table is one "Table" piece).

Input: the decoded `str` of a page or fragment, HTML or XHTML (a default namespace is
ignored by the HTML parser), with or without an XML or encoding declaration: the text
is parsed as UTF-8 bytes, so a declared encoding or `<meta charset>` cannot re-decode
it. Lone surrogates become "?".

Hostile input: the tree is walked with lxml's `iterwalk` (C iteration, no Python
recursion) and an explicit stack; each element and text node is handled once, each
piece joined once, so time and memory are linear in the input (about 0.3 s per MB of
markup at worst: a million `<b>` or `<br>` elements). libxml2 builds at most
`MAX_DEPTH` (2048) levels and drops the rest of a deeper page, so such a page raises
`FormatError` rather than losing its end silently; note that unclosed inline tags
(`<b><i>x` repeated) nest too, as libxml2 does not re-balance them the way browsers
do. Text nodes over 10 MB are accepted (`huge_tree`; the HTML parser expands no
entities, so nothing grows beyond the input).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from core.types import Piece
from ingest.formats import FormatError

# Part of the parse stage's cache key: bump it when a rule changes what pieces come out.
HTML_READER_VERSION = "1"

TITLE = "Title"
NARRATIVE = "NarrativeText"
LIST_ITEM = "ListItem"
CODE = "CodeSnippet"
TABLE = "Table"

# libxml2's element depth limit with `huge_tree` (without it: 256).
MAX_DEPTH = 2048

_BLOCKS = frozenset(
    "address article aside blockquote body caption center dd details dir div dl dt "
    "fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 header hgroup hr "
    "html legend li listing main menu ol p plaintext pre search section summary table "
    "tbody td tfoot th thead tr ul xmp".split()
)
_DROPPED = frozenset(
    "audio button canvas datalist del dialog head iframe ix:header label nav noembed "
    "noframes noscript object optgroup option script select style svg template "
    "textarea title video xml".split()
)
# Blocks that set the category of the text in them (others inherit their parent's).
_CATEGORIES = {
    **{f"h{level}": TITLE for level in range(1, 7)},
    "li": LIST_ITEM,
    "dd": LIST_ITEM,
}
_TEX_ENCODINGS = frozenset(("application/x-tex", "tex", "latex", "application/x-latex"))
# A bullet glyph starting a paragraph (followed by whitespace) makes it a list item.
_BULLETS = frozenset("\x95•‣⁃⁌⁍∙○●◘◦☙❥❧⦾⦿\uf0b7·-–*")

# What an open element is, kept on the walk's stack until its end event.
_INLINE, _BLOCK, _SKIPPED, _PRE, _TABLE, _CELL, _CAPTION = range(7)
_BREAK = None  # a <br> in a block's parts

_KATEX_MATHML = "//*[contains(concat(' ', normalize-space(@class), ' '), ' katex-mathml ')]"
_KATEX_HTML = "//*[contains(concat(' ', normalize-space(@class), ' '), ' katex-html ')]"


def read_html(text: str) -> list[Piece]:
    """Pieces of an HTML page or fragment (rules in the module docstring). A page with
    no text gives an empty list; `FormatError` when the HTML parser refuses it."""
    if not text.strip():
        return []
    root = _parse(text)
    if root is None:
        return []
    skipped = _katex_visuals(root) if "katex-html" in text else set()
    return _TreeReader(skipped).read(_reading_root(root))


def _parse(text: str) -> Any:
    """The document's root element (None for a document with no elements)."""
    parser = etree.HTMLParser(
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        collect_ids=False,
        huge_tree=True,
    )
    try:
        root = etree.fromstring(text.encode("utf-8", "replace"), parser)
    except (etree.LxmlError, ValueError) as exc:
        raise FormatError(f"could not parse the HTML ({exc})") from exc
    for error in parser.error_log:
        if error.level >= etree.ErrorLevels.FATAL:
            if "Excessive depth" in error.message:
                raise FormatError(
                    f"HTML is nested more than {MAX_DEPTH} elements deep, "
                    "which the HTML parser refuses"
                )
            raise FormatError(f"the HTML parser gave up: {error.message.strip()}")
    return root


def _reading_root(root: Any) -> Any:
    """The first `<main>`, else `<body>`, else the document root."""
    for name in ("main", "body"):
        found = next(root.iter(name), None)
        if found is not None:
            return found
    return root


def _katex_visuals(root: Any) -> set[Any]:
    """KaTeX's rendered copies of formulas whose MathML (read instead) sits beside them.
    The set keeps the element proxies alive, so the walk meets the same objects."""
    parents = {element.getparent() for element in root.xpath(_KATEX_MATHML)}
    return {element for element in root.xpath(_KATEX_HTML) if element.getparent() in parents}


def _math_text(element: Any) -> str:
    """A formula's TeX annotation, else its `alttext`, else ""."""
    for annotation in element.iter("annotation"):
        encoding = (annotation.get("encoding") or "").strip().lower()
        if encoding in _TEX_ENCODINGS and (annotation.text or "").strip():
            return annotation.text.strip()
    return (element.get("alttext") or "").strip()


def _collapse(parts: list[str | None], line_break: str) -> str:
    """A block's text: whitespace runs as single spaces, `<br>`s as `line_break`, empty
    lines dropped."""
    lines: list[str] = []
    start = 0
    for index, part in enumerate(parts):
        if part is _BREAK:
            lines.append(" ".join("".join(parts[start:index]).split()))  # type: ignore[arg-type]
            start = index + 1
    lines.append(" ".join("".join(parts[start:]).split()))  # type: ignore[arg-type]
    return line_break.join(line for line in lines if line)


def _code(parts: list[str]) -> str:
    """A `<pre>`'s text less its leading and trailing blank lines."""
    lines = "".join(parts).replace("\r\n", "\n").split("\n")
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def _bullet_item(text: str) -> str | None:
    """The text after a leading bullet glyph and whitespace, else None."""
    if len(text) > 1 and text[0] in _BULLETS and text[1].isspace():
        return text[2:].strip()
    return None


def _piece(text: str, category: str, section: str | None) -> Piece:
    return Piece(
        text=text, metadata={"category": category, "page_number": None, "section": section}
    )


def _without_trailing_blanks(row: list[str]) -> list[str]:
    """`row` less its empty cells at the end (it has a non-empty one)."""
    end = len(row)
    while not row[end - 1]:
        end -= 1
    return row[:end]


class _Table:
    """The open (outermost) table: finished rows, the caption, the open cell."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.caption: list[str] = []
        self.cell: list[str | None] | None = None

    def text(self) -> str:
        lines = [line for line in self.caption if line]
        rows = [" | ".join(_without_trailing_blanks(row)) for row in self.rows if any(row)]
        return "\n".join(lines + rows) if rows else ""


class _TreeReader:
    """One pass over the tree's start and end events with an explicit stack: no
    recursion, so nesting depth costs nothing."""

    def __init__(self, skipped: set[Any]) -> None:
        self.skipped = skipped
        self.pieces: list[Piece] = []
        self.section: str | None = None
        self.parts: list[str | None] = []  # the open block's text; _BREAK for a <br>
        self.categories: list[str] = [NARRATIVE]
        self.pre: Any = None  # the open (outermost) <pre>
        self.table: _Table | None = None

    def read(self, root: Any) -> list[Piece]:
        walker = etree.iterwalk(root, events=("start", "end"))
        stack: list[int] = []
        for event, element in walker:
            if event == "start":
                kind = self._start(element)
                stack.append(kind)
                if kind == _SKIPPED:
                    walker.skip_subtree()
                elif element.text:
                    self._text(element.text)
            else:
                self._end(element, stack.pop())
                if element.tail and stack:  # the reading root's tail is outside it
                    self._text(element.tail)
        self._flush()
        return self.pieces

    # ------------------------------------------------------------ events

    def _start(self, element: Any) -> int:
        name = element.tag
        if not isinstance(name, str) or name in _DROPPED or element in self.skipped:
            return _SKIPPED
        if name == "br":
            self._line_break()
            return _INLINE
        if name == "math":
            self._math(element)
            return _SKIPPED
        if name not in _BLOCKS:
            return _INLINE
        if self.pre is not None:
            self._code_line_break()
            return _BLOCK
        if self.table is not None:
            return self._table_start(element, name)
        self._flush()
        if name == "pre":
            self.pre = element
            return _PRE
        if name == "table":
            self.table = _Table()
            return _TABLE
        self.categories.append(_CATEGORIES.get(name, self.categories[-1]))
        return _BLOCK

    def _end(self, element: Any, kind: int) -> None:
        if kind in (_INLINE, _SKIPPED):
            return
        if self.pre is not None:
            if element is self.pre:
                text = _code(self.parts)  # type: ignore[arg-type]
                self.parts = []
                self.pre = None
                self._emit(text, CODE)
            else:
                self._code_line_break()
            return
        table = self.table
        if table is not None:
            if kind == _TABLE:
                self.table = None
                self._emit(table.text(), TABLE)
            elif kind in (_CELL, _CAPTION) and table.cell is not None:
                text = _collapse(table.cell, " ")
                table.cell = None
                if kind == _CELL:
                    table.rows[-1].append(text)
                else:
                    table.caption.append(text)
            elif table.cell is not None:
                table.cell.append(" ")
            return
        self._flush()
        self.categories.pop()

    def _table_start(self, element: Any, name: str) -> int:
        table = self.table
        assert table is not None
        if table.cell is not None:  # a block inside a cell: a space
            table.cell.append(" ")
            return _BLOCK
        if name == "tr":
            table.rows.append([])
        elif name in ("td", "th", "caption"):
            if name != "caption" and not table.rows:
                table.rows.append([])
            table.cell = []
            return _CAPTION if name == "caption" else _CELL
        return _BLOCK

    def _text(self, text: str) -> None:
        if self.table is not None:  # (never open together with a <pre>)
            if self.table.cell is not None:
                self.table.cell.append(text)
            return  # between a table's cells
        self.parts.append(text)

    def _line_break(self) -> None:
        if self.pre is not None:
            self.parts.append("\n")
        elif self.table is not None:
            self._text(" ")
        else:
            self.parts.append(_BREAK)

    def _code_line_break(self) -> None:
        """A block boundary inside a <pre>: a new line unless one just started."""
        last = self.parts[-1] if self.parts else None
        if last and not last.endswith("\n"):
            self.parts.append("\n")

    def _math(self, element: Any) -> None:
        text = _math_text(element)
        if not text:
            return
        block = (element.get("display") or "").strip().lower() == "block"
        if block and self.pre is None and self.table is None:
            self._flush()
            self.parts.append(text)
            self._flush()
        else:
            self._text(text)

    # ------------------------------------------------------------ pieces

    def _flush(self) -> None:
        """End the open run of block text: it becomes a piece unless it is empty."""
        if not self.parts:
            return
        category = self.categories[-1]
        text = _collapse(self.parts, " " if category == TITLE else "\n")
        self.parts = []
        if category == NARRATIVE:
            item = _bullet_item(text)
            if item is not None:
                text, category = item, LIST_ITEM
            elif len(text) < 2:
                return
        self._emit(text, category)

    def _emit(self, text: str, category: str) -> None:
        if not text.strip():
            return
        if category == TITLE:
            self.section = text
        self.pieces.append(_piece(text, category, self.section))
