from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from core.types import Piece, StageReport
from ingest.clean import (
    Cleaner,
    ExactDeduplicator,
    HeaderFooterRemover,
    NearDuplicateRemover,
    normalise_text,
)
from ingest.config import ChunkingConfig, CleaningConfig, IngestionConfig, RedactionConfig
from ingest.pipeline import STAGE_STATUS, build_pipeline

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


# --- boilerplate: running headers, footers, page numbers -------------------------------

BODY = [
    "Magma rises through the crust and pools in a chamber below the volcano.",
    "Basalt lava flows far because it is runny and low in silica.",
    "Ash clouds ground aircraft when an eruption reaches the stratosphere.",
    "Geysers erupt when groundwater meets rock heated by shallow magma.",
    "Calderas form when the roof of an emptied magma chamber collapses.",
    "Pillow lava forms where eruptions meet the sea and cool at once.",
    "Volcanic soils are fertile, so farms crowd the slopes of active cones.",
    "Seismometers pick up the tremor that often comes before an eruption.",
    "Obsidian is volcanic glass that cooled too fast to grow crystals.",
    "Lahars are mudflows of ash and water that race down river valleys.",
]


def paged(pages: list[list[str]], category: str = "NarrativeText") -> list[Piece]:
    return [
        Piece(text, {"page_number": n, "category": category})
        for n, lines in enumerate(pages, start=1)
        for text in lines
    ]


def test_running_header_and_page_footer_are_removed_from_a_five_page_document():
    pages = [
        ["ACME Corp — Confidential", BODY[i], BODY[i + 5], f"Page {i + 1} of 5"] for i in range(5)
    ]
    report = StageReport()
    out = HeaderFooterRemover()(paged(pages), report)
    assert [p.text for p in out] == [BODY[i + k] for i in range(5) for k in (0, 5)]
    assert report.counts["boilerplate"] == {"repeated_lines_removed": 10}


def test_page_numbers_match_with_different_digits_and_lines_inside_elements():
    # The header shares an element with body text, as pdfminer often merges them.
    pages = [[f"acme  CORP — confidential\n{BODY[i]}", f"- {i + 7} -"] for i in range(10)]
    report = StageReport()
    out = HeaderFooterRemover()(paged(pages), report)
    assert [p.text for p in out] == BODY
    assert [p.metadata["page_number"] for p in out] == list(range(1, 11))
    assert report.counts["boilerplate"]["repeated_lines_removed"] == 20


def test_single_page_and_unpaged_documents_are_untouched():
    one_page = paged([["ACME Corp — Confidential", BODY[0], "Page 1 of 1"]])
    unpaged = [Piece("Page 1 of 1"), Piece(BODY[0]), Piece("Page 1 of 1")]
    for pieces in (one_page, unpaged):
        report = StageReport()
        out = HeaderFooterRemover()(pieces, report)
        assert [p.text for p in out] == [p.text for p in pieces]
        assert report.counts == {}


def test_body_line_repeated_on_two_of_ten_pages_is_kept():
    pages = [[BODY[i]] for i in range(10)]
    pages[2].insert(0, "See the safety appendix.")
    pages[7].append("See the safety appendix.")
    out = HeaderFooterRemover()(paged(pages), StageReport())
    assert [p.text for p in out].count("See the safety appendix.") == 2


def test_long_repeated_lines_and_lines_away_from_page_edges_are_kept():
    notice = " ".join(["This report is provided for information only"] * 3)  # 21 words
    see_map = "Refer to the map."
    words = "basalt pumice tuff andesite rhyolite dacite scoria obsidian".split()
    pages = [
        [notice, BODY[i], f"On {words[2 * i]}.", see_map]
        + [f"On {words[2 * i + 1]}.", BODY[i + 4], see_map]
        for i in range(4)
    ]
    report = StageReport()
    out = HeaderFooterRemover()(paged(pages), report)
    # the last-line copies are furniture; the mid-page ones (4th of 7 lines) are content
    assert [p.text for p in out] == [line for page in pages for line in page[:-1]]
    assert report.counts["boilerplate"] == {"repeated_lines_removed": 4}


def test_unstructured_header_footer_and_page_number_elements_are_dropped():
    pieces = [
        Piece("Quarterly report", {"page_number": 1, "category": "Header"}),
        Piece(BODY[0], {"page_number": 1, "category": "NarrativeText"}),
        Piece("3", {"page_number": 1, "category": "PageNumber"}),
        Piece("Printed 2024-01-01", {"page_number": 1, "category": "Footer"}),
    ]
    report = StageReport()
    out = HeaderFooterRemover()(pieces, report)
    assert [p.text for p in out] == [BODY[0]]
    assert report.counts["boilerplate"] == {"header_footer_removed": 3}


