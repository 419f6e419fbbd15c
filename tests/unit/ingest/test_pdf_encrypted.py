"""PDFs with an owner password only (they open without one; printing and copying are
restricted) parse like plain ones, whichever standard security handler encrypted them;
a PDF that needs a user password still fails, saying so."""

from __future__ import annotations

import io
import logging

import pytest
from pdfminer.high_level import extract_text
from pdfminer.pdfdocument import PDFEncryptionError

from core.errors import StageFailed
from ingest.parse import UnstructuredParser
from ingest.sniff import PDF, sniff_media_type
from tests.utils.encrypted_pdf import MIXED_VARIANTS, VARIANTS, owner_locked_pdf, user_locked_pdf

pytestmark = pytest.mark.unit

PAGES = [
    f"Page {n} of the archive report: the {topic} budget was approved in {year}."
    for n, (topic, year) in enumerate(
        [("harbour", 2011), ("library", 2013), ("bridge", 2017), ("school", 2019), ("park", 2023)],
        start=1,
    )
]


@pytest.fixture(scope="module")
def parser() -> UnstructuredParser:
    return UnstructuredParser()


@pytest.mark.parametrize("variant", VARIANTS)
def test_owner_password_only_pdf_parses_every_page(
    parser: UnstructuredParser, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = owner_locked_pdf(PAGES, variant)
    assert b"/Encrypt" in data and sniff_media_type(data, "report.pdf") == PDF
    with caplog.at_level(logging.INFO, logger="ingest.parse"):
        pieces = parser.parse(data, media_type=PDF, filename="report.pdf")
    assert [(p.metadata["page_number"], p.text) for p in pieces] == list(enumerate(PAGES, start=1))
    assert {p.metadata["language"] for p in pieces} == {"en"}
    assert "report.pdf: decrypted a PDF with an owner password only" in caplog.text


@pytest.mark.parametrize("variant", MIXED_VARIANTS)
def test_mixed_crypt_filter_variants_are_beyond_pdfminer_alone(variant: str) -> None:
    """What makes the fixtures worth having: without decrypting first, unstructured's
    PDF reader gets nothing out of them ("no extractable text"), as in the field report."""
    with pytest.raises(PDFEncryptionError, match="Unsupported crypt filter"):
        extract_text(io.BytesIO(owner_locked_pdf(PAGES, variant)))


def test_pdf_needing_a_user_password_still_fails(parser: UnstructuredParser) -> None:
    with pytest.raises(StageFailed) as caught:
        parser.parse(user_locked_pdf(PAGES), media_type=PDF, filename="locked.pdf")
    assert caught.value.permanent is True
    assert caught.value.message == (
        "parse failed for 'locked.pdf': the PDF is password-protected; upload an unencrypted copy"
    )
