"""Rule-based readers for plain text and Markdown: text in, `Piece`s out.

Why this exists: speed. unstructured's `partition_text` and `partition_md` classify
every element with NLP heuristics (spaCy sentence splitting, part-of-speech tags): tens
of milliseconds for a 600-word document it has not seen before, as long as embedding
it. Plain text and Markdown carry their structure in blank lines and markup, so a few
predictable rules read them in a fraction of a millisecond (over 100x faster), the same
way in every language (unstructured's title guess uses English word lists, so a Russian
sentence could pass for a heading). Other formats still go through unstructured.

Every piece carries `category`, `page_number` (always None) and `section` (the text of
the nearest heading at or above it, else None), as the unstructured path does.

Plain text (`read_plain_text`):

- Paragraphs are separated by blank lines; inside one, hard-wrapped lines are joined
  with a space ("NarrativeText"). Text is otherwise kept as given.
- A line starting with a bullet (`-`, `*`, `+` and a space, or `•`, `◦`, `▪`, `‣`,
  `●`, `○`, `■`, `□`) or a number (1-3 digits, `.` or `)`, a space) starts a list
  item ("ListItem"); the lines after it, up to the next item or blank line, continue
  it. A bullet is dropped from the text, a number kept (as unstructured does).
- A line of 3+ repeats of one of `- = _ * ~ # +` (an underline or separator; spaces
  between allowed) is dropped and ends the paragraph.
- Title rule: a paragraph is a "Title" when it is a single line (blank line, separator
  or start of the document before it; blank line or separator after it) that is not a
  list item, has at most `TITLE_MAX_WORDS` (12) words, contains a letter, does not end
  with sentence or clause punctuation (`.` `!` `?` `…` `:` `;` `,`, looked at past
  closing quotes and brackets), and is followed by more text in the document. So the
  last line of a file is never a title, a line glued to the paragraph below it is part
  of that paragraph, and "Introduction" alone between blank lines always is a title.
  Otherwise the paragraph is "NarrativeText", whatever its length.

Markdown (`read_markdown`), CommonMark/GFM in the parts documents use:

- ATX (`#`..`######`, closing `#`s stripped) and setext (`===`/`---` underlined)
  headings: "Title", and they set `section`.
- Paragraphs, hard-wrapped lines joined with a space: "NarrativeText".
- List items (`-`, `*`, `+`, `1.`, `1)`, nested by indentation, GFM task boxes dropped):
  each item one "ListItem", markers dropped; an item's later indented paragraphs join it
  on a new line.
- Fenced (``` and ~~~) and indented code blocks: kept verbatim, one "CodeSnippet".
- Block quotes: `>` markers stripped, read as paragraphs: "NarrativeText".
- Pipe tables: one "Table" piece, cells joined by " | " per row, rows by newlines, the
  delimiter row dropped.
- Dropped: YAML front matter (a `---` block at the very top), thematic breaks, HTML
  comments, link reference definitions.
- Inline markup becomes readable text: emphasis markers removed, `code` spans kept
  literally, links and images give their text / alt text, autolinks their URL, HTML
  tags (HTML element names, custom elements) are removed, backslash escapes and
  character references resolved.

Hostile input: no recursion, and every scan is linear in the input (regexes here have
no nested or overlapping quantifiers; look-ahead searches are cached so they are never
repeated over the same text; runs of `*`, `[`, `]`, `<` are one step each). The price
is at most about a microsecond per markup character: a megabyte line of `*` and `[` or
thousands of nested quotes read in well under a second.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from core.types import Piece

# Part of the parse stage's cache key: bump it when a rule changes what pieces come out.
READER_VERSION = "ragops-textread-1"

TITLE = "Title"
NARRATIVE = "NarrativeText"
LIST_ITEM = "ListItem"
CODE = "CodeSnippet"
TABLE = "Table"

# Plain-text title rule: at most this many words (see the module docstring).
TITLE_MAX_WORDS = 12
# Longer lines are never titles; saves splitting a megabyte line into words.
_TITLE_MAX_CHARS = 400
_TERMINAL = frozenset(".!?…:;,。！？")
_CLOSING = "\"'”’»)]}"
_ASCII_BULLETS = "-*+"
_UNICODE_BULLETS = "•◦▪‣●○■□"
_RULE_CHARS = frozenset("-=_*~#+")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

_TICKS = re.compile(r"`+")
_AUTOLINK = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*")
_EMAIL = re.compile(r"[^\s@<>]+@[^\s@<>]+")
_TAG = re.compile(r"/?([A-Za-z][A-Za-z0-9\-]*)(?:[\s/][^<>]*)?|[!?][^<>]*")
# Only these names (and custom elements, which have a `-`) are removed as HTML tags, so
# `List<T>` or `if a<b and c>d` in prose stay as written.
_HTML_TAGS = frozenset(
    "a abbr address area article aside audio b bdi bdo blockquote body br button canvas "
    "caption center cite code col colgroup data dd del details dfn dialog div dl dt em "
    "embed fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hr "
    "html i iframe img input ins kbd label legend li link main map mark meta nav noscript "
    "object ol optgroup option p picture pre q rp rt ruby s samp script section select "
    "small source span strike strong style sub summary sup svg table tbody td template "
    "textarea tfoot th thead time title tr track tt u ul var video wbr".split()
)
_SPACES = re.compile(r"[ \t]{2,}")
_REF_DEF = re.compile(r"\[([^\[\]]{1,999})\]:[ \t]*\S")
_LABEL_MAX = 999


def read_plain_text(text: str) -> list[Piece]:
    """Pieces of a plain-text document (rules in the module docstring); empty or
    whitespace-only text gives an empty list."""
    blocks: list[list[str]] = []
    block: list[str] = []
    for raw in _lines(text):
        line = raw.strip()
        if not line or _is_separator(line):
            if block:
                blocks.append(block)
                block = []
            continue
        block.append(line)
    if block:
        blocks.append(block)

    pieces: list[Piece] = []
    section: str | None = None
    for number, block in enumerate(blocks):
        if len(block) == 1 and number + 1 < len(blocks) and _is_plain_title(block[0]):
            section = block[0]
            pieces.append(_piece(section, TITLE, section))
            continue
        kind: str | None = None
        parts: list[str] = []
        for line in block:
            item = _plain_item(line)
            if item is None and kind is not None:
                parts.append(line)
                continue
            if kind is not None:
                pieces.append(_piece(" ".join(parts), kind, section))
            kind, parts = (NARRATIVE, [line]) if item is None else (LIST_ITEM, [item])
        if kind is not None:
            pieces.append(_piece(" ".join(parts), kind, section))
    return [piece for piece in pieces if piece.text]


def read_markdown(text: str) -> list[Piece]:
    """Pieces of a Markdown document (what is recognised: the module docstring); empty
    or whitespace-only text gives an empty list."""
    return _MarkdownReader().read(text)


def _piece(text: str, category: str, section: str | None) -> Piece:
    return Piece(
        text=text, metadata={"category": category, "page_number": None, "section": section}
    )


def _lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix("\ufeff").split("\n")


def _is_separator(line: str) -> bool:
    """3+ repeats of one rule character (spaces allowed between): `-----`, `= = =`."""
    if line[0] not in _RULE_CHARS:
        return False
    bare = line.replace(" ", "").replace("\t", "")
    return len(bare) >= 3 and bare.count(bare[0]) == len(bare)


def _plain_item(line: str) -> str | None:
    """The list item's text when `line` starts one, else None."""
    first = line[0]
    if first in _ASCII_BULLETS:
        if len(line) > 1 and line[1] in " \t":
            return line[2:].strip()
        return None
    if first in _UNICODE_BULLETS:
        return line[1:].strip()
    digits = 0
    while digits < len(line) and digits < 4 and "0" <= line[digits] <= "9":
        digits += 1
    marker_end = line[digits : digits + 2]
    if 1 <= digits <= 3 and marker_end in (". ", ".\t", ") ", ")\t"):
        return line
    return None


