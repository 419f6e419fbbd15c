import pytest

from core.types import Piece, StageReport
from ingest.clean import Cleaner, ExactDeduplicator, normalise_text

pytestmark = pytest.mark.unit


def test_normalise_text_folds_unicode_and_whitespace():
    raw = "  Ｆｕｌｌ\u00a0width\t\ttext\u200b here \r\n\r\n\r\n\nnext\x07 para  "
    assert normalise_text(raw) == "Full width text here\n\nnext para"


def test_cleaner_drops_empty_elements_and_keeps_metadata():
    report = StageReport()
    out = Cleaner()(
        [Piece(" \u200b ", {"page_number": 1}), Piece(" a  b ", {"page_number": 2})], report
    )
    assert [(p.text, p.metadata["page_number"]) for p in out] == [("a b", 2)]
    assert report.counts["clean"]["empty_elements_dropped"] == 1


def test_deduplicator_removes_exact_repeats_case_and_space_insensitively():
    report = StageReport()
    pieces = [
        Piece("Confidential notice."),
        Piece("Volcanoes erupt."),
        Piece("confidential   NOTICE."),
        Piece("Volcanoes erupt again."),
    ]
    out = ExactDeduplicator()(pieces, report)
    assert [p.text for p in out] == [
        "Confidential notice.",
        "Volcanoes erupt.",
        "Volcanoes erupt again.",
    ]
    assert report.counts["dedupe"]["duplicate_chunks_removed"] == 1