def test_removed_title_header_is_no_longer_the_section_of_what_follows():
    # unstructured often classifies a running header as a Title, so it becomes `section`
    pieces = [
        Piece("ACME Corp", {"page_number": 1, "category": "Title", "section": "ACME Corp"}),
        Piece("Lava", {"page_number": 1, "category": "Title", "section": "Lava"}),
        Piece(BODY[1], {"page_number": 1, "section": "Lava"}),
    ]
    for n in (2, 3):
        pieces.append(Piece("ACME Corp", {"page_number": n, "category": "Title"}))
        pieces.append(Piece(BODY[n], {"page_number": n, "section": "ACME Corp"}))
    out = HeaderFooterRemover()(pieces, StageReport())
    assert [p.text for p in out] == ["Lava", BODY[1], BODY[2], BODY[3]]
    assert [p.metadata["section"] for p in out] == ["Lava"] * 4


# --- near-duplicate chunks ----------------------------------------------------------------

LONG = " ".join(BODY)  # ~120 words, the size of a default chunk
RU = (
    "Магма поднимается сквозь земную кору и скапливается в очаге под вулканом. "
    "Базальтовая лава течёт далеко, потому что она жидкая и бедна кремнезёмом. "
    "Облака пепла останавливают самолёты, когда извержение достигает стратосферы. "
    "Гейзеры извергаются, когда подземные воды встречают породу, нагретую магмой. "
    "Кальдеры образуются, когда кровля опустевшего магматического очага обрушивается. "
    "Подушечная лава образуется там, где извержение встречает море и сразу остывает. "
    "Вулканические почвы плодородны, поэтому фермы теснятся на склонах активных конусов."
)


def test_chunk_differing_by_one_word_is_removed_and_the_first_kept():
    edited = LONG.replace("fertile", "rich")
    assert edited != LONG
    pieces = [Piece(LONG, {"position": 0}), Piece(BODY[0]), Piece(edited, {"position": 2})]
    report = StageReport()
    out = NearDuplicateRemover()(pieces, report)
    assert [p.text for p in out] == [LONG, BODY[0]]
    assert out[0].metadata == {"position": 0}
    assert report.counts["near_dedupe"] == {"near_duplicate_chunks_removed": 1}


def test_russian_near_duplicate_is_removed():
    edited = RU.replace("плодородны", "богаты").replace("Магма", "МАГМА")
    report = StageReport()
    out = NearDuplicateRemover()([Piece(RU), Piece(edited)], report)
    assert [p.text for p in out] == [RU]
    assert report.counts["near_dedupe"]["near_duplicate_chunks_removed"] == 1


def test_distinct_chunks_and_short_overlaps_are_kept():
    pieces = [Piece(text) for text in BODY] + [Piece(RU), Piece(LONG)]
    # half of LONG is shared: similar, but well below 0.9
    pieces.append(Piece(" ".join(BODY[:5]) + " " + " ".join(reversed(BODY[5:]))))
    report = StageReport()
    out = NearDuplicateRemover()(pieces, report)
    assert out == pieces
    assert report.counts == {}


def test_near_dedupe_is_deterministic_and_validates_its_threshold():
    pieces = [Piece(LONG.replace("fertile", w)) for w in ("rich", "good", "poor", "fine")]
    kept = [[p.text for p in NearDuplicateRemover(0.8)(pieces, StageReport())] for _ in range(3)]
    assert kept[0] == kept[1] == kept[2] == [pieces[0].text]
    exact_only = NearDuplicateRemover(1.0)
    assert len(exact_only([Piece(LONG), Piece(LONG + " more")], StageReport())) == 2
    assert len(exact_only([Piece(LONG), Piece(LONG.upper())], StageReport())) == 1
    with pytest.raises(ValueError, match="between 0.5 and 1.0"):
        NearDuplicateRemover(0.3)


# --- config and wiring ---------------------------------------------------------------------


def test_cleaning_config_defaults_and_threshold_validation():
    config = CleaningConfig()
    assert config.remove_boilerplate is True and config.near_duplicate_threshold == 0.9
    assert CleaningConfig(near_duplicate_threshold=None).near_duplicate_threshold is None
    for bad in (0.2, 1.5):
        with pytest.raises(ValidationError, match=r"near_duplicate_threshold must be between"):
            CleaningConfig(near_duplicate_threshold=bad)


def stage_names(**cleaning: object) -> list[str]:
    config = IngestionConfig(
        chunking=ChunkingConfig(chunk_size=100, chunk_overlap=10),
        redaction=RedactionConfig(enabled=False),
        embedding_model="all-MiniLM-L6-v2",
        cleaning=CleaningConfig(**cleaning),
    )
    embedder = SimpleNamespace(tokenize=str.split, max_tokens=256)
    pipeline = build_pipeline(
        config, embedder=embedder, cache=None, redactor_factory=None, parser=object()
    )
    return [stage.name for stage in pipeline.stages]


def test_build_pipeline_places_and_toggles_the_cleaning_stages():
    assert stage_names() == ["clean", "boilerplate", "chunk", "dedupe", "near_dedupe", "embed"]
    assert stage_names(remove_boilerplate=False, near_duplicate_threshold=None) == [
        "clean",
        "chunk",
        "dedupe",
        "embed",
    ]
    # keeping duplicates keeps near-duplicates too (near-dedupe would drop exact repeats)
    assert stage_names(drop_duplicate_chunks=False) == ["clean", "boilerplate", "chunk", "embed"]
    assert set(stage_names()) <= set(STAGE_STATUS) | {"parse"}