def _is_plain_title(line: str) -> bool:
    if len(line) > _TITLE_MAX_CHARS or _plain_item(line) is not None:
        return False
    if len(line.split()) > TITLE_MAX_WORDS or not any(c.isalpha() for c in line):
        return False
    end = line.rstrip(_CLOSING)
    return bool(end) and end[-1] not in _TERMINAL


# ---------------------------------------------------------------- Markdown blocks


def _indent(line: str) -> tuple[int, str]:
    """(indentation width, tabs to the next multiple of 4; the line without it)."""
    content = line.lstrip(" \t")
    prefix = line[: len(line) - len(content)]
    if "\t" not in prefix:
        return len(prefix), content
    width = 0
    for char in prefix:
        width = width + 4 - width % 4 if char == "\t" else width + 1
    return width, content


def _drop_columns(line: str, columns: int) -> str:
    """`line` less up to `columns` columns of leading indentation."""
    width = 0
    index = 0
    while index < len(line) and width < columns and line[index] in " \t":
        width = width + 4 - width % 4 if line[index] == "\t" else width + 1
        index += 1
    return line[index:]


def _atx_heading(content: str) -> str | None:
    """The heading text when `content` is an ATX heading line, else None."""
    if not content.startswith("#"):
        return None
    rest = content.lstrip("#")
    level = len(content) - len(rest)
    if level > 6 or (rest and rest[0] not in " \t"):
        return None
    rest = rest.strip(" \t")
    unclosed = rest.rstrip("#")
    if not unclosed:
        return ""
    if unclosed != rest and unclosed[-1] in " \t":
        rest = unclosed.rstrip(" \t")
    return rest


