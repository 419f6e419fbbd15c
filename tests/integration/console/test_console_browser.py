"""The web console in a real browser (Debian's /usr/bin/chromium driven by playwright)
against a real `ragops serve` on a fresh data dir (embedded defaults, redaction off):
sign in with the admin key, create a KB (and see the API's validation message inline),
upload two text files and a broken PDF and watch them reach indexed / failed with the
reason, drop a duplicate, ask in the playground and get a streamed answer with
citations, give feedback, erase a document and read the receipt, sign out; then a
reader key that sees neither the other KB nor any owner control. No console errors
beyond the one deliberate 422, no failed requests, nothing fetched from another host.

Screenshots of each screen (1280×800, and the documents page at phone width) are taken
in the test's temp dir; set RAGOPS_CONSOLE_SCREENSHOTS=docs/console to keep them there
(small palette PNGs). Without Chromium or playwright the test skips with the reason (and
fails under CI=true), as the report browser test does.
"""

from __future__ import annotations

import os
import re
import time
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The shared fixtures, found by pytest under these names.
browser = console_browser.browser
server = console_browser.server

BEES = (
    "Honey bees tell each other where flowers are with the waggle dance. The angle of the "
    "dance shows the direction of the flowers from the sun, and its length the distance."
)
CHESS = (
    "In the Sicilian Defence Black answers 1.e4 with 1...c5. It fights for the centre "
    "from the side and leads to sharp, unbalanced positions."
)
# A PDF header and nothing a reader can parse: stored, then failed with the reason.
BROKEN_PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8


