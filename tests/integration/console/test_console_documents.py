"""The console's documents work in a real browser (Debian's Chromium driven by
playwright) against a real `ragops serve` with redaction ON (the default policy:
Presidio with the packaged spaCy models for English and Spanish and natasha for
Russian): sign in; upload a ZIP holding an English, a Spanish and a Russian text file
that name a person and an e-mail address, and watch its members move through the
stages to indexed with the ingestion panel's queue, throughput and ETA; filter the list
by language, status, type, metadata and filename text; open a document: its revisions
with their stage reports, the redaction report (counts by entity type and language) and
its chunks as indexed, with the redacted text and without the e-mail address anywhere
in the page. No console errors, no failed or error responses, no outside requests.

Screenshots (the documents page with the ingestion panel, a document's page) are taken
in the test's temp dir; RAGOPS_CONSOLE_SCREENSHOTS=docs/console keeps them there.
"""

from __future__ import annotations

import io
import os
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils import console_browser
from tests.utils.console_browser import (
    ADMIN,
    HEIGHT,
    TIMEOUT_MS,
    WIDTH,
    Watch,
    keep_screenshots,
    shoot,
)
from tests.utils.corpus import make_pdf
from tests.utils.servers import ragops_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

browser = console_browser.browser

ENGLISH = (
    "The reading room opens at nine on weekdays. Ask John Smith at "
    "john.smith@example.com for the keys to the map archive."
)
SPANISH = (
    "La sala de lectura abre a las nueve de la mañana. Escriba a María García en "
    "maria.garcia@ejemplo.es para pedir las llaves del archivo de mapas."
)
RUSSIAN = (
    "Читальный зал открывается в девять часов утра. Пишите Ивану Петрову на "
    "ivan.petrov@example.ru по поводу ключей от архива карт."
)
SECRETS = (
    "john.smith@example.com",
    "maria.garcia@ejemplo.es",
    "ivan.petrov@example.ru",
    "María García",
    "John Smith",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`ragops serve` on a fresh data dir with the default redaction policy (on)."""
    tmp = tmp_path_factory.mktemp("console-documents-server")
    env = {"RAGOPS_REDACTION_ENABLED": "true", "RAGOPS_EMBEDDING_MODEL": "all-MiniLM-L6-v2"}
    with ragops_server(tmp, ADMIN, **env) as (_, url):
        yield url


def archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("en.txt", ENGLISH)
        z.writestr("es.txt", SPANISH)
        z.writestr("ru.txt", RUSSIAN)
    return buf.getvalue()


# Records every status each document row shows, as the list updates it.
RECORD_STATUSES = """() => {
    window.seenStatuses = {};
    const note = (tr) => {
        const name = tr.dataset.filename, status = tr.dataset.status;
        if (!name || !status) return;
        const seen = (window.seenStatuses[name] ||= []);
        if (!seen.includes(status)) seen.push(status);
    };
    new MutationObserver((records) => records.forEach((r) => {
        if (r.target.tagName === 'TR') note(r.target);
        r.addedNodes.forEach((n) => n.tagName === 'TR' && note(n));
    })).observe(document.querySelector('#doc-table tbody'),
        {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
}"""


def test_documents_ingestion_filters_and_document_page(browser, server, tmp_path):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    base = server
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        r = api.post("/v1/kbs", json={"name": "library", "embedding_model": "all-MiniLM-L6-v2"})
        assert r.status_code == 201, r.text
        # A broken PDF with upload metadata, through the API: a failed document to filter.
        r = api.post(
            "/v1/kbs/library/documents",
            files=[("files", ("broken.pdf", make_pdf(["cut off"])[:150], "application/pdf"))],
            data={"metadata": '{"team": "legal"}'},
        )
        assert r.status_code == 202, r.text

    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    page.goto(base + "/console/kbs/library")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("API key").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/console/kbs/library")
    broken = page.locator("#doc-table tr[data-filename='broken.pdf']")
    expect(broken).to_have_attribute("data-status", "failed", timeout=TIMEOUT_MS)

    # The ingestion panel, idle: nothing queued, one document failed for good.
    panel = page.locator("#ingestion")
    expect(panel.get_by_role("heading", name="Ingestion")).to_be_visible()
    expect(page.locator("#ingest-eta")).to_have_text("nothing queued")
    expect(page.locator("#ingest-dead")).to_have_text("1 document")

    # A ZIP through the file picker: each member becomes a document, watched to indexed.
    page.evaluate(RECORD_STATUSES)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose files").click()
    chooser.value.set_files(
        [{"name": "library.zip", "mimeType": "application/zip", "buffer": archive()}]
    )
    upload = page.locator("#uploads li[data-filename='library.zip']")
    expect(upload).to_have_attribute("data-result", "accepted")
    expect(upload).to_contain_text("3 documents from the archive: 3 queued")
    members = [f"library.zip/{n}" for n in ("en.txt", "es.txt", "ru.txt")]
    # On their way: the panel counts them as queued or in progress.
    expect(page.locator("#ingest-eta")).not_to_have_text("nothing queued")
    for name in members:
        row = page.locator(f"#doc-table tr[data-filename='{name}']")
        expect(row).to_have_attribute("data-status", "indexed", timeout=TIMEOUT_MS)
        expect(row.locator("progress.stage")).to_have_class(re.compile(r"\bidle\b"))
        expect(row.locator("td.redacted")).to_have_text("2")
        expect(row.locator("td.type")).to_have_text("text/plain")
    seen = page.evaluate("() => window.seenStatuses")
    for name in members:
        assert seen[name][-1] == "indexed", seen
        assert len(seen[name]) >= 2, f"{name} was only ever seen as {seen[name]}"
    expect(page.locator("#doc-counts")).to_have_text("4 documents: 3 indexed, 1 failed")
    expect(page.locator("#ingest-eta")).to_have_text("nothing queued")
    expect(page.locator("#ingest-queued")).to_have_text("0 documents")
    expect(page.locator("#ingest-hour")).to_contain_text("3 documents")
    expect(page.locator("#ingest-rate")).to_contain_text(re.compile(r"\d documents/min"))
    languages = {"en.txt": "en", "es.txt": "es", "ru.txt": "ru"}
    for name, lang in languages.items():
        row = page.locator(f"#doc-table tr[data-filename='library.zip/{name}']")
        expect(row.locator("td").nth(2)).to_have_text(lang)
    page.evaluate("() => document.getElementById('ingestion').scrollIntoView()")
    shoot(page, shots, "document-ingestion")

    rows = page.locator("#doc-table tbody tr")

    def only(*names: str) -> None:
        expect(rows).to_have_count(len(names))
        for name in names:
            expect(page.locator(f"#doc-table tr[data-filename='{name}']")).to_have_count(1)

    # Filters: each is a query to the list route; the URL keeps them.
    page.get_by_label("Language").select_option("es")
    only("library.zip/es.txt")
    expect(page.locator("#doc-counts")).to_contain_text("1 matching the filters")
    assert "language=es" in page.url
    page.get_by_label("Language").select_option("ru")
    only("library.zip/ru.txt")
    page.get_by_role("button", name="Clear filters").click()
    only("broken.pdf", *members)
    page.get_by_label("Status").select_option("failed")
    only("broken.pdf")
    expect(broken.locator(".reason")).to_contain_text("PDF")
    page.get_by_label("Status").select_option("indexed")
    only(*members)
    page.get_by_label("Filename contains").fill("ES.TXT")
    only("library.zip/es.txt")
    page.get_by_label("Filename contains").fill("nothing-like-this")
    only()
    expect(page.locator("#doc-empty")).to_have_text("No documents match these filters.")
    page.get_by_role("button", name="Clear filters").click()
    only("broken.pdf", *members)
    page.get_by_label("Type").select_option("application/pdf")
    only("broken.pdf")
    page.get_by_label("Type").select_option("")
    page.get_by_label("Metadata").fill("team=legal")
    only("broken.pdf")
    page.get_by_label("Metadata").fill("team=ops")
    only()
    expect(page.locator("#doc-empty")).to_be_visible()
    expect(page.locator("#doc-empty")).to_have_text("No documents match these filters.")
    # A filter survives a reload: it is in the URL.
    page.reload()
    expect(page.get_by_label("Metadata")).to_have_value("team=ops")
    expect(page.locator("#doc-empty")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    only("broken.pdf", *members)

    # One document's page: metadata, stages, redaction report, revisions, chunks.
    page.get_by_role("link", name="library.zip/es.txt").click()
    expect(page).to_have_url(re.compile(r"/console/kbs/library/documents/[0-9a-f]{32}$"))
    expect(page.get_by_role("heading", name="library.zip/es.txt")).to_be_visible()
    expect(page.locator("#doc-badge")).to_have_text("indexed")
    expect(page.locator("#doc-stages li[aria-current='step']")).to_have_text("indexed")
    expect(page.locator("#doc-stages li[data-state='done']")).to_have_count(7)
    facts = page.locator("#doc-facts")
    expect(facts).to_contain_text("Language")
    expect(facts.locator("dd").first).to_have_text("es")
    expect(facts).to_contain_text("text/plain")
    redaction = page.locator("#redaction-table")
    expect(page.locator("#redaction-meta")).to_have_text("2 spans replaced in revision 1.")
    expect(redaction.locator("thead th")).to_have_text(["Entity type", "es", "Total"])
    expect(redaction.locator("tr[data-entity='PERSON'] td")).to_have_text(["1", "1"])
    expect(redaction.locator("tr[data-entity='EMAIL_ADDRESS'] td")).to_have_text(["1", "1"])
    revision = page.locator("#revisions details[data-revision='1']")
    expect(revision).to_have_attribute("open", "")
    expect(revision.locator("summary")).to_contain_text("Revision 1")
    for stage in ("parse", "redact", "chunk", "embed", "index"):
        expect(revision.locator(f"tr[data-stage='{stage}']")).to_have_count(1)
    expect(revision.locator("tr[data-stage='redact'] td.counts-cell")).to_have_text(
        "EMAIL_ADDRESS 1 · PERSON 1"
    )
    expect(revision.locator("tr[data-stage='chunk'] td.num")).to_have_text(re.compile(r"\d\.\d{3}"))
    chunks = page.locator("#chunks li")
    expect(chunks).to_have_count(1)
    expect(page.locator("#chunks-meta")).to_contain_text("1 chunk of revision 1")
    expect(page.locator("#chunks-meta")).to_contain_text("index version 1")
    text = chunks.first.locator(".chunk-text")
    expect(text).to_contain_text("La sala de lectura abre a las nueve")
    expect(text).to_contain_text("<PERSON_1>")
    expect(text).to_contain_text("<EMAIL_ADDRESS>")
    html = page.content()
    assert not [s for s in SECRETS if s in html], "a redacted value reached the page"
    shoot(page, shots, "document-page", full=True)

    # The Russian one: its report is per Russian analysis.
    page.get_by_role("link", name="← All documents").click()
    page.get_by_role("link", name="library.zip/ru.txt").click()
    expect(page.locator("#redaction-table thead th")).to_have_text(["Entity type", "ru", "Total"])
    expect(page.locator("#chunks li .chunk-text")).to_contain_text("<EMAIL_ADDRESS>")
    assert not [s for s in SECRETS if s in page.content()]
    # The failed one: its reason, no redaction report, no chunks.
    page.get_by_role("link", name="← All documents").click()
    page.get_by_role("link", name="broken.pdf").click()
    expect(page.locator("#doc-badge")).to_have_text("failed")
    expect(page.locator("#doc-reason")).to_contain_text("PDF")
    expect(page.locator("#doc-stages li[aria-current='step']")).to_have_count(0)
    expect(page.locator("#redaction-meta")).to_contain_text("No redaction report")
    expect(page.locator("#chunks-empty")).to_contain_text("No revision of this document is indexed")
    expect(page.locator("#doc-facts")).to_contain_text("team: legal")
    # At phone width the document page reflows instead of scrolling sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    # A document that does not exist: the 404 page (no error responses from the API).
    missing = page.goto(base + "/console/kbs/library/documents/" + "0" * 32)
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("alert")).to_contain_text("was not found in knowledge base")

    watch.check(expected_errors=(f"404 GET {base}/console/kbs/library/documents/{'0' * 32}",))
    context.close()

    if target := os.environ.get("RAGOPS_CONSOLE_SCREENSHOTS"):
        keep_screenshots(shots, Path(target))
    assert time.monotonic() - t0 < 180, "the documents flows should take well under 3 minutes"
