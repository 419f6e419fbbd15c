"""Readers for the formats unstructured handles poorly or only through a system binary.

- XLSX and CSV: unstructured flattens a whole sheet into one space-joined string (plus an
  HTML copy of it), losing which value belongs to which column. Here each row becomes a
  `Header: value; Header: value` line, rows grouped into blocks of about
  `_BLOCK_CHARS`, read as a stream (openpyxl read-only, the csv module), so a large
  sheet costs memory proportional to its text.
- JSON: unstructured's `partition_json` reads only its own element dumps; any other JSON
  becomes `path: value` lines, one block per top-level member.
- ODT: unstructured needs pandoc; `content.xml` is small, well-defined XML, converted to
  HTML here (headings stay headings) and partitioned like any page.
- RTF: unstructured needs pandoc (whose Debian build has no RTF reader); `striprtf` (pure
  Python) yields the text, which is partitioned like plain text.

Every reader returns `Piece`s carrying `category`, `page_number` and `section`, like the
unstructured path, or the converted text for the caller to partition.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from core.types import Piece

# Rows (or JSON lines) are joined into blocks of about this many characters: small
# enough to cite, large enough that a million-row CSV is not a million Python objects.
_BLOCK_CHARS = 2000
# CSV cells above this are refused (the csv module default is 128 KiB).
_CSV_FIELD_LIMIT = 1024 * 1024
_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


class FormatError(ValueError):
    """The bytes are not a readable document of the format; the message is the reason."""


def read_xlsx(data: bytes) -> list[Piece]:
    """One block of rows after another, sheet by sheet; `page_number` is the 1-based sheet
    index and `section`/`sheet_name` its name. Formulas give their cached values."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise FormatError(f"not a valid XLSX file ({type(exc).__name__}: {exc})") from exc
    pieces: list[Piece] = []
    try:
        for index, sheet in enumerate(book.worksheets, start=1):
            rows = (_cells(row) for row in sheet.iter_rows(values_only=True))
            meta = {"page_number": index, "section": sheet.title, "sheet_name": sheet.title}
            pieces += _row_blocks(rows, meta)
    finally:
        book.close()
    return pieces


def read_csv(text: str) -> list[Piece]:
    """Rows as `Header: value` lines in blocks; the dialect is sniffed from the head."""
    sample = text[: 64 * 1024]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        return _row_blocks(([c.strip() for c in row] for row in reader), {"page_number": None})
    except csv.Error as exc:
        raise FormatError(f"malformed CSV at line {reader.line_num} ({exc})") from exc


def _cells(row: Iterable[Any]) -> list[str]:
    out = []
    for value in row:
        if value is None:
            out.append("")
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        elif isinstance(value, dt.datetime) and value.time() == dt.time():
            out.append(value.date().isoformat())
        else:
            out.append(str(value).strip())
    return out


def _row_blocks(rows: Iterator[list[str]], meta: dict[str, Any]) -> list[Piece]:
    """The first non-empty row is the header when there are at least two columns."""
    pieces: list[Piece] = []
    header: list[str] | None = None
    block: list[str] = []
    size = 0
    first_row = last_row = 0

    def flush() -> None:
        nonlocal block, size
        if block:
            pieces.append(
                Piece(
                    text="\n".join(block),
                    metadata={
                        "category": "Table",
                        "section": None,
                        **meta,
                        "rows": [first_row, last_row],
                    },
                )
            )
        block, size = [], 0

    for number, row in enumerate(rows, start=1):
        while row and not row[-1]:
            row.pop()
        if not any(row):
            continue
        if header is None:
            header = row
            if len(row) >= 2:
                continue  # labels the following rows
        if len(header) >= 2 and row is not header:
            line = "; ".join(
                f"{header[i] if i < len(header) and header[i] else f'Column {i + 1}'}: {value}"
                for i, value in enumerate(row)
                if value
            )
        else:
            line = " ".join(v for v in row if v)
        if not block:
            first_row = number
        block.append(line)
        last_row = number
        size += len(line) + 1
        if size >= _BLOCK_CHARS:
            flush()
    flush()
    if not pieces and header:  # a header row alone still says something
        first_row = last_row = 1
        block = [" ".join(v for v in header if v)]
        flush()
    return pieces