def test_console_flows_in_chromium(browser, server, tmp_path):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    base = server

    # -- an admin ---------------------------------------------------------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, shots, "sign-in")
    # By keyboard: the key field has the focus, Enter sends the form.
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/console/kbs")
    expect(page.locator("#kb-empty")).to_be_visible()
    # The key never reaches the page, its storage or a script-readable cookie.
    assert ADMIN not in page.content()
    assert page.evaluate("() => document.cookie") == ""
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    cookie = next(c for c in context.cookies() if c["name"] == "ragops_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ADMIN not in cookie["value"]

    # Create a KB: first an invalid name (the API's message, inline), then a good one.
    page.get_by_label("Name", exact=True).fill("hand book")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#create-error")).to_contain_text("invalid knowledge base name")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name", exact=True).fill("handbook")
    page.get_by_label("Embedding model").fill("all-MiniLM-L6-v2")
    page.get_by_label("Description").fill("Bees and chess")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#create-ok")).to_contain_text("Created handbook")
    row = page.locator("#kb-table tbody tr[data-kb='handbook']")
    expect(row).to_contain_text("all-MiniLM-L6-v2")
    # A second KB, made through the API, for the reader check below.
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        r = api.post("/v1/kbs", json={"name": "private", "embedding_model": "all-MiniLM-L6-v2"})
        assert r.status_code == 201, r.text
    page.reload()
    expect(page.locator("#kb-table tbody tr")).to_have_count(2)
    shoot(page, shots, "knowledge-bases")

    # Upload: two text files and a broken PDF through the file picker.
    row.get_by_role("link", name="Documents").click()
    expect(page).to_have_url(base + "/console/kbs/handbook")
    expect(page.locator("#doc-empty")).to_be_visible()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose files").click()
    chooser.value.set_files(
        [
            {"name": "bees.txt", "mimeType": "text/plain", "buffer": BEES.encode()},
            {"name": "chess.txt", "mimeType": "text/plain", "buffer": CHESS.encode()},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": BROKEN_PDF},
        ]
    )
    for name in ("bees.txt", "chess.txt", "broken.pdf"):
        expect(page.locator(f"#uploads li[data-filename='{name}']")).to_have_attribute(
            "data-result", "accepted"
        )
    docs = page.locator("#doc-table tbody tr")
    expect(docs).to_have_count(3)
    for name in ("bees.txt", "chess.txt"):
        expect(page.locator(f"#doc-table tr[data-filename='{name}']")).to_have_attribute(
            "data-status", "indexed", timeout=TIMEOUT_MS
        )
    broken = page.locator("#doc-table tr[data-filename='broken.pdf']")
    expect(broken).to_have_attribute("data-status", "failed", timeout=TIMEOUT_MS)
    expect(broken.locator(".reason")).to_contain_text("PDF")
    # Retry: the API takes it (202), and the broken file fails again, alone.
    with page.expect_response(lambda r: r.url.endswith("/reprocess")) as retried:
        broken.get_by_role("button", name="Retry broken.pdf").click()
    assert retried.value.status == 202
    expect(broken).to_have_attribute("data-status", "failed", timeout=TIMEOUT_MS)
    expect(page.locator("#doc-counts")).to_have_text("3 documents: 2 indexed, 1 failed")
    # The same bytes again, dropped on the zone: a duplicate, nothing queued.
    page.evaluate(
        """text => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], 'bees.txt', {type: 'text/plain'}));
            const zone = document.getElementById('dropzone');
            const drop = {dataTransfer: dt, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent('drop', drop));
        }""",
        BEES,
    )
    expect(page.locator("#uploads li[data-filename='bees.txt']").first).to_have_attribute(
        "data-result", "duplicate"
    )
    expect(docs).to_have_count(3)
    page.evaluate("() => document.getElementById('docs-h').scrollIntoView()")
    shoot(page, shots, "documents")

    # At phone width the page reflows instead of scrolling sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, shots, "documents-phone")
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

    # Playground: passages with scores beside a streamed, cited answer; then feedback.
    page.get_by_role("link", name="Playground").click()
    expect(page).to_have_url(base + "/console/kbs/handbook/playground")
    page.get_by_label("Question", exact=True).fill("How do bees tell each other where flowers are?")
    expect(page.get_by_label("Stream the answer")).to_be_checked()
    expect(page.get_by_label("Generator")).to_have_value("extractive")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#citations li").first).to_contain_text("bees.txt", timeout=TIMEOUT_MS)
    expect(page.locator("#answer a.cite").first).to_have_text(re.compile(r"\[\d+\]"))
    expect(page.locator("#answer")).to_contain_text("waggle dance")
    expect(page.locator("#answer-meta")).to_contain_text("extractive")
    expect(page.locator("#passages li").first).to_contain_text("bees.txt")
    expect(page.locator("#passages li .score").first).to_contain_text(re.compile(r"score \d"))
    expect(page.locator("#passages-meta")).to_contain_text("index version 1")
    page.get_by_role("button", name="Not helpful").click()
    expect(page.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Correction").fill("They dance: the waggle dance points the way.")
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("#feedback-ok")).to_contain_text("feedback is saved")
    shoot(page, shots, "playground")

    # Erase a document: confirm, then the receipt with what each store removed.
    page.get_by_role("link", name="Documents").click()
    chess = page.locator("#doc-table tr[data-filename='chess.txt']")
    chess.get_by_role("button", name="Erase chess.txt").click()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Erase").click()
    expect(page.locator("#receipt-status")).to_have_text(
        "chess.txt was erased from every store.", timeout=TIMEOUT_MS
    )
    receipt = page.locator("#receipt")
    expect(receipt.locator("tr[data-store='vectors']")).to_contain_text("version 1")
    expect(receipt.locator("tr[data-store='documents'] td.num")).to_have_text("1")
    expect(receipt.locator("tr[data-store='blobs'] td.num")).to_have_text("1")
    shoot(page, shots, "erase-receipt")
    dialog.get_by_role("button", name="Close").click()
    expect(chess).to_have_count(0)
    expect(docs).to_have_count(2)
    # Delete the broken one.
    broken.get_by_role("button", name="Delete broken.pdf").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_hidden()
    expect(broken).to_have_count(0)
    expect(page.locator("#doc-counts")).to_have_text("1 document: 1 indexed")
    # A folder, through the folder picker: each file keeps its path as its name.
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "queen.md").write_text("# The queen\n\nA colony has one queen bee.\n")
    (folder / "sub" / "drones.txt").write_text("Drones are the male bees of a colony.\n")
    page.locator("#folder-input").set_input_files(folder)
    for name in ("notes/queen.md", "notes/sub/drones.txt"):
        expect(page.locator(f"#uploads li[data-filename='{name}']")).to_have_attribute(
            "data-result", "accepted"
        )
        expect(page.locator(f"#doc-table tr[data-filename='{name}']")).to_have_attribute(
            "data-status", "indexed", timeout=TIMEOUT_MS
        )
    expect(page.locator("#doc-counts")).to_have_text("3 documents: 3 indexed")

    # Sign out: back on the sign-in page, and the console is closed again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in\?notice=signed_out$"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(base + "/console/kbs")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/kbs$"))
    watch.check(expected_errors=(f"422 POST {base}/console/api/kbs",))
    context.close()

    # -- a reader of `handbook` ---------------------------------------------------------
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        r = api.post("/v1/keys", json={"name": "reader", "role": "reader", "kbs": ["handbook"]})
        assert r.status_code == 201, r.text
        reader_key = r.json()["key"]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    page.goto(base + "/console/sign-in")
    page.get_by_label("API key").fill(reader_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#kb-table tbody tr")).to_have_count(1)
    expect(page.locator("#kb-table")).to_contain_text("handbook")
    expect(page.locator("#kb-table")).not_to_contain_text("private")
    expect(page.locator("#create-kb")).to_have_count(0)
    expect(page.get_by_role("link", name="Documents")).to_have_count(0)
    page.locator("#kb-table").get_by_role("link", name="handbook").click()
    expect(page).to_have_url(base + "/console/kbs/handbook/playground")
    for control in ("#dropzone", "#doc-table", "#dialog"):
        expect(page.locator(control)).to_have_count(0)
    owner_buttons = page.get_by_role("button", name=re.compile("Erase|Delete|Choose files"))
    expect(owner_buttons).to_have_count(0)
    page.get_by_label("Question", exact=True).fill("What do bees dance for?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#answer-meta")).to_contain_text("extractive", timeout=TIMEOUT_MS)
    expect(page.locator("#citations li").first).to_contain_text("bees.txt")
    shoot(page, shots, "reader-playground")
    watch.check()
    context.close()

    if target := os.environ.get("RAGOPS_CONSOLE_SCREENSHOTS"):
        keep_screenshots(shots, Path(target))
    assert time.monotonic() - t0 < 120, "the browser flows should take well under two minutes"
