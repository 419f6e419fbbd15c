"""Regenerate docs/eval-report.png: a screenshot of the HTML report comparing two runs.

Two ways to get the runs:

    # two runs already in the configured catalog (RAGOPS_* settings, as `ragops` reads them)
    python docs/make_report_screenshot.py RUN_A --compare RUN_B

    # a throw-away demo: the sample corpus indexed with 200- then 48-token chunks, a
    # 20-question test set evaluated on each version (top_k 5 then 3 on the first, for
    # history), about two minutes on a laptop CPU
    python docs/make_report_screenshot.py --demo

The page is rendered in headless Chromium (/usr/bin/chromium, `make browser`) through
playwright and clipped to the top `--height` pixels, which keeps the PNG well under 1 MB.
`--html PATH` keeps the rendered page too.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (question, reference document, reference answer)
DEMO_CASES = [
    (
        "What is a pyroclastic flow and how fast does it move?",
        "volcanoes.pdf",
        "An avalanche of hot ash, pumice and gas moving at more than 100 km per hour.",
    ),
    (
        "Why does sticky rhyolitic magma explode?",
        "volcanoes.pdf",
        "It traps the gas, so pressure builds until the volcano explodes.",
    ),
    (
        "How do volcanologists forecast an eruption?",
        "volcanoes.pdf",
        "They watch earthquake swarms, ground swelling and sulphur dioxide from vents.",
    ),
    (
        "Why does Hawaii have volcanoes far from a plate boundary?",
        "volcanoes.pdf",
        "Hawaii sits above a hotspot, a plume of hot mantle.",
    ),
    (
        "How do worker bees tell each other where flowers are?",
        "honeybees.docx",
        "With the waggle dance: its angle gives the direction and its duration the distance.",
    ),
    (
        "What jobs do young worker bees do?",
        "honeybees.docx",
        "They clean cells and feed larvae with royal jelly.",
    ),
    (
        "How do bees turn nectar into honey?",
        "honeybees.docx",
        "They add invertase and fan the cells until the water is below eighteen percent.",
    ),
    (
        "Who invented movable metal type in Europe, and when?",
        "printing_press.html",
        "Johannes Gutenberg, in Mainz around 1450.",
    ),
    (
        "What was the Jikji?",
        "printing_press.html",
        "The oldest surviving book printed with movable metal type, made in Korea in 1377.",
    ),
    (
        "Which newspaper was first printed on a steam press?",
        "printing_press.html",
        "The Times of London, in 1814, on Friedrich Koenig's press.",
    ),
    (
        "How often should I feed my sourdough starter?",
        "sourdough.md",
        "Once a day at room temperature, or weekly when it is kept in the fridge.",
    ),
    (
        "What does a layer of grey liquid on my starter mean?",
        "sourdough.md",
        "It is hooch: the starter is hungry, not dead.",
    ),
    (
        "At what temperature do I bake the loaf?",
        "sourdough.md",
        "At 250 °C in a preheated Dutch oven.",
    ),
    (
        "How does a Fresnel lens make a lighthouse visible so far away?",
        "lighthouses.pptx",
        "Rings of glass prisms bend the lamp's light into one horizontal beam.",
    ),
    (
        "How did Smeaton's Eddystone tower resist the waves?",
        "lighthouses.pptx",
        "Dovetailed granite blocks and a curved base shaped like an oak trunk.",
    ),
    (
        "How can sailors tell one lighthouse from another at night?",
        "lighthouses.pptx",
        "Each one flashes a unique pattern, listed on charts.",
    ),
    (
        "What does Black play in the Sicilian Defence?",
        "chess_openings.txt",
        "Black answers 1.e4 with 1...c5.",
    ),
    (
        "What does White offer in the Queen's Gambit?",
        "chess_openings.txt",
        "A pawn, with 2.c4, to lure Black's d-pawn away from the centre.",
    ),
    (
        "Which square does the Italian Game attack?",
        "chess_openings.txt",
        "The f7 square, the weakest point in Black's camp.",
    ),
    (
        "What are the goals of the opening in chess?",
        "chess_openings.txt",
        "Control the centre, develop the pieces quickly and castle.",
    ),
]


def _poll(get, done, what: str, timeout: float = 900) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if done(value):
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def demo_report_html() -> str:
    """Build a demo KB in a temporary folder, run two evals, return the report page."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.config import Settings, apply_offline_defaults
    from eval.report import load_report
    from eval.report_html import render_html

    apply_offline_defaults()
    spec = importlib.util.spec_from_file_location(
        "build_samples", ROOT / "samples" / "build_samples.py"
    )
    assert spec is not None and spec.loader is not None
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp) / "data",
            environment="development",
            admin_key=None,
            redaction_enabled=False,
            database_url="",
        )
        with TestClient(create_app(settings)) as c:
            c.post("/v1/kbs", json={"name": "demo"}).raise_for_status()
            files = [
                ("files", (p.name, p.read_bytes(), "application/octet-stream"))
                for p in samples.build(Path(tmp) / "corpus")
            ]
            c.post("/v1/kbs/demo/documents", files=files).raise_for_status()
            _poll(
                lambda: c.get("/v1/kbs/demo/documents").json()["documents"],
                lambda docs: len(docs) == 6 and all(d["status"] == "indexed" for d in docs),
                "the sample documents",
            )
            cases = [
                {"question": q, "reference_doc_ids": [f], "reference_answer": a}
                for q, f, a in DEMO_CASES
            ]
            c.post("/v1/testsets", json={"name": "demo-qa", "cases": cases}).raise_for_status()

            def evaluate(**body: object) -> str:
                r = c.post("/v1/evals", json={"testset": "demo-qa", "kb": "demo", **body})
                r.raise_for_status()
                run = _poll(
                    lambda: c.get(f"/v1/evals/{r.json()['id']}").json(),
                    lambda run: run["status"] in ("succeeded", "failed"),
                    "an eval run",
                )
                if run["status"] != "succeeded":
                    raise SystemExit(f"eval run failed: {run['error']}")
                return run["id"]

            evaluate(top_k=5)  # history: an earlier configuration of the same KB
            baseline = evaluate(top_k=3)
            r = c.post(
                "/v1/kbs/demo/versions", json={"chunking": {"chunk_size": 48, "chunk_overlap": 8}}
            )
            r.raise_for_status()
            _poll(
                lambda: c.get("/v1/kbs/demo/versions/2").json(),
                lambda v: v["status"] == "ready" or bool(v["error"]),
                "index version 2",
            )
            candidate = evaluate(top_k=3, index_version=2)
            rt = c.app.state.runtime
            return render_html(load_report(rt, candidate, compare=baseline))