def read_json(text: str) -> list[Piece]:
    """`path: value` lines for every scalar, a block per top-level member (`section` is the
    member's key); arrays of records give one line group per record."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise FormatError("JSON is nested too deeply to read") from exc
    except ValueError as exc:
        raise FormatError(f"not valid JSON ({exc})") from exc
    if isinstance(value, dict):
        members: Iterable[tuple[str | None, str, Any]] = ((k, k, v) for k, v in value.items())
    elif isinstance(value, list):
        members = ((None, f"[{i}]", v) for i, v in enumerate(value))
    else:
        members = [(None, "", value)]
    pieces: list[Piece] = []
    for section, prefix, member in members:
        lines = [f"{path}: {leaf}" if path else leaf for path, leaf in _leaves(prefix, member)]
        for text_block in _blocks(lines):
            pieces.append(
                Piece(
                    text=text_block,
                    metadata={"category": "Text", "page_number": None, "section": section},
                )
            )
    return pieces


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    """Depth-first scalar leaves without recursion (json.loads already bounded depth)."""
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(
                (f"{path}.{key}" if path else str(key), child)
                for key, child in reversed(node.items())
            )
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(node))))
        elif node is None or node == "":
            continue
        else:
            leaf = json.dumps(node) if isinstance(node, bool) else str(node).strip()
            if leaf:
                yield path, leaf


def _blocks(lines: list[str]) -> Iterator[str]:
    block: list[str] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line) + 1
        if size >= _BLOCK_CHARS:
            yield "\n".join(block)
            block, size = [], 0
    if block:
        yield "\n".join(block)


def odt_to_html(data: bytes) -> str:
    """The body of an ODT's `content.xml` as simple HTML: `text:h` → `<hN>`, `text:p` →
    `<p>`, table cells → `<td>`. Entities are never expanded (no XML bombs) and no DTD or
    network access happens."""
    from lxml import etree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            content = archive.read("content.xml")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as exc:
        raise FormatError("not a valid ODT file (it is truncated or corrupt)") from exc
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise FormatError(f"not a valid ODT file (content.xml: {exc})") from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise FormatError("ODT content.xml declares a DTD; refusing possible XML entity bomb")
    out: list[str] = []
    heading = f"{{{_ODF_TEXT}}}h"
    paragraph = f"{{{_ODF_TEXT}}}p"
    cell = f"{{{_ODF_TABLE}}}table-cell"
    for element in root.iter(heading, paragraph):
        if any(a.tag == paragraph or a.tag == heading for a in element.iterancestors()):
            continue  # a paragraph in a frame inside a paragraph: the outer one has its text
        text = _odf_text(element)
        if not text:
            continue
        if element.tag == heading:
            level = _int(element.get(f"{{{_ODF_TEXT}}}outline-level"), 1, 6)
            out.append(f"<h{level}>{html.escape(text)}</h{level}>")
        elif any(a.tag == cell for a in element.iterancestors()):
            out.append(f"<table><tr><td>{html.escape(text)}</td></tr></table>")
        else:
            out.append(f"<p>{html.escape(text)}</p>")
    return "<html><body>\n" + "\n".join(out) + "\n</body></html>"


def _odf_text(element: Any) -> str:
    """Text of a paragraph, with `text:s` (spaces), `text:tab` and `text:line-break`; a
    footnote's body is left out (it would split the sentence it is anchored in)."""
    parts: list[str] = []

    def walk(node: Any) -> None:  # depth is bounded: libxml2 refuses trees over 256 deep
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag == f"{{{_ODF_TEXT}}}s":
            parts.append(" " * _int(node.get(f"{{{_ODF_TEXT}}}c"), 1, 100))
        elif tag in (f"{{{_ODF_TEXT}}}tab", f"{{{_ODF_TEXT}}}line-break"):
            parts.append(" ")
        elif tag != f"{{{_ODF_TEXT}}}note":
            parts.append(node.text or "")
            for child in node:
                walk(child)
        if node is not element:
            parts.append(node.tail or "")

    walk(element)
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def _int(value: str | None, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(value or low)))
    except ValueError:
        return low


def rtf_to_text(data: bytes) -> str:
    """Plain text of an RTF file; `\\uN` escapes and the `\\ansicpg` code page are honoured,
    so Cyrillic and accented text survive."""
    from striprtf.striprtf import rtf_to_text as strip

    head = data[:4096].decode("latin-1")
    match = re.search(r"\\ansicpg(\d+)", head)
    encoding = f"cp{match.group(1)}" if match else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    try:
        text = strip(data.decode("latin-1"), encoding=encoding, errors="replace")
    except Exception as exc:  # striprtf raises bare errors on malformed groups
        raise FormatError(f"not a valid RTF file ({type(exc).__name__}: {exc})") from exc
    # striprtf keeps paragraph marks as single newlines; a blank line separates paragraphs.
    return re.sub(r"\n[ \t]*", "\n\n", text.strip())
