"""The parser in worker processes: same output, bounded time and memory, and a crash
costs one document, not the service."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.errors import StageFailed, UnsupportedType
from ingest.isolate import IsolatedParser
from ingest.parse import UnstructuredParser
from ingest.sniff import CSV, DOCX, HTML, MARKDOWN, PDF, PPTX, TEXT, XLSX
from tests.utils import hostile
from tests.utils.corpus import (
    make_docx,
    make_html,
    make_md,
    make_pdf,
    make_pptx,
    make_text,
    make_xlsx,
)

pytestmark = pytest.mark.unit

PARAGRAPHS = [
    "A colony has one queen and thousands of workers that share the labour.",
    "# Foraging",
    "Workers visit flowers and carry nectar back to the hive in their honey stomachs.",
]
SAMPLES = [
    ("bees.pdf", PDF, make_pdf(["# Honeybees\n\n" + "\n\n".join(PARAGRAPHS)] * 3)),
    ("bees.docx", DOCX, make_docx("Honeybees", PARAGRAPHS * 5)),
    ("bees.pptx", PPTX, make_pptx([("Honeybees", PARAGRAPHS[0]), ("Foraging", PARAGRAPHS[2])])),
    ("bees.xlsx", XLSX, make_xlsx({"Hives": [["Hive", "Bees"], ["North", 40000]]})),
    ("bees.html", HTML, make_html("Honeybees", PARAGRAPHS * 5)),
    ("bees.md", MARKDOWN, make_md("Honeybees", PARAGRAPHS * 5)),
    ("bees.txt", TEXT, make_text("Honeybees", PARAGRAPHS * 5)),
]
GOOD = SAMPLES[0]


@pytest.fixture(scope="module")
def isolated() -> Iterator[IsolatedParser]:
    parser = IsolatedParser(timeout_s=20, memory_limit_mb=256, parse_function=CRASHING)
    parser.warm_up()
    yield parser
    parser.close()


CRASHING = "tests.utils.hostile:crashing_parse"


def _parse_good(parser: IsolatedParser) -> None:
    name, media_type, data = GOOD
    assert parser.parse(data, media_type=media_type, filename=name)[0].text == "Honeybees"


def test_same_pieces_as_in_process_and_overhead(isolated: IsolatedParser) -> None:
    local = UnstructuredParser()
    local.warm_up()
    assert isolated.config == local.config
    timings = {"in-process": 0.0, "isolated": 0.0}
    rounds = 5
    for _ in range(rounds):
        for name, media_type, data in SAMPLES:
            started = time.perf_counter()
            expected = local.parse(data, media_type=media_type, filename=name)
            timings["in-process"] += time.perf_counter() - started
            started = time.perf_counter()
            got = isolated.parse(data, media_type=media_type, filename=name)
            timings["isolated"] += time.perf_counter() - started
            assert got == expected
    per_doc = {k: v * 1000 / (rounds * len(SAMPLES)) for k, v in timings.items()}
    print(f"\nms per document: {per_doc}")
    assert per_doc["isolated"] < per_doc["in-process"] + 20


def test_errors_cross_the_process_boundary(isolated: IsolatedParser) -> None:
    with pytest.raises(StageFailed) as caught:
        isolated.parse(hostile.truncated_pdf(), media_type=PDF, filename="broken.pdf")
    assert caught.value.message == (
        "parse failed for 'broken.pdf': not a valid PDF (file is truncated or corrupt)"
    )
    assert (caught.value.stage, caught.value.document, caught.value.permanent) == (
        "parse",
        "broken.pdf",
        True,
    )
    with pytest.raises(UnsupportedType, match="no parser for 'image/png'"):
        isolated.parse(b"\x89PNG", media_type="image/png", filename="a.png")
    _parse_good(isolated)


def test_crash_fails_one_document(isolated: IsolatedParser) -> None:
    with pytest.raises(StageFailed) as caught:
        isolated.parse(b"CRASH now", media_type=TEXT, filename="crash.txt")
    assert caught.value.message == "parse failed for 'crash.txt': parser crashed (signal 11)"
    assert caught.value.permanent is True
    started = time.perf_counter()
    _parse_good(isolated)
    assert time.perf_counter() - started < 5  # a fresh fork of the warm server


def test_timeout_then_recovery() -> None:
    # A file that makes the parser hang (every real format now parses a 5 MB line in
    # well under a second, so the hang is simulated in the worker).
    parser = IsolatedParser(timeout_s=0.5, parse_function="tests.utils.hostile:hanging_parse")
    parser.warm_up()
    try:
        with pytest.raises(StageFailed) as caught:
            parser.parse(b"HANG" + hostile.long_line_text(), media_type=TEXT, filename="long.txt")
        assert caught.value.message == "parse failed for 'long.txt': parsing took longer than 0.5 s"
        _parse_good(parser)
    finally:
        parser.close()


def test_memory_limit_then_recovery() -> None:
    parser = IsolatedParser(memory_limit_mb=32)
    try:
        with pytest.raises(StageFailed) as caught:
            parser.parse(hostile.huge_csv(), media_type=CSV, filename="big.csv")
        assert caught.value.message == (
            "parse failed for 'big.csv': parser exceeded the 32 MiB memory limit"
        )
        _parse_good(parser)
    finally:
        parser.close()


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s > 0"):
        IsolatedParser(timeout_s=0)
