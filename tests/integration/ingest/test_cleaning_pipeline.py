"""A real multi-page PDF through the real parser, cleaning stages, chunker and embedder:
running headers and page footers never reach a chunk, and the report counts them."""

import re

import pytest

from api.runtime import Runtime
from ingest.config import CleaningConfig, IngestionConfig
from ingest.pipeline import build_pipeline
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_pdf

pytestmark = pytest.mark.integration

HEADER = "ACME Corp — Confidential"
TOPICS = ["basalt", "pumice", "obsidian"]
# Pages 4 and 5 reprint one report with a single word changed: a near-duplicate chunk.
REPRINT = (
    "The survey team measured the lava flow every morning for three weeks and logged its "
    "speed, temperature and thickness at twelve stations along the valley floor. Flow "
    "speed fell from forty metres an hour to under two as the front cooled and a crust "
    "formed, while the thickness at the lower stations doubled. The team recommends that "
    "the road stay closed until the front has been {state} for ten days and the crust "
    "can carry survey vehicles without breaking through to the molten core below."
)


def page(number: int, total: int, body: list[str]) -> str:
    # make_pdf joins single newlines into one paragraph; blank lines make separate lines
    return "\n\n".join([HEADER, *body, f"Page {number} of {total}"])


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(make_settings(tmp_path / "data", workers=0), components=SHARED_COMPONENTS)
    yield runtime
    runtime.close()


@pytest.fixture
def pdf() -> bytes:
    pages = [
        page(
            n + 1,
            5,
            [
                f"# Notes on {topic}",
                f"Field notes on {topic}: samples were taken from the northern rim and "
                f"stored in sealed bags for the laboratory.",
            ],
        )
        for n, topic in enumerate(TOPICS)
    ]
    pages.append(page(4, 5, [REPRINT.format(state="still")]))
    pages.append(page(5, 5, [REPRINT.format(state="stationary")]))
    return make_pdf(pages)


def run(rt, embedder, pdf: bytes, **cleaning):  # type: ignore[no-untyped-def]
    # not merged(): it reads None as "unchanged", and None switches near-dedupe off
    config = IngestionConfig.defaults(rt.settings).model_copy(
        update={"cleaning": CleaningConfig(**cleaning)}
    )
    pipeline = build_pipeline(
        config, embedder=embedder, cache=None, redactor_factory=rt.redactor, parser=rt.parser()
    )
    return pipeline.run(pdf, media_type="application/pdf", filename="report.pdf")


def test_running_header_and_footer_never_reach_a_chunk(rt, embedder, pdf):
    result = run(rt, embedder, pdf)
    text = "\n".join(chunk.text for chunk in result.chunks)
    assert "ACME" not in text and "Confidential" not in text
    assert not re.search(r"Page \d of \d", text)
    assert all(chunk.metadata.get("section") != HEADER for chunk in result.chunks)
    for topic in TOPICS:
        assert f"Field notes on {topic}" in text
    assert "logged its speed" in text
    assert all(chunk.embedding is not None for chunk in result.chunks)
    counts = result.report.counts
    assert counts["boilerplate"]["repeated_lines_removed"] == 10
    assert counts["near_dedupe"] == {"near_duplicate_chunks_removed": 1}
    assert text.count("The survey team measured") == 1


def test_switched_off_cleaning_keeps_furniture_and_near_duplicates(rt, embedder, pdf):
    result = run(rt, embedder, pdf, remove_boilerplate=False, near_duplicate_threshold=None)
    text = "\n".join(chunk.text for chunk in result.chunks)
    assert HEADER in text and "Page 5 of 5" in text
    assert text.count("The survey team measured") == 2
    assert "boilerplate" not in result.report.counts
    assert "near_dedupe" not in result.report.counts