def _is_setext_underline(content: str) -> bool:
    bare = content.rstrip(" \t")
    return bool(bare) and bare[0] in "=-" and bare.count(bare[0]) == len(bare)


def _is_thematic_break(content: str) -> bool:
    if not content or content[0] not in "-*_":
        return False
    bare = content.replace(" ", "").replace("\t", "")
    return len(bare) >= 3 and bare.count(bare[0]) == len(bare)


def _fence_open(content: str) -> tuple[str, int] | None:
    """(fence character, length) when `content` opens a fenced code block."""
    if not content.startswith(("```", "~~~")):
        return None
    char = content[0]
    length = len(content) - len(content.lstrip(char))
    if char == "`" and "`" in content[length:]:
        return None  # inline code at the start of a paragraph
    return char, length


def _list_marker(content: str) -> tuple[bool, bool, str] | None:
    """(ordered, starts at 1, item text) when `content` starts a list item."""
    if not content:
        return None
    if content[0] in "-*+":
        if len(content) == 1 or content[1] in " \t":
            return False, False, _task_text(content[1:].strip(" \t"))
        return None
    digits = 0
    while digits < len(content) and digits < 10 and "0" <= content[digits] <= "9":
        digits += 1
    if not 1 <= digits <= 9 or content[digits : digits + 1] not in (".", ")"):
        return None
    after = content[digits + 1 :]
    if after and after[0] not in " \t":
        return None
    return True, int(content[:digits]) == 1, _task_text(after.strip(" \t"))


def _task_text(text: str) -> str:
    if text[:3] in ("[ ]", "[x]", "[X]") and text[3:4] in (" ", "\t"):
        return text[4:].lstrip(" \t")
    return text


def _split_cells(line: str) -> list[str]:
    """A pipe-table row's raw cells (`\\|` is a pipe inside a cell)."""
    row = line.strip().replace("\x00", "\ufffd").replace("\\|", "\x00")
    row = row.removeprefix("|")
    if row.endswith("|"):
        row = row[:-1]
    return [cell.strip().replace("\x00", "|") for cell in row.split("|")]


