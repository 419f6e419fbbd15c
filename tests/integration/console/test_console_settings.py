"""The console's KB list, KB settings and playground choices in a real browser (Debian's
/usr/bin/chromium driven by playwright) against a real `ragops serve` on a fresh data
dir (embedded defaults, redaction off).

Set up through the API: a KB of two text documents, one finished offline eval run on it,
a saved prompt template `concise`, and a reviewer and a reader key. Then, as the admin:
the KB list shows the KB's document count, live version, model and latest eval scores;
the create form takes chunking settings (an overlap over the size: the API's message next
to the overlap field, marked invalid; then a KB with 120-token chunks). The Settings tab
says up front that the indexed KB's chunking needs a new index version; an invalid chunk
size gets the API's message next to the field (aria-invalid); a valid change with a new
description is saved (the description by PATCH, the chunking as a new index version being
built, the message says so and links to Versions). In the playground a non-default prompt
and the pinned new version answer, and the answer's meta names both. The reviewer and the
reader see no Settings tab or link, and opening the URL gets the 403 page (a KB the key
may not see: the 404 page). No console errors beyond the deliberate 4xx, no failed
requests, nothing fetched from another host.

Screenshots (1280×800, and the settings page at phone width) go to the test's temp dir;
RAGOPS_CONSOLE_SCREENSHOTS=docs/console keeps them there as palette PNGs.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.utils import console_browser
from tests.utils.api import wait_eval_run, wait_for_documents, wait_version
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

browser = console_browser.browser
server = console_browser.server

KB = "manual"
DOCS = {
    "bees.txt": "Honey bees tell each other where flowers are with the waggle dance. The angle "
    "of the dance shows the direction of the flowers from the sun, and its length the distance.",
    "bread.md": "# Sourdough\n\nFeed a sourdough starter once or twice a day with equal weights "
    "of flour and water, and keep it at room temperature.",
}
CASES = [
    ("How do bees tell each other where flowers are?", "bees.txt", "With the waggle dance."),
    ("How often should I feed a sourdough starter?", "bread.md", "Once or twice a day."),
]
PROMPT = "concise"


@pytest.fixture(scope="module")
def keys(server) -> dict[str, str]:
    """The KB with its documents, an eval run and a prompt; returns a reviewer and a reader
    key of the KB."""
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        r = api.post("/v1/kbs", json={"name": KB, "embedding_model": "all-MiniLM-L6-v2"})
        assert r.status_code == 201, r.text
        r = api.post("/v1/kbs", json={"name": "elsewhere"})
        assert r.status_code == 201, r.text
        files = [("files", (n, t.encode(), "text/plain")) for n, t in DOCS.items()]
        r = api.post(f"/v1/kbs/{KB}/documents", files=files)
        assert r.status_code == 202, r.text
        docs = wait_for_documents(api, KB, expected=len(DOCS))
        assert {d["status"] for d in docs.values()} == {"indexed"}
        cases = [
            {"question": q, "reference_doc_ids": [f], "reference_answer": a} for q, f, a in CASES
        ]
        r = api.post("/v1/testsets", json={"name": "smoke", "cases": cases})
        assert r.status_code == 201, r.text
        r = api.post("/v1/evals", json={"testset": "smoke", "kb": KB, "top_k": 2})
        assert r.status_code == 202, r.text
        wait_eval_run(api, r.json()["id"], timeout=120)
        r = api.post(
            "/v1/prompts",
            json={
                "name": PROMPT,
                "description": "Short answers",
                "template": "Answer in one sentence from these sources.\n\n{context}\n\n"
                "Question: {query}",
            },
        )
        assert r.status_code == 201, r.text
        made = {}
        for role in ("reviewer", "reader"):
            r = api.post("/v1/keys", json={"name": role, "role": role, "kbs": [KB]})
            assert r.status_code == 201, r.text
            made[role] = r.json()["key"]
        return made


def sign_in(page, base: str, key: str) -> None:
    page.goto(base + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/console/kbs")


def settled(page) -> None:
    """Wait for the page's own API calls (eval scores, prompt and version choices), so a
    navigation never aborts one."""
    from playwright.sync_api import expect

    expect(page.locator("#kb-table td.eval .scores", has_text="loading")).to_have_count(0)
    if page.locator("#prompt").count():
        expect(page.locator("#prompt optgroup")).not_to_have_count(0)
    if page.locator("select#index-version").count():
        expect(page.locator("select#index-version option")).not_to_have_count(1)


def phone_width_fits(page, shots: Path | None = None, name: str = "") -> None:
    """At a phone's width the page reflows instead of scrolling sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    if shots is not None:
        shoot(page, shots, name)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})


