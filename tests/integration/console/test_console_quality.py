"""The console's quality pages in a real browser (Debian's /usr/bin/chromium driven by
playwright) against a real `ragops serve` on a fresh data dir (embedded defaults).

Set up through the API: a KB of four text documents, a four-question test set, an eval
run on index version 1 and one on a small-chunk version 2, an A/B test between the two
versions with a few answers and feedback, a nightly schedule, and a fine-tuned model in
the registry. Then, as the admin: the Quality tab lists both runs with their scores,
compares them (per-metric deltas, per-question differences), opens the embedded HTML
report with its plots, starts a third run from the form and sees it succeed, shows the
test set, the schedule and the A/B test's per-arm figures, and reads the model registry
(stage, lineage, parent) and moves the model to staging. A reader key sees neither the
Quality tab nor a start-eval or admin control. No console errors, no failed requests,
nothing fetched from another host.

Screenshots (1280×800, and the quality page at phone width) go to the test's temp dir;
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

# The shared fixtures, found by pytest under these names.
browser = console_browser.browser
server = console_browser.server

KB = "handbook"
MODEL = "minilm-handbook-ft"

DOCS = {
    "bees.txt": "Honey bees tell each other where flowers are with the waggle dance. The angle "
    "of the dance shows the direction of the flowers from the sun, and its length the distance.",
    "chess.txt": "In the Sicilian Defence Black answers 1.e4 with 1...c5. It fights for the "
    "centre from the side and leads to sharp, unbalanced positions.",
    "bread.md": "# Sourdough\n\nFeed a sourdough starter once or twice a day with equal weights "
    "of flour and water, and keep it at room temperature.",
    "lighthouse.txt": "A Fresnel lens bends the light of a lighthouse into a narrow beam, so "
    "ships see it more than twenty nautical miles away.",
}
CASES = [
    ("How do bees tell each other where flowers are?", "bees.txt", "With the waggle dance."),
    ("What does Black play against 1.e4 in the Sicilian?", "chess.txt", "Black plays 1...c5."),
    ("How often should I feed a sourdough starter?", "bread.md", "Once or twice a day."),
    ("Why can ships see a lighthouse so far away?", "lighthouse.txt", "A Fresnel lens focuses it."),
]


@pytest.fixture(scope="module")
def seeded(server) -> dict[str, str]:
    """The KB, test set, two runs, A/B test, schedule and registry entry; returns the run
    ids and a reader key."""
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        r = api.post("/v1/kbs", json={"name": KB, "embedding_model": "all-MiniLM-L6-v2"})
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
        run1 = wait_eval_run(api, r.json()["id"], timeout=120)
        r = api.post(
            f"/v1/kbs/{KB}/versions", json={"chunking": {"chunk_size": 24, "chunk_overlap": 0}}
        )
        assert r.status_code == 202, r.text
        wait_version(api, KB, 2, timeout=120)
        r = api.post(
            "/v1/evals", json={"testset": "smoke", "kb": KB, "index_version": 2, "top_k": 2}
        )
        assert r.status_code == 202, r.text
        run2 = wait_eval_run(api, r.json()["id"], timeout=120)

        arms = [
            {"name": "control", "weight": 50},
            {"name": "small-chunks", "weight": 50, "index_version": 2},
        ]
        r = api.post(f"/v1/kbs/{KB}/ab-tests", json={"name": "chunk-size", "arms": arms})
        assert r.status_code == 201, r.text
        for i, (question, _, _) in enumerate(CASES * 2):
            r = api.post(f"/v1/kbs/{KB}/answer", json={"query": question, "user_id": f"u{i}"})
            assert r.status_code == 200, r.text
            r = api.post(
                f"/v1/answers/{r.json()['id']}/feedback", json={"rating": 1 if i % 3 else -1}
            )
            assert r.status_code == 201, r.text
        schedule = {
            "name": "nightly-smoke",
            "kind": "live_nightly",
            "kb": KB,
            "testset": "smoke",
            "cron": "0 2 * * *",
        }
        r = api.post("/v1/schedules", json=schedule)
        assert r.status_code == 201, r.text
        model = {
            "kind": "embedding",
            "name": MODEL,
            "source_type": "hub_id",
            "source": f"acme/{MODEL}",
            "description": "MiniLM tuned on handbook questions",
            "lineage": {"fine_tuned_from": "all-MiniLM-L6-v2", "training_data": "handbook Q&A"},
        }
        r = api.post("/v1/models/registry", json=model)
        assert r.status_code == 201, r.text
        r = api.post("/v1/keys", json={"name": "reader", "role": "reader", "kbs": [KB]})
        assert r.status_code == 201, r.text
        return {"run1": run1["id"], "run2": run2["id"], "reader": r.json()["key"]}


def sign_in(page, base: str, key: str) -> None:
    page.goto(base + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/console/kbs")
    # The list fills in (scores included) before the test moves on: leaving earlier
    # would abort its requests, which the watch counts as failures.
    page.wait_for_load_state("networkidle")


def test_quality_pages_in_chromium(browser, server, seeded, tmp_path):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    base = server
    run1, run2 = seeded["run1"], seeded["run2"]

    # -- an admin: the runs with their scores ------------------------------------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    sign_in(page, base, ADMIN)
    page.goto(f"{base}/console/kbs/{KB}/playground")
    page.get_by_role("link", name="Quality").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/quality")
    runs = page.locator("#runs-table tbody tr")
    expect(runs).to_have_count(2)
    expect(page.locator("#runs-status")).to_have_text("2 runs, newest first")
    for run_id, version in ((run1, 1), (run2, 2)):
        row = page.locator(f"#runs-table tr[data-run='{run_id}']")
        expect(row).to_have_attribute("data-status", "succeeded")
        expect(row).to_contain_text(f"version {version}")
        expect(row).to_contain_text("smoke@1")
        expect(row.locator("dl.scores [data-metric='mrr'] dd")).to_have_text(
            re.compile(r"^\d\.\d{3}$")
        )
    # Filter by index version.
    page.get_by_label("Version", exact=True).select_option("2")
    expect(runs).to_have_count(1)
    expect(page.locator("#runs-status")).to_have_text("1 of 2 runs")
    page.get_by_label("Version", exact=True).select_option("")
    expect(runs).to_have_count(2)

    # Test sets, schedules, the A/B test with its per-arm figures.
    expect(page.locator("#testsets-table tr[data-testset='smoke@1']")).to_contain_text("4")
    schedule = page.locator("#schedules-table tr[data-schedule='nightly-smoke']")
    expect(schedule).to_contain_text("cron 0 2 * * *")
    ab = page.locator("article.ab[data-test='chunk-size']")
    expect(ab.locator("tbody tr")).to_have_count(2)
    answers = [
        int(ab.locator(f"tr[data-arm='{arm}'] td").nth(2).inner_text())
        for arm in ("control", "small-chunks")
    ]
    assert sum(answers) == 2 * len(CASES), answers
    expect(ab.locator("tr[data-arm='small-chunks']")).to_contain_text("version 2")
    expect(ab.locator("tr[data-arm='control']")).to_contain_text(re.compile(r"\d+ up, \d+ down"))
    expect(ab.get_by_role("button", name="Stop A/B test chunk-size")).to_be_visible()

    # Compare: A = the newest run (version 2), B = the one before (version 1).
    expect(page.get_by_label("Run A")).to_have_value(run2)
    expect(page.get_by_label("Run B (the baseline)")).to_have_value(run1)
    page.get_by_role("button", name="Compare").click()
    metrics = page.locator("#compare-metrics tbody tr")
    expect(metrics.first).to_be_visible()
    expect(page.locator("#compare-metrics tr[data-metric='mrr']")).to_be_visible()
    assert metrics.count() >= 5
    # Each delta is A − B of the two runs' means, as the list shows them.
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        agg1 = api.get(f"/v1/evals/{run1}").json()["aggregate"]
        agg2 = api.get(f"/v1/evals/{run2}").json()["aggregate"]
    for name in ("mrr", "rouge"):
        cells = page.locator(f"#compare-metrics tr[data-metric='{name}'] td").all_inner_texts()
        assert cells[0] == f"{agg2[name]['mean']:.3f}" and cells[1] == f"{agg1[name]['mean']:.3f}"
        delta = agg2[name]["mean"] - agg1[name]["mean"]
        shown = float(cells[2].replace("−", "-").replace("+", ""))
        assert shown == pytest.approx(delta, abs=1e-3), (name, cells)
    # Per question: the questions whose rouge differs, worst change first.
    page.get_by_label("Metric", exact=True).select_option("rouge")
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as api:
        res1 = {r["position"]: r for r in api.get(f"/v1/evals/{run1}/results").json()["results"]}
        res2 = api.get(f"/v1/evals/{run2}/results").json()["results"]
    changes = [
        (r["scores"]["rouge"] - res1[r["position"]]["scores"]["rouge"], r["position"]) for r in res2
    ]
    expected = [str(pos) for d, pos in sorted(changes) if abs(d) >= 5e-7]
    questions = page.locator("#compare-questions tbody tr")
    expect(questions).to_have_count(len(expected))
    assert [q.get_attribute("data-position") for q in questions.all()] == expected
    expect(page.locator("#compare-same")).to_be_visible(visible=not expected)
    page.evaluate("() => document.getElementById('compare-h').scrollIntoView()")
    shoot(page, shots, "quality-compare")

    # The embedded report of A against B, with its plots.
    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name="Open the full report of A against B").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/quality/runs/{run2}?compare={run1}")
    frame = page.frame_locator("#report-frame")
    # The first report of a run draws its plots: give it time on a busy machine.
    expect(frame.locator("h1").first).to_be_visible(timeout=TIMEOUT_MS)
    plots = frame.locator("img")
    expect(plots).to_have_count(3)
    # Read through the parent (the frame is same-origin and runs no script of its own).
    images, text = page.locator("#report-frame").evaluate(
        """f => [Array.from(f.contentDocument.images).map(i => [i.complete, i.naturalWidth]),
                 f.contentDocument.body.textContent]"""
    )
    assert len(images) == 3 and all(done and width > 300 for done, width in images), images
    assert run1 in text and run2 in text
    # The frame takes the report's height: the plots show on the page, not in a scroller.
    frame_height = page.locator("#report-frame").evaluate("f => f.getBoundingClientRect().height")
    assert frame_height > HEIGHT, frame_height
    shoot(page, shots, "quality-report")
    plots.first.scroll_into_view_if_needed()
    expect(plots.first).to_be_visible()
    shoot(page, shots, "quality-report-plots")
    # An unknown run is 404; a pair the report refuses is said in its words, with no frame.
    page.goto(f"{base}/console/kbs/{KB}/quality/runs/no-such-run")
    expect(page.get_by_role("alert")).to_have_text(
        f"Eval run 'no-such-run' of '{KB}' was not found."
    )
    page.goto(f"{base}/console/kbs/{KB}/quality/runs/{run2}?compare={run2}")
    expect(page.locator("#report-problem")).to_contain_text("not with itself")
    expect(page.locator("#report-frame")).to_have_count(0)

    # Start a third run from the form; it shows in the list and succeeds.
    page.get_by_role("link", name=f"← All eval runs of {KB}").click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/quality")
    page.get_by_label("Test set", exact=True).select_option("smoke@1")
    start_version = page.get_by_label("Index version", exact=True)
    expect(start_version.locator("option[value='2']")).to_have_count(1)
    start_version.select_option("1")
    page.get_by_label("Passages (top k)").fill("3")
    page.get_by_role("button", name="Start the run").click()
    expect(page.locator("#start-ok")).to_contain_text("is queued on index version 1")
    expect(runs).to_have_count(3)
    newest = runs.first
    expect(newest).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    expect(newest).to_contain_text("top_k 3")
    expect(newest.locator("[data-metric='recall@3'] dd")).to_have_text(re.compile(r"^\d\.\d{3}$"))
    page.goto(f"{base}/console/kbs/{KB}/quality")
    expect(runs).to_have_count(3)
    shoot(page, shots, "quality")
    page.evaluate("() => document.getElementById('ab-h').scrollIntoView()")
    shoot(page, shots, "quality-ab-tests")

    # At phone width the page reflows; wide tables scroll inside their frame.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.evaluate("() => window.scrollTo(0, 0)")
    shoot(page, shots, "quality-phone")
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

    # The model registry: stage, lineage, parent; an admin moves it to staging.
    page.wait_for_load_state("networkidle")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    expect(page).to_have_url(f"{base}/console/models")
    entry = page.locator(f"#models-table tr[data-name='{MODEL}']")
    expect(entry).to_have_attribute("data-stage", "candidate")
    expect(entry).to_contain_text("fine-tuned from all-MiniLM-L6-v2")
    expect(entry).to_contain_text("hub_id: acme/" + MODEL)
    builtin = page.locator("#models-table tr[data-name='all-MiniLM-L6-v2']")
    expect(builtin).to_have_attribute("data-stage", "production")
    entry.get_by_role("button", name=f"Details of embedding model {MODEL}").click()
    detail = page.locator("#model-detail")
    expect(detail).to_be_focused()
    expect(page.locator("#model-lineage")).to_contain_text("Fine-tuned from")
    expect(
        page.locator("#model-lineage").get_by_role("button", name="all-MiniLM-L6-v2")
    ).to_be_visible()
    expect(page.locator("#model-lineage")).to_contain_text("handbook Q&A")
    stage_to = page.get_by_label("New stage")
    expect(stage_to.locator("option")).to_have_text(["staging", "archived"])
    stage_to.select_option("staging")
    page.get_by_label("Reason").fill("reviewed on the smoke set")
    page.get_by_role("button", name="Change stage").click()
    expect(page.locator("#stage-ok")).to_have_text(f"{MODEL} is now in staging.")
    expect(entry).to_have_attribute("data-stage", "staging")
    expect(page.locator("#model-history")).to_contain_text("candidate → staging")
    expect(page.locator("#model-history")).to_contain_text("reviewed on the smoke set")
    shoot(page, shots, "models")
    # The parent's own page lists it as a child.
    page.locator("#model-lineage").get_by_role("button", name="all-MiniLM-L6-v2").click()
    expect(page.locator("#model-h")).to_contain_text("all-MiniLM-L6-v2")
    expect(page.locator("#model-lineage").get_by_role("button", name=MODEL)).to_be_visible()
    expect(page.locator("#model-usage")).to_contain_text(f"knowledge base {KB}")
    watch.check(expected_errors=(f"404 GET {base}/console/kbs/{KB}/quality/runs/no-such-run",))
    context.close()

    # -- a reader of the KB: no Quality tab, no start-eval, no admin control ------------
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    watch = Watch(context, base)
    page = watch.page(context)
    sign_in(page, base, seeded["reader"])
    page.locator("#kb-table").get_by_role("link", name=KB).click()
    expect(page).to_have_url(f"{base}/console/kbs/{KB}/playground")
    expect(page.get_by_role("link", name="Quality")).to_have_count(0)
    page.goto(f"{base}/console/kbs/{KB}/quality")
    expect(page.locator("#quality-denied")).to_contain_text("may not read evaluation results")
    for control in ("#start-eval", "#runs-table", "#compare"):
        expect(page.locator(control)).to_have_count(0)
    page.goto(f"{base}/console/kbs/{KB}/quality/runs/{run1}")
    expect(page.locator("#quality-denied")).to_be_visible()
    expect(page.locator("#report-frame")).to_have_count(0)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    entry = page.locator(f"#models-table tr[data-name='{MODEL}']")
    expect(entry).to_have_attribute("data-stage", "staging")
    entry.get_by_role("button", name=f"Details of embedding model {MODEL}").click()
    expect(page.locator("#model-history")).to_contain_text("candidate → staging")
    expect(page.locator("#stage-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Change stage")).to_have_count(0)
    shoot(page, shots, "models-reader")
    watch.check(
        expected_errors=(
            f"403 GET {base}/console/kbs/{KB}/quality",
            f"403 GET {base}/console/kbs/{KB}/quality/runs/{run1}",
        )
    )
    context.close()

    if target := os.environ.get("RAGOPS_CONSOLE_SCREENSHOTS"):
        keep_screenshots(shots, Path(target))
    assert time.monotonic() - t0 < 120, "the browser flows should take well under two minutes"
