"""Compare two real index versions on the multilingual QA set: 108 documents (en/es/ru),
324 questions with reference documents and answers. Version 1 uses the default chunking
(200 model tokens), version 2 small chunks (48 tokens, 8 overlap). Both are evaluated
with the same generator, prompt and retrieval parameters; the report (HTML, JSON, CSV)
compares them question by question, and the KB's quality gate decides whether version 2
may replace version 1.

    python tests/bench/bench_eval_versions.py [--data-dir data/bench-eval] [--per-language 36]

Prints the aggregates, the report's verdict and the gate decision; writes
`tests/bench/results/eval_versions.json` (aggregates + summary) and the report files
into the data dir. The catalog stays there, so `ragops report` and
`docs/make_report_screenshot.py` can be pointed at it (RAGOPS_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.utils.components import SHARED_COMPONENTS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "tests" / "bench" / "results" / "eval_versions.json"
GATE = {"testset": "qa", "max_regression": 0.02, "min_scores": {"recall@k": 0.8}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench-eval")
    parser.add_argument("--per-language", type=int, default=36)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.config import Settings, apply_offline_defaults
    from eval.report import load_report, summarize
    from eval.report_html import render_html
    from tests.bench.qa import render
    from tests.utils.api import wait_eval_run, wait_for_documents, wait_version
    from tests.utils.qa_kb import qa_subset

    apply_offline_defaults()
    if (args.data_dir / "catalog.db").exists():
        raise SystemExit(f"{args.data_dir} already holds a catalog; remove it or pick another")
    settings = Settings(
        _env_file=None,
        data_dir=args.data_dir,
        environment="development",
        admin_key=None,
        redaction_enabled=False,
        database_url="",
        scheduler_embedded=False,
    )
    docs, cases = qa_subset(args.per_language)
    started = time.perf_counter()
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        c.post("/v1/kbs", json={"name": "qa"}).raise_for_status()
        files = [("files", (d["filename"], render(d), "text/plain")) for d in docs]
        for i in range(0, len(files), 20):  # within the per-request file limit
            c.post("/v1/kbs/qa/documents", files=files[i : i + 20]).raise_for_status()
        indexed = wait_for_documents(c, "qa", expected=len(docs), timeout=1800)
        failed = [name for name, d in indexed.items() if d["status"] != "indexed"]
        if failed:
            raise SystemExit(f"documents failed to ingest: {failed}")
        ingest_s = time.perf_counter() - started
        c.post("/v1/testsets", json={"name": "qa", "cases": cases}).raise_for_status()
        c.post(
            "/v1/kbs/qa/versions", json={"chunking": {"chunk_size": 48, "chunk_overlap": 8}}
        ).raise_for_status()
        wait_version(c, "qa", 2, timeout=1800)

        def evaluate(version: int) -> dict:
            r = c.post("/v1/evals", json={"testset": "qa", "kb": "qa", "index_version": version})
            r.raise_for_status()
            return wait_eval_run(c, r.json()["id"], timeout=1800)

        base, cand = evaluate(1), evaluate(2)
        rt = c.app.state.runtime
        report = load_report(rt, cand["id"], compare=base["id"])
        (args.data_dir / "report.html").write_text(render_html(report), encoding="utf-8")
        c.put("/v1/kbs/qa/quality-gate", json=GATE).raise_for_status()
        r = c.post("/v1/kbs/qa/versions/2/promote", json={"actor": "bench"})
        decision = r.json().get("decision") or r.json()["error"]["details"]
        for fmt in ("json", "csv"):
            body = c.get(f"/v1/evals/{cand['id']}/report", params={"format": fmt}).content
            (args.data_dir / f"report.{fmt}").write_bytes(body)
    means = {
        f"v{run['key']['index_version']}": {k: v["mean"] for k, v in run["aggregate"].items()}
        for run in (base, cand)
    }
    out = {
        "documents": len(docs),
        "questions": len(cases),
        "ingest_seconds": round(ingest_s, 1),
        "eval_seconds": {"v1": base["wall_seconds"], "v2": cand["wall_seconds"]},
        "runs": {"v1": base["id"], "v2": cand["id"]},
        "keys": {"v1": base["key"], "v2": cand["key"]},
        "aggregates": means,
        "report": summarize(report),
        "gate": {
            "policy": GATE,
            "status_code": r.status_code,
            "outcome": decision["outcome"],
            "summary": decision["evidence"].get("summary"),
        },
    }
    RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