def _is_delimiter_row(line: str, columns: int) -> bool:
    if "|" not in line or "-" not in line:
        return False
    cells = _split_cells(line)
    if len(cells) != columns:
        return False
    for cell in cells:
        core = cell.strip(":")
        if not core or core.count("-") != len(core) or len(cell) - len(core) > 2:
            return False
    return True


def _join_lines(lines: list[str]) -> str:
    """Hard-wrapped lines as one line; a trailing backslash (hard break) goes."""
    parts = []
    last = len(lines) - 1
    for number, line in enumerate(lines):
        line = line.strip()
        if number < last and line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1].rstrip()
        parts.append(line)
    return " ".join(parts)


class _MarkdownReader:
    """One document's block structure, read line by line with a few flags: no
    recursion, so nesting depth costs nothing."""

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.section: str | None = None
        self.refs: set[str] = set()
        # The open paragraph-like block: its kind (NARRATIVE, LIST_ITEM or "quote") and
        # lines; a list item also keeps its finished paragraphs.
        self.kind: str | None = None
        self.lines: list[str] = []
        self.item_parts: list[str] = []
        self.blank_after = False  # a blank line ended the open list item's paragraph
        self.list_context = False  # indented lines belong to a list, not to code

    def read(self, text: str) -> list[Piece]:
        lines = _without_front_matter(_lines(text))
        for line in lines:  # definitions may follow their uses
            match = _REF_DEF.match(line.lstrip(" "))
            if match is not None:
                self.refs.add(_label_key(match.group(1)))
        fence: tuple[str, int, int] | None = None  # char, length, indentation
        code: list[str] | None = None  # an open fenced or indented code block
        in_comment = False
        index = 0
        while index < len(lines):
            line = lines[index]
            index += 1
            if fence is not None and code is not None:
                _, content = _indent(line)
                char, length, indent = fence
                bare = content.rstrip(" \t")
                if len(bare) >= length and bare.count(char) == len(bare):
                    self._code(code)
                    fence, code = None, None
                else:
                    code.append(_drop_columns(line, indent))
                continue
            if in_comment:
                in_comment = "-->" not in line
                continue
            blank = not line.strip()
            if code is not None:  # an indented code block
                width, _ = _indent(line)
                if blank or width >= 4:
                    code.append(_drop_columns(line, 4))
                    continue
                self._code(code)
                code = None
            if blank:
                if self.kind == LIST_ITEM:
                    self.blank_after = True
                else:
                    self._flush()
                continue

            width, content = _indent(line)
            if width < 2 and self.kind is None and _list_marker(content) is None:
                self.list_context = False  # back at the left margin: the list is over
            may_start = width <= 3 or self.list_context
            opened = _fence_open(content) if may_start else None
            if opened is not None:
                self._flush()
                fence, code = (*opened, width), []
                continue
            if width >= 4 and self.kind is None and not self.list_context:
                code = [_drop_columns(line, 4)]
                continue
            if may_start:
                after = self._block_start(content, width, lines, index)
                if after >= 0:
                    index = after
                    in_comment = content.startswith("<!--") and "-->" not in content[4:]
                    continue
            self._text(content, width)
        if code is not None:
            self._code(code)
        self._flush()
        return self.pieces

    def _block_start(self, content: str, width: int, lines: list[str], index: int) -> int:
        """Handle `content` when it starts a block rather than paragraph text, and return
        the index of the next line to read (past a table's rows); -1 when it does not."""
        if content.startswith("<!--"):
            end = content.find("-->", 4)
            if end >= 0 and content[end + 3 :].strip():
                return -1  # text after the comment: inline handling drops the comment
            self._flush()
            return index
        heading = _atx_heading(content)
        if heading is not None:
            self._flush()
            if width < 2:
                self.list_context = False
            self._title(heading)
            return index
        if self.kind == NARRATIVE and width <= 3 and _is_setext_underline(content):
            heading = _join_lines(self.lines)
            self.kind, self.lines = None, []
            self._title(heading)
            return index
        if _is_thematic_break(content):
            self._flush()
            self.list_context = False
            return index
        if "|" in content and index < len(lines):
            header = _split_cells(content)
            if _is_delimiter_row(lines[index], len(header)):
                self._flush()
                rows = [header]
                index += 1
                while index < len(lines) and lines[index].strip() and "|" in lines[index]:
                    rows.append(_split_cells(lines[index]))
                    index += 1
                self._table(rows)
                return index
        if content.startswith(">"):
            self._quote(content.lstrip("> \t"))
            return index
        marker = _list_marker(content)
        if marker is not None:
            ordered, starts_at_one, item = marker
            # As in CommonMark, only a non-empty item that is a bullet or starts at 1
            # interrupts a paragraph ("in\n1984. He..." is one paragraph).
            if self.kind == NARRATIVE and (not item or (ordered and not starts_at_one)):
                return -1
            self._flush()
            self.kind, self.lines = LIST_ITEM, [item]
            self.list_context = True
            return index
        return -1

    def _text(self, content: str, width: int) -> None:
        if self.kind in (NARRATIVE, "quote"):
            self.lines.append(content)  # continuation, lazily for quotes
            return
        if self.kind == LIST_ITEM:
            if not self.blank_after:
                self.lines.append(content)
                return
            if width >= 2:  # another paragraph of the same item
                self.item_parts.append(_inline(_join_lines(self.lines), self.refs))
                self.lines = [content]
                self.blank_after = False
                return
            self._flush()
        if width < 2:
            self.list_context = False
        match = _REF_DEF.match(content)
        if match is not None:
            self.refs.add(_label_key(match.group(1)))
            return
        self.kind, self.lines = NARRATIVE, [content]

    def _quote(self, content: str) -> None:
        """One line of a block quote, its `>` markers stripped: read as paragraph text; an
        empty line, a heading or a list item inside the quote starts a new paragraph."""
        heading = _atx_heading(content)
        marker = None if heading is not None else _list_marker(content)
        if self.kind != "quote" or not content or heading is not None or marker is not None:
            self._flush()
            self.kind = "quote"
        if heading is not None:
            content = heading
        elif marker is not None:
            content = marker[2]
        if content:
            self.lines.append(content)

    def _flush(self) -> None:
        kind, lines = self.kind, self.lines
        self.kind, self.lines = None, []
        self.blank_after = False
        if kind is None or not lines:
            self.item_parts = []
            return
        text = _inline(_join_lines(lines), self.refs)
        if kind == LIST_ITEM:
            text = "\n".join(part for part in (*self.item_parts, text) if part)
            self.item_parts = []
            self._emit(text, LIST_ITEM)
        else:
            self._emit(text, NARRATIVE)

    def _title(self, raw: str) -> None:
        text = _inline(raw, self.refs)
        if text:
            self.section = text
            self._emit(text, TITLE)

    def _code(self, lines: list[str]) -> None:
        start, end = 0, len(lines)
        while start < end and not lines[start].strip():
            start += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        self._emit("\n".join(line.rstrip("\n") for line in lines[start:end]), CODE)

    def _table(self, rows: list[list[str]]) -> None:
        lines = []
        for row in rows:
            cells = [_inline(cell, self.refs) for cell in row]
            if any(cells):
                lines.append(" | ".join(cells))
        self._emit("\n".join(lines), TABLE)

    def _emit(self, text: str, category: str) -> None:
        if text.strip():
            self.pieces.append(_piece(text, category, self.section))


