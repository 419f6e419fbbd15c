"""The console's Versions tab in a real browser (Debian's Chromium driven by playwright)
against a real `ragops serve` on the embedded default.

Set up through the API: KB `qa` with 12 QA documents (en/es/ru), a test set over them
and a quality gate (recall@k floor, no metric more than 0.02 below live); on disk, a
genuinely worse embedding model (CLS pooling squeezed to 8 dimensions). In the browser,
the admin: a build refused by the API's validation (inline), a build with the worse
model (progress, then ready, its difference from live shown), promotion refused by the
gate with the failing checks, a build like live promoted through the gate (the new
live), rollback (the previous live again), the refusal again (409 with the evidence) and
an override with a reason, and the decision trail with all of it. Then a reviewer key
that sees the versions, the gate and the decisions but no build, promote, rollback or
override control, and a reader key that gets no Versions tab at all (the API refuses
readers the version list). No console errors beyond the deliberate 422s and 409, no
failed requests, nothing fetched from another host.

Screenshots (1280×800, and phone width) in the test's temp dir; set
RAGOPS_CONSOLE_SCREENSHOTS=docs/console to keep them there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.bench.qa import render
from tests.utils import console_browser
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.console_browser import (
    ADMIN,
    HEIGHT,
    TIMEOUT_MS,
    WIDTH,
    Watch,
    keep_screenshots,
    shoot,
)
from tests.utils.models import make_derived_model
from tests.utils.qa_kb import qa_subset

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The shared fixtures, found by pytest under these names.
browser = console_browser.browser
server = console_browser.server

KB = "qa"
# As in tests/integration/eval/test_gates_and_schedules.py: dense retrieval only, so the
# gate sees what the embedding model does.
GATE = {
    "testset": "qa",
    "min_scores": {"recall@k": 0.5},
    "max_regression": 0.02,
    "metrics": ["recall@k", "mrr", "ndcg@k"],
    "params": {"mode": "dense", "top_k": 3},
}
MINILM = "all-MiniLM-L6-v2"
SHIFTS = """
window.layoutShift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) window.layoutShift += entry.value;
  }
}).observe({ type: 'layout-shift', buffered: true });
"""


@dataclass(frozen=True)
class Corpus:
    worse_model: Path
    reviewer_key: str
    reader_key: str


@pytest.fixture(scope="module")
def worse_model(tmp_path_factory) -> Iterator[Future[Path]]:
    """Derived in the background while the server starts (loading torch takes a while)."""
    path = tmp_path_factory.mktemp("models") / "squeezed"
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(make_derived_model, path, out_features=8)


@pytest.fixture(scope="module")
def corpus(worse_model, server) -> Corpus:
    """KB `qa` with its documents indexed (version 1 live), test set and gate; a worse
    model on disk; a reviewer and a reader key of `qa`."""
    docs, cases = qa_subset(4)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server, headers=auth, timeout=60) as api:
        r = api.post("/v1/kbs", json={"name": KB, "embedding_model": MINILM})
        assert r.status_code == 201, r.text
        upload(api, KB, [(d["filename"], render(d)) for d in docs])
        wait_for_documents(api, KB, expected=len(docs), timeout=300)
        r = api.post("/v1/testsets", json={"name": "qa", "cases": cases})
        assert r.status_code == 201, r.text
        r = api.put(f"/v1/kbs/{KB}/quality-gate", json={**GATE, "actor": "ana"})
        assert r.status_code == 200, r.text
        assert api.get(f"/v1/kbs/{KB}/versions").json()["live_version"] == 1
        keys = {}
        for role in ("reviewer", "reader"):
            r = api.post("/v1/keys", json={"name": f"{role}-of-qa", "role": role, "kbs": [KB]})
            assert r.status_code == 201, r.text
            keys[role] = r.json()["key"]
    return Corpus(
        worse_model=worse_model.result(timeout=300),
        reviewer_key=keys["reviewer"],
        reader_key=keys["reader"],
    )


def sign_in(page, base: str, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(base + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/console/kbs")
    # Loaded before going on: leaving a page mid-request counts as a failed request.
    expect(page.locator("#kb-table tbody tr")).to_have_count(1)
    page.wait_for_load_state("networkidle")


def test_versions_tab_in_chromium(worse_model, browser, server, corpus, tmp_path):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    base = server
    api_versions = f"{base}/console/api/kbs/{KB}/versions"

    # -- the admin ------------------------------------------------------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    # Layout shifts not caused by the user (a status update moving the page) add up here.
    page.add_init_script(SHIFTS)
    sign_in(page, base, ADMIN)
    page.goto(f"{base}/console/kbs/{KB}")
    expect(page.locator("#doc-counts")).to_contain_text("12 documents")
    page.wait_for_load_state("networkidle")
    page.get_by_role("navigation", name=KB).get_by_role("link", name="Versions").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/versions")
    rows = page.locator("#version-table tbody tr")
    v1, v2, v3 = (page.locator(f"#version-table tr[data-number='{n}']") for n in (1, 2, 3))
    expect(v1).to_have_attribute("data-status", "live")
    expect(v1).to_contain_text(MINILM)
    expect(v1.locator(".diff-cell")).to_have_text("this is the live version")
    status = page.locator("#version-status")
    expect(status).to_have_text("1 version · live: version 1")
    gate = page.locator("#gate")
    expect(gate.locator(".gate-policy")).to_contain_text("recall@k ≥ 0.5")
    expect(gate.locator(".gate-policy")).to_contain_text("no metric more than 0.02 below")
    expect(gate.locator(".gate-policy")).to_contain_text("by ana")

    # A build the API refuses: its message inline, on the field it is about.
    size = page.get_by_label("Chunk size (tokens)")
    size.fill("0")
    page.get_by_role("button", name="Build version").click()
    expect(page.locator("#build-error")).to_contain_text("chunking.chunk_size")
    expect(size).to_have_attribute("aria-invalid", "true")
    expect(size).to_be_focused()
    expect(rows).to_have_count(1)

    # A worse version: the squeezed model (whose 128-token window needs smaller chunks).
    # Progress while it builds, then ready, with what differs from live.
    size.fill("120")
    page.get_by_label("Embedding model").fill(str(corpus.worse_model))
    page.get_by_role("button", name="Build version").click()
    build_ok = page.locator("#build-ok")
    expect(build_ok).to_contain_text(re.compile("Version 2 is (building|ready)"))
    expect(size).not_to_have_attribute("aria-invalid", "true")
    expect(v2).to_have_count(1)
    page.evaluate("() => { window.layoutShift = 0; }")
    expect(v2).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    # The build's progress and its end changed the row in place: nothing moved.
    assert page.evaluate("() => window.layoutShift") < 0.01
    expect(build_ok).to_have_text("Version 2 is ready: promote it from the list above.")
    model_diff = v2.locator("li[data-setting='model']")
    expect(model_diff).to_contain_text(f"{MINILM} → {corpus.worse_model}")
    expect(v2.locator("li[data-setting='chunk size']")).to_have_text("chunk size: 200 → 120")
    expect(v2.locator("li[data-setting='backend']")).to_have_count(0)
    expect(status).to_have_text("2 versions · live: version 1")
    page.evaluate("() => window.scrollTo(0, 0)")
    shoot(page, shots, "versions")

    # Promote it: confirmed first, then the gate's eval runs, then the refusal.
    v2.get_by_role("button", name="Promote version 2").click()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("compares it with live version 1")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Promote").click()
    expect(dialog).to_be_hidden()
    panel = page.locator("#promotion")
    expect(panel).to_have_attribute("data-outcome", "refused", timeout=TIMEOUT_MS)
    expect(page.locator("#promotion-status")).to_contain_text(
        re.compile(r"The quality gate refused version 2: \d of \d checks failed: .*mrr")
    )
    mrr = page.locator("#checks tr[data-metric='mrr']")
    expect(mrr).to_have_attribute("data-passed", "false")
    expect(mrr.locator("td").last).to_have_text("failed")
    expect(page.locator("#promotion-evidence")).to_contain_text("live version 1 eval run")
    expect(v1).to_have_attribute("data-status", "live")
    expect(v2).to_have_attribute("data-status", "ready")
    expect(page.get_by_role("button", name="Promote anyway")).to_be_visible()
    page.evaluate("() => document.getElementById('gate-h').scrollIntoView()")
    shoot(page, shots, "versions-refused")

    # A version built like live passes the gate and becomes live.
    page.get_by_role("button", name="Build version").click()
    expect(build_ok).to_contain_text(re.compile("Version 3 is (building|ready)"))
    expect(v3).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    expect(v3.locator(".diff-cell")).to_have_text("same settings as live")
    v3.get_by_role("button", name="Promote version 3").click()
    dialog.get_by_role("button", name="Promote").click()
    expect(panel).to_have_attribute("data-outcome", "promoted", timeout=TIMEOUT_MS)
    expect(page.locator("#promotion-status")).to_contain_text("Version 3 is live: all 4 checks")
    expect(page.locator("#checks tr[data-passed='false']")).to_have_count(0)
    expect(page.get_by_role("button", name="Promote anyway")).to_be_hidden()
    expect(v3).to_have_attribute("data-status", "live")
    expect(v1).to_have_attribute("data-status", "ready")
    expect(status).to_have_text("3 versions · live: version 3")
    # The worse one now differs from the new live version.
    expect(model_diff).to_contain_text(f"{MINILM} → {corpus.worse_model}")

    # Roll back, confirmed: the previous live version answers again.
    page.get_by_role("button", name="Roll back").click()
    expect(dialog.get_by_role("heading")).to_have_text("Roll back to version 1?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Roll back").click()
    expect(page.locator("#version-note")).to_have_text("Rolled back: version 1 is live again.")
    expect(v1).to_have_attribute("data-status", "live")
    expect(v3).to_have_attribute("data-status", "ready")
    expect(status).to_have_text("3 versions · live: version 1")

    # Promoting the worse one again reuses the finished runs: refused at once (409).
    v2.get_by_role("button", name="Promote version 2").click()
    with page.expect_response(lambda r: r.url.endswith("/versions/2/promote")) as refused:
        dialog.get_by_role("button", name="Promote").click()
    assert refused.value.status == 409
    expect(panel).to_have_attribute("data-outcome", "refused")
    # Overriding needs a reason (the API says so, inline), then goes live, recorded.
    reason = page.get_by_label("Reason to promote despite the gate")
    page.get_by_role("button", name="Promote anyway").click()
    expect(page.locator("#override-error")).to_contain_text("reason (why)")
    expect(reason).to_have_attribute("aria-invalid", "true")
    reason.fill("incident 42: the new model is needed now")
    page.get_by_role("button", name="Promote anyway").click()
    expect(panel).to_have_attribute("data-outcome", "overridden")
    expect(page.locator("#promotion-status")).to_contain_text("overridden by RAGOPS_ADMIN_KEY")
    expect(v2).to_have_attribute("data-status", "live")

    # The decision trail: who, when, what, on what evidence.
    decisions = page.locator("#decision-table tbody tr")
    expect(decisions).to_have_count(4)
    outcomes = [
        (d.get_attribute("data-version"), d.get_attribute("data-outcome")) for d in decisions.all()
    ]
    assert outcomes == [("2", "overridden"), ("2", "refused"), ("3", "promoted"), ("2", "refused")]
    newest = decisions.first
    expect(newest).to_contain_text("RAGOPS_ADMIN_KEY")
    expect(newest).to_contain_text("override")
    expect(newest).to_contain_text("Reason: incident 42")
    expect(decisions.nth(2)).to_contain_text("all 4 checks passed")
    expect(decisions.nth(3)).to_contain_text("vs live v1")
    decisions.nth(3).locator("summary").click()
    expect(decisions.nth(3).locator("details li").filter(has_text="FAILED: mrr")).to_have_count(1)
    page.evaluate("() => document.getElementById('decisions-h').scrollIntoView()")
    shoot(page, shots, "versions-decisions")

    # At phone width the page reflows instead of scrolling sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, shots, "versions-phone")
    watch.check(
        expected_errors=(
            f"422 POST {api_versions}",
            f"409 POST {api_versions}/2/promote",
            f"422 POST {api_versions}/2/promote",
        )
    )
    context.close()

    # -- a reviewer of `qa`: everything to read, nothing to change --------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    sign_in(page, base, corpus.reviewer_key)
    page.goto(f"{base}/console/kbs/{KB}")
    expect(page.locator("#doc-counts")).to_contain_text("12 documents")
    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name="Versions").click()
    expect(page.locator("#version-table tbody tr")).to_have_count(3)
    expect(page.locator("#version-table tr[data-number='2']")).to_have_attribute(
        "data-status", "live"
    )
    expect(page.locator("#decision-table tbody tr")).to_have_count(4)
    expect(page.locator("#gate .gate-policy")).to_contain_text("recall@k ≥ 0.5")
    for control in ("#build", "#rollback", "#override"):
        expect(page.locator(control)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Promote|Roll back|Build"))).to_have_count(0)
    shoot(page, shots, "versions-reviewer")
    watch.check()
    context.close()

    # -- a reader of `qa`: the API does not list versions to readers --------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    sign_in(page, base, corpus.reader_key)
    page.goto(f"{base}/console/kbs/{KB}/versions")
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/playground")
    expect(page.get_by_role("link", name="Versions")).to_have_count(0)
    watch.check()
    context.close()

    if target := os.environ.get("RAGOPS_CONSOLE_SCREENSHOTS"):
        keep_screenshots(shots, Path(target))
    assert time.monotonic() - t0 < 120, "the browser flows should take well under two minutes"