def catalog_report_html(run_id: str, compare: str | None) -> str:
    from api.runtime import Runtime
    from core.config import apply_offline_defaults, get_settings
    from eval.report import load_report
    from eval.report_html import render_html

    apply_offline_defaults()
    rt = Runtime(get_settings())
    rt.start(workers=False, warm_ingest=False)
    try:
        return render_html(load_report(rt, run_id, compare=compare))
    finally:
        rt.close()


def screenshot(html: str, out: Path, *, width: int, height: int, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "report.html"
        page_path.write_text(html, encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(page_path.as_uri(), wait_until="load")
            full = page.evaluate("document.documentElement.scrollHeight")
            clip = {"x": 0, "y": 0, "width": width, "height": min(height, full)}
            page.screenshot(path=str(out), full_page=True, clip=clip)
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_id", nargs="?", help="run A (omit with --demo)")
    parser.add_argument("--compare", help="run B (default: as the API chooses)")
    parser.add_argument("--demo", action="store_true", help="build a demo KB and two runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "eval-report.png")
    parser.add_argument("--html", type=Path, help="also write the rendered page here")
    parser.add_argument("--width", type=int, default=1360)
    parser.add_argument("--height", type=int, default=2300, help="clip to this many pixels")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if args.demo == bool(args.run_id):
        parser.error("give either RUN_ID (with optional --compare) or --demo")
    html = demo_report_html() if args.demo else catalog_report_html(args.run_id, args.compare)
    if args.html:
        args.html.write_text(html, encoding="utf-8")
    screenshot(html, args.out, width=args.width, height=args.height, chromium=args.chromium)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