def _without_front_matter(lines: list[str]) -> list[str]:
    if not lines or lines[0].rstrip() != "---":
        return lines
    for number in range(1, len(lines)):
        if lines[number].rstrip() in ("---", "..."):
            return lines[number + 1 :]
    return lines


def _label_key(label: str) -> str:
    key = label.casefold()
    return key if key.isalnum() else " ".join(key.split())


# ---------------------------------------------------------------- Markdown inlines


class _Finder:
    """`text.find(needle, start)` for non-decreasing starts, each part of the text
    searched once: a million unmatched openers cost one scan, not a million."""

    def __init__(self, text: str, needle: str) -> None:
        self.text = text
        self.needle = needle
        self.start = -1
        self.found = -1

    def at(self, start: int) -> int:
        if self.start >= 0 and start >= self.start and (self.found < 0 or self.found >= start):
            return self.found
        self.start = start
        self.found = self.text.find(self.needle, start)
        return self.found


class _TickRuns:
    """Backtick runs by length, to find a code span's closing run in linear time."""

    def __init__(self, text: str) -> None:
        self.starts: dict[int, list[int]] = {}
        for match in _TICKS.finditer(text):
            self.starts.setdefault(match.end() - match.start(), []).append(match.start())
        self.next: dict[int, int] = {}

    def closing(self, length: int, after: int) -> int:
        starts = self.starts.get(length)
        if not starts:
            return -1
        position = self.next.get(length, 0)
        while position < len(starts) and starts[position] < after:
            position += 1
        self.next[length] = position
        return starts[position] if position < len(starts) else -1