def test_kb_list_settings_and_playground_choices(browser, server, keys, tmp_path):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    base = server
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)

    # -- the admin: the KB list ---------------------------------------------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    sign_in(page, base, ADMIN)
    row = page.locator(f"#kb-table tbody tr[data-kb='{KB}']")
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("2")  # documents
    expect(cells.nth(1).locator(".number")).to_have_text("1")  # live version
    expect(cells.nth(1).locator(".model")).to_have_text("all-MiniLM-L6-v2")
    scores = row.locator("td.eval .score")
    expect(scores.first).to_have_text(re.compile(r"^recall@2 [01]\.\d\d$"))
    expect(scores).to_have_count(3)
    expect(row.locator("td.eval")).to_contain_text("version 1")
    other = page.locator("#kb-table tbody tr[data-kb='elsewhere']")
    expect(other.locator("td.eval .scores")).to_have_text("no finished run")

    # The create form takes the ingestion settings too, with the API's messages inline.
    page.get_by_text("Chunking, cleaning and redaction").click()
    page.get_by_label("Name", exact=True).fill("fresh")
    page.get_by_label("Chunk overlap").fill("500")
    page.get_by_role("button", name="Create").click()
    overlap = page.get_by_label("Chunk overlap")
    expect(page.locator("#kb-chunk-overlap-error")).to_contain_text(
        "chunk_overlap (500) must be smaller than chunk_size (200)"
    )
    expect(overlap).to_have_attribute("aria-invalid", "true")
    expect(overlap).to_be_focused()
    expect(page.locator("#create-error")).to_contain_text("chunk_overlap (500)")
    overlap.fill("16")
    page.get_by_label("Chunk size").fill("120")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#create-ok")).to_contain_text("Created fresh")
    expect(overlap).not_to_have_attribute("aria-invalid", "true")
    fresh = api.get("/v1/kbs/fresh").json()
    assert fresh["chunking"] == {"chunk_size": 120, "chunk_overlap": 16}
    assert fresh["cleaning"]["near_duplicate_threshold"] == 0.9  # untouched: the default
    expect(page.locator("#kb-table tbody tr")).to_have_count(3)
    settled(page)
    page.evaluate("() => window.scrollTo(0, 0)")
    shoot(page, shots, "knowledge-bases")
    phone_width_fits(page)

    # -- Settings: an indexed KB's chunking changes through a new index version ----------
    row.get_by_role("link", name=f"Settings of {KB}").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/settings")
    tabs = page.get_by_role("navigation", name=KB)
    expect(tabs.get_by_role("link", name="Settings")).to_have_attribute("aria-current", "page")
    expect(page.locator("#index-notice")).to_contain_text("needs a new index version")
    expect(page.locator("#index-notice")).to_contain_text("live: version 1")
    size = page.get_by_label("Chunk size")
    expect(size).to_have_value("200")
    save = page.locator("#save")
    expect(save).to_have_text("Save")
    size.fill("0")
    expect(save).to_have_text("Save and build a new version")
    save.click()
    expect(page.locator("#set-chunk-size-error")).to_contain_text(
        "chunking.chunk_size: Input should be greater than 0"
    )
    expect(size).to_have_attribute("aria-invalid", "true")
    expect(size).to_have_attribute("aria-errormessage", "set-chunk-size-error")
    expect(size).to_be_focused()
    page.evaluate("() => window.scrollTo(0, 0)")
    shoot(page, shots, "settings")
    # By keyboard: a valid size, a description, then Enter sends the form.
    size.fill("120")
    page.get_by_label("Description").fill("Bees and bread")
    page.get_by_label("Description").press("Enter")
    ok = page.locator("#settings-ok")
    expect(ok).to_contain_text("Description saved.")
    expect(ok).to_contain_text("These changes need a new index version: version 2 is being built")
    expect(ok).to_contain_text("chunking.chunk_size 120")
    expect(ok.get_by_role("link", name="Versions tab")).to_have_attribute(
        "href", f"/console/kbs/{KB}/versions"
    )
    expect(size).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#set-chunk-size-error")).to_be_hidden()
    # The KB keeps the live version's chunking until version 2 is promoted.
    expect(size).to_have_value("200")
    expect(save).to_have_text("Save")
    kb = api.get(f"/v1/kbs/{KB}").json()
    assert kb["description"] == "Bees and bread"
    assert kb["chunking"]["chunk_size"] == 200 and kb["live_version"] == 1
    version = wait_version(api, KB, 2, timeout=120)
    assert version["config"]["chunking"] == {"chunk_size": 120, "chunk_overlap": 32}
    ok.scroll_into_view_if_needed()
    shoot(page, shots, "settings-saved")
    # At phone width the page reflows instead of scrolling sideways.
    page.evaluate("() => window.scrollTo(0, 0)")
    phone_width_fits(page, shots, "settings-phone")

    # -- the playground: a chosen prompt on the pinned new version ----------------------
    tabs.get_by_role("link", name="Playground").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/playground")
    versions = page.get_by_label("Index version")
    expect(versions.locator("option[value='2']")).to_have_text(re.compile(r"version 2 · ready"))
    expect(versions.locator("option[value='1']")).to_have_text(re.compile(r"version 1 · live"))
    prompts = page.get_by_label("Prompt template")
    expect(prompts.locator(f"option[value='{PROMPT}@1']")).to_have_count(1)
    versions.select_option("2")
    prompts.select_option(f"{PROMPT}@1")
    page.get_by_label("Question", exact=True).fill("How do bees tell each other where flowers are?")
    page.get_by_role("button", name="Ask").click()
    meta = page.locator("#answer-meta")
    expect(meta).to_contain_text(f"prompt {PROMPT}@1", timeout=TIMEOUT_MS)
    expect(meta).to_contain_text("index version 2")
    expect(page.locator("#passages-meta")).to_contain_text("index version 2")
    expect(page.locator("#citations li").first).to_contain_text("bees.txt")
    watch.check(
        expected_errors=(
            f"422 POST {base}/console/api/kbs",
            f"422 POST {base}/console/api/kbs/{KB}/versions",
        )
    )
    context.close()

    # -- a reviewer and a reader: no Settings, and the page refuses them ----------------
    for role in ("reviewer", "reader"):
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        watch = Watch(context, base)
        page = watch.page(context)
        sign_in(page, base, keys[role])
        expect(page.locator("#kb-table tbody tr")).to_have_count(1)
        expect(page.get_by_role("link", name=re.compile("^Settings"))).to_have_count(0)
        if role == "reviewer":
            expect(page.locator("#kb-table td.eval .score").first).to_contain_text("recall@2")
        else:
            expect(page.locator("#kb-table td.eval")).to_have_count(0)
        settled(page)
        page.goto(f"{base}/console/kbs/{KB}/playground")
        expect(page.get_by_role("navigation", name=KB)).to_be_visible()
        expect(page.get_by_role("link", name="Settings")).to_have_count(0)
        settled(page)
        response = page.goto(f"{base}/console/kbs/{KB}/settings")
        assert response is not None and response.status == 403
        expect(page.locator("#settings-denied")).to_contain_text(f"({role}) may not change")
        expect(page.locator("#settings")).to_have_count(0)
        response = page.goto(f"{base}/console/kbs/elsewhere/settings")
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        watch.check(
            expected_errors=(
                f"403 GET {base}/console/kbs/{KB}/settings",
                f"404 GET {base}/console/kbs/elsewhere/settings",
            )
        )
        context.close()
    api.close()

    if target := os.environ.get("RAGOPS_CONSOLE_SCREENSHOTS"):
        keep_screenshots(shots, Path(target))
    assert time.monotonic() - t0 < 120, "the browser flows should take well under two minutes"
