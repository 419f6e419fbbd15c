"""Hostile and broken uploads, through what production runs: the content sniffer (upload
time), the archive expander, then the isolated parser (ingest time). Each must fail
alone, fast, with a precise reason, or parse in bounded time."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from core.errors import ArchiveRejected, EmptyFile, RagopsError, StageFailed, UnsupportedType
from ingest.archive import ArchiveLimits, expand_archive
from ingest.isolate import IsolatedParser
from ingest.sniff import DOCX, ZIP, sniff_media_type
from tests.utils import hostile
from tests.utils.corpus import make_docx, make_pdf

pytestmark = pytest.mark.unit

# Wall-clock bound for anything that parses: the 5 MB line takes ~1.5 s on 2 cores.
BOUND_S = 15.0


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    error: type[RagopsError] | None  # None: must parse
    # The exact message (or, for bombs, built from the archive: sizes depend on zlib's
    # version); for parsed files a text the pieces contain.
    reason: str | Callable[[bytes], str]


def _bomb_reason(name: str, member: str, limit: int) -> Callable[[bytes], str]:
    def reason(data: bytes) -> str:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(member)
        ratio = info.file_size / info.compress_size
        return (
            f"{name}: member {member!r} expands {ratio:.0f}:1 ({info.compress_size} -> "
            f"{info.file_size} bytes; limit {limit}:1), which looks like a ZIP bomb"
        )

    return reason


CASES = [
    Hostile(
        "empty.txt",
        lambda: b"",
        EmptyFile,
        "empty.txt: file is empty; upload a document with some text",
    ),
    Hostile(
        "junk.pdf",
        hostile.junk,
        UnsupportedType,
        "junk.pdf: unsupported content type (detected binary data); supported: PDF, DOCX, "
        "PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, JSON, EML, MSG",
    ),
    Hostile("report.txt", lambda: make_pdf(["A PDF named as text."]), None, "A PDF named as text."),
    Hostile(
        "locked.pdf",
        hostile.encrypted_pdf,
        StageFailed,
        "parse failed for 'locked.pdf': the PDF is password-protected; upload an unencrypted copy",
    ),
    Hostile(
        "truncated.pdf",
        hostile.truncated_pdf,
        StageFailed,
        "parse failed for 'truncated.pdf': not a valid PDF (file is truncated or corrupt)",
    ),
    Hostile(
        "truncated.docx",
        lambda: make_docx("Bees", ["Workers collect nectar."])[:3000],
        UnsupportedType,
        "truncated.docx: unsupported content type (detected a damaged or truncated ZIP/Office "
        "file); supported: PDF, DOCX, PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, "
        "JSON, EML, MSG",
    ),
    Hostile("long-line.txt", hostile.long_line_text, None, "lorem"),
    Hostile(
        "deep.html",
        hostile.deep_html,
        StageFailed,
        "parse failed for 'deep.html': HTML is nested more than 256 elements deep, which the "
        "HTML parser refuses",
    ),
    Hostile(
        "deep.json",
        hostile.deep_json,
        UnsupportedType,
        "deep.json: unsupported content type (detected JSON nested too deeply to read); "
        "supported: PDF, DOCX, PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, JSON, "
        "EML, MSG",
    ),
    Hostile("huge.csv", hostile.huge_csv, None, "id: 199999; city: Казань; amount: 993"),
    Hostile(
        "bomb.docx",
        hostile.docx_bomb,
        ArchiveRejected,
        _bomb_reason("bomb.docx", "word/document.xml", 300),
    ),
    Hostile(
        "laughs.docx",
        hostile.billion_laughs_docx,
        ArchiveRejected,
        "laughs.docx: part 'word/document.xml' declares a DTD (<!DOCTYPE>/<!ENTITY>), which "
        "Office files never do; refusing a possible XML entity bomb",
    ),
    Hostile(
        "bomb.zip",
        hostile.zip_bomb,
        ArchiveRejected,
        _bomb_reason("bomb.zip", "zeros.txt", 100),
    ),
    Hostile(
        "nested.zip",
        lambda: hostile.nested_zip(3),
        ArchiveRejected,
        "nested.zip/level2.zip/level3.zip: archives nested more than 2 deep; unpack the "
        "inner archive and upload its files",
    ),
    Hostile(
        "evil.zip",
        hostile.traversal_zip,
        ArchiveRejected,
        "evil.zip: member name '../../etc/cron.d/evil' points outside the archive "
        "(absolute path or '..')",
    ),
]


@pytest.fixture(scope="module")
def parser() -> Iterator[IsolatedParser]:
    parser = IsolatedParser(timeout_s=BOUND_S, memory_limit_mb=512)
    parser.warm_up()
    yield parser
    parser.close()


def _ingest(parser: IsolatedParser, name: str, data: bytes) -> list:
    """Upload-time checks, then parsing, as the service runs them."""
    media_type = sniff_media_type(data, name, allow_archive=True)
    if media_type == ZIP:
        members = expand_archive(data, name, limits=ArchiveLimits())
        return [p for path, body in members for p in _ingest(parser, path, body)]
    return parser.parse(data, media_type=media_type, filename=name)


_RESULTS: list[tuple[str, int, str, float]] = []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile(parser: IsolatedParser, case: Hostile) -> None:
    data = case.build()
    started = time.perf_counter()
    if case.error is None:
        pieces = _ingest(parser, case.name, data)
        outcome = f"parsed: {len(pieces)} pieces, {sum(len(p.text) for p in pieces)} chars"
        assert any(case.reason in p.text for p in pieces)
    else:
        with pytest.raises(RagopsError) as caught:
            _ingest(parser, case.name, data)
        assert type(caught.value) is case.error
        reason = case.reason(data) if callable(case.reason) else case.reason
        assert caught.value.message == reason
        outcome = f"{caught.value.code}: {caught.value.message}"
    elapsed = time.perf_counter() - started
    _RESULTS.append((case.name, len(data), outcome, elapsed))
    assert elapsed < BOUND_S


def test_container_guards_also_run_at_parse_time(parser: IsolatedParser) -> None:
    """Bytes stored before the upload-time check existed reach the parser unchecked."""
    with pytest.raises(StageFailed) as caught:
        parser.parse(hostile.billion_laughs_docx(), media_type=DOCX, filename="old.docx")
    assert caught.value.message == (
        "parse failed for 'old.docx': DOCX: part 'word/document.xml' declares a DTD "
        "(<!DOCTYPE>/<!ENTITY>), which Office files never do; refusing a possible XML "
        "entity bomb"
    )


def test_parser_survives_the_hostile_set(parser: IsolatedParser) -> None:
    """Run with -s for the table. The same worker pool keeps parsing afterwards."""
    pieces = parser.parse(make_pdf(["Still here."]), media_type="application/pdf", filename="a")
    assert pieces[0].text == "Still here."
    print("\n| file | bytes | outcome | s |\n|---|---:|---|---:|")
    for name, size, outcome, elapsed in _RESULTS:
        print(f"| {name} | {size} | {outcome} | {elapsed:.2f} |")