_SPACE, _PUNCT, _OTHER = 0, 1, 2
_KINDS: dict[str, int] = {}


def _char_kind(char: str) -> int:
    """Whitespace, punctuation (Unicode P* and S*) or other, for emphasis flanking."""
    kind = _KINDS.get(char)
    if kind is None:
        if char.isspace():
            kind = _SPACE
        elif char in _ASCII_PUNCT or unicodedata.category(char)[0] in "PS":
            kind = _PUNCT
        else:
            kind = _OTHER
        if len(_KINDS) < 4096:
            _KINDS[char] = kind
    return kind


def _flanking(char: str, before: int, after: int) -> tuple[bool, bool]:
    """(can open, can close) for a `char` delimiter run between characters of these
    kinds: CommonMark's left/right-flanking rules."""
    left = after != _SPACE and (after != _PUNCT or before != _OTHER)
    right = before != _SPACE and (before != _PUNCT or after != _OTHER)
    if char == "*":
        return left, right
    # No intraword emphasis with underscores: snake_case stays.
    return left and (not right or before == _PUNCT), right and (not left or after == _PUNCT)


_FLANKING = {
    char: [[_flanking(char, before, after) for after in range(3)] for before in range(3)]
    for char in "*_"
}


# Inline tokens, each tried only when the text could use it: `[` matters only with a
# `](`, `][` or a reference definition somewhere, `<` only with a `>`, `&` only with a
# `;`. A run of `*`, `[`, `]` or `<`
# is one token, so a megabyte of them is not a million steps in Python.
_TOKEN_PARTS = (
    r"\\[!-/:-@\[-`{-~]",  # backslash escape of ASCII punctuation
    r"`+",
    r"\*+",
    r"_+",
    r"!?\[+|\]+",
    r"<+",
    r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});",
)
_TOKEN_PATTERNS: dict[tuple[bool, ...], re.Pattern[str] | None] = {}


def _token_pattern(text: str, refs: set[str]) -> re.Pattern[str] | None:
    key = (
        "\\" in text,
        "`" in text,
        "*" in text,
        "_" in text,
        # Brackets are only ever literal without a destination, label or definition.
        "[" in text and "]" in text and ("](" in text or "][" in text or bool(refs)),
        "<" in text and ">" in text,
        "&" in text and ";" in text,
    )
    if key not in _TOKEN_PATTERNS:
        parts = [part for part, used in zip(_TOKEN_PARTS, key, strict=True) if used]
        _TOKEN_PATTERNS[key] = re.compile("|".join(parts)) if parts else None
    return _TOKEN_PATTERNS[key]


def _inline(text: str, refs: set[str] | None = None) -> str:
    """Readable text of one paragraph's inline Markdown (see the module docstring)."""
    refs = refs or set()
    pattern = _token_pattern(text, refs)
    if pattern is not None:
        text = _Inline(text, pattern, refs).run()
    return _SPACES.sub(" ", text).strip()


# An open bracket run's fields (a list, updated in place).
_OUT, _FIRST, _OPEN, _IMAGE, _REMOVED, _IMAGE_REMOVED, _TOTAL = range(7)


class _Inline:
    """One left-to-right pass over a paragraph's tokens. Emphasis and brackets are
    matched with stacks (nearest opener first); look-aheads (a link's `)`, a tag's
    `>`, a code span's closing run) go through cached searches, never rescanning."""

    def __init__(self, text: str, pattern: re.Pattern[str], refs: set[str]) -> None:
        self.text = text
        self.pattern = pattern
        self.refs = refs
        self.out: list[str] = []
        # Emphasis runs that may still open: their index in `out` (which holds what is
        # left of the run), per delimiter character.
        self.openers: dict[str, list[int]] = {"*": [], "_": []}
        # Runs of `[` (or `![`) with brackets still open; see the field names above.
        self.brackets: list[list[Any]] = []
        self.linked: list[list[Any]] = []  # runs that lost a bracket to a link
        self.ticks = _TickRuns(text)
        self.close_paren = _Finder(text, ")")
        self.open_paren = _Finder(text, "(")
        self.second_close = _Finder(text, ")")
        self.close_bracket = _Finder(text, "]")
        self.open_bracket = _Finder(text, "[")
        self.close_angle = _Finder(text, ">")
        self.open_angle = _Finder(text, "<")
        self.comment_end = _Finder(text, "-->")

    def run(self) -> str:
        text, out = self.text, self.out
        resume = 0
        for match in self.pattern.finditer(text):
            start, end = match.span()
            if start < resume:
                continue  # inside a code span, link destination or tag already read
            if start > resume:
                out.append(text[resume:start])
            token = match.group()
            first = token[0]
            if first == "\\":
                out.append(token[1])
                resume = end
            elif first == "`":
                resume = self._code_span(start, end)
            elif first in "*_":
                self._emphasis(token, start, end)
                resume = end
            elif first in "[!":
                image = first == "!"
                count = len(token) - image
                self.brackets.append([len(out), start + image, count, image, 0, False, count])
                out.append(token)
                resume = end
            elif first == "]":
                resume = self._close_brackets(start, end)
            elif first == "<":
                resume = self._angle(start, end)
            else:  # a character reference
                out.append(html.unescape(token))
                resume = end
        if resume < len(text):
            out.append(text[resume:])
        for run in self.linked:
            bang = "!" if run[_IMAGE] and not run[_IMAGE_REMOVED] else ""
            out[run[_OUT]] = bang + "[" * (run[_TOTAL] - run[_REMOVED])
        return "".join(out)

    def _code_span(self, start: int, end: int) -> int:
        length = end - start
        closing = self.ticks.closing(length, end)
        if closing < 0:
            self.out.append(self.text[start:end])
            return end
        code = self.text[end:closing]
        if len(code) >= 2 and code[0] == " " and code[-1] == " " and code.strip(" "):
            code = code[1:-1]
        self.out.append(code)
        return closing + length

    def _emphasis(self, token: str, start: int, end: int) -> None:
        text = self.text
        char = token[0]
        before = _char_kind(text[start - 1]) if start > 0 else _SPACE
        after = _char_kind(text[end]) if end < len(text) else _SPACE
        can_open, can_close = _FLANKING[char][before][after]
        out = self.out
        position = len(out)
        out.append(token)
        remaining = end - start
        stack = self.openers[char]
        if can_close and stack:
            while remaining and stack:
                opener = stack[-1]
                left_over = len(out[opener])
                if left_over <= remaining:
                    out[opener] = ""
                    remaining -= left_over
                    stack.pop()
                else:
                    out[opener] = char * (left_over - remaining)
                    remaining = 0
            out[position] = char * remaining if remaining else ""
        if remaining and can_open:
            stack.append(position)

    def _close_brackets(self, start: int, end: int) -> int:
        """A run of `]`: each closes the nearest open `[`; the last one may be followed
        by a link destination or label. Returns where reading goes on."""
        brackets, out = self.brackets, self.out
        at = start
        if not self.refs and end - start > 1:
            need = end - 1 - start  # all but the last close brackets as plain text
            while need and brackets:
                run = brackets[-1]
                taken = min(run[_OPEN], need)
                run[_OPEN] -= taken
                need -= taken
                if not run[_OPEN]:
                    brackets.pop()
            out.append("]" * (end - 1 - start))
            at = end - 1
        while at < end:
            if not brackets:
                out.append("]" * (end - at))
                return end
            run = brackets[-1]
            run[_OPEN] -= 1
            opened = run[_FIRST] + run[_OPEN]
            if not run[_OPEN]:
                brackets.pop()
            resume = self._link_tail(at + 1) if at == end - 1 else -1
            if resume < 0 and self.refs and self._is_reference(opened, at):
                resume = at + 1
            if resume < 0:
                out.append("]")
                at += 1
                continue
            # A link: its text (an image: its alt text) stays, the brackets go.
            if run[_REMOVED] == 0:
                self.linked.append(run)
            run[_REMOVED] += 1
            if run[_IMAGE] and opened == run[_FIRST]:
                run[_IMAGE_REMOVED] = True
            if at == end - 1:
                return resume
            at += 1
        return end

    def _is_reference(self, opened: int, closed: int) -> bool:
        """Whether `[label]` from `opened` to `closed` names a reference definition."""
        text = self.text
        if not 0 < closed - opened - 1 <= _LABEL_MAX:
            return False
        if text.find("[", opened + 1, closed) >= 0 or text.find("]", opened + 1, closed) >= 0:
            return False
        return _label_key(text[opened + 1 : closed]) in self.refs

    def _link_tail(self, at: int) -> int:
        """Where reading goes on after `(destination)` or `[label]` at `at`, else -1."""
        text = self.text
        if text.startswith("(", at):
            close = self.close_paren.at(at + 1)
            if close < 0:
                return -1
            nested = self.open_paren.at(at + 1)
            if 0 <= nested < close:  # one level of parentheses: wiki/Foo_(bar)
                close = self.second_close.at(close + 1)
                if close < 0:
                    return -1
            return close + 1
        if text.startswith("[", at):
            close = self.close_bracket.at(at + 1)
            if close < 0 or close - at > _LABEL_MAX + 1:
                return -1
            inner = self.open_bracket.at(at + 1)
            if 0 <= inner < close:
                return -1
            return close + 1
        return -1

    def _angle(self, start: int, end: int) -> int:
        """A run of `<`: only the last can open a tag, comment or autolink."""
        text, out = self.text, self.out
        if end - start > 1:
            out.append("<" * (end - 1 - start))
        at = end - 1
        if text.startswith("<!--", at):
            close = self.comment_end.at(at + 4)
            if close >= 0:
                return close + 3
        close = self.close_angle.at(at + 1)
        following = self.open_angle.at(at + 1)
        if close < 0 or 0 <= following < close:
            out.append("<")
            return end
        inner = text[at + 1 : close]
        if _AUTOLINK.fullmatch(inner) or _EMAIL.fullmatch(inner):
            out.append(inner)
            return close + 1
        tag = _TAG.fullmatch(inner)
        name = (tag.group(1) or "").lower() if tag is not None else ""
        if tag is None or (name and name not in _HTML_TAGS and "-" not in name):
            out.append("<")
            return end
        if name == "br":
            out.append(" ")
        return close + 1
