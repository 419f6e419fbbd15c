"""Reports of real eval runs: the sample corpus indexed twice (default chunks, then small
ones), the labelled sample queries evaluated on each version (one asked in Spanish, one in
Russian, one terse enough that only its declared language counts), then GET
/v1/evals/{id}/report in every format and `ragops report` through typer's runner."""

import csv
import io
import json

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from core.catalog.models import Chunk, EvalRun, JobStatus
from tests.conftest import make_settings
from tests.utils.answers import corpus_client
from tests.utils.api import wait_eval_run, wait_version
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(client, settings, run on v1, run on v2 with 48-token chunks)."""
    tmp = tmp_path_factory.mktemp("reports")
    with corpus_client(tmp, kb="kb") as c:
        cases = [{"question": q, "reference_doc_ids": [f]} for q, f in QUERIES]
        cases[5]["reference_answer"] = "Black answers 1.e4 with 1...c5, the Sicilian Defence."
        cases[3]["reference_answer"] = "Feed the starter once or twice a day."
        cases[0]["question"] = "What is a <b>pyroclastic</b> flow & how fast does it move?"
        cases[1]["question"] = "¿Cómo se indican las abejas obreras dónde están las flores?"
        cases[2]["question"] = "Кто изобрёл подвижный металлический шрифт в Европе и когда?"
        # too short to detect ("other"): the case's declared language decides
        cases[4]["question"] = "Fresnel lens range?"
        cases[4]["metadata"] = {"language": "en"}
        r = c.post("/v1/testsets", json={"name": "samples", "cases": cases})
        assert r.status_code == 201, r.text
        r = c.post("/v1/evals", json={"testset": "samples", "kb": "kb", "top_k": 3})
        run1 = wait_eval_run(c, r.json()["id"])
        r = c.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 48, "chunk_overlap": 8}})
        assert r.status_code == 202, r.text
        wait_version(c, "kb", 2)
        r = c.post(
            "/v1/evals", json={"testset": "samples", "kb": "kb", "index_version": 2, "top_k": 3}
        )
        run2 = wait_eval_run(c, r.json()["id"])
        yield c, make_settings(tmp / "data", redaction_enabled=False), run1, run2


def test_report_formats_over_the_api(runs):
    c, _, run1, run2 = runs
    # run 2's default baseline is run 1: the latest earlier run of the KB + test set
    r = c.get(f"/v1/evals/{run2['id']}/report", params={"format": "json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["run"]["id"] == run2["id"] and data["baseline"]["id"] == run1["id"]
    assert data["baseline_source"] == "latest earlier run"
    assert data["run"]["chunking"] == {"chunk_size": 48, "chunk_overlap": 8}
    assert data["baseline"]["chunking"]["chunk_size"] != 48
    assert len(data["questions"]) == 6
    regressions = [q["regression"] for q in data["questions"]]
    assert regressions == sorted(regressions)
    for row in data["aggregates"]:
        expected = round(
            run2["aggregate"][row["name"]]["mean"] - run1["aggregate"][row["name"]]["mean"], 6
        )
        assert row["delta"] == pytest.approx(expected, abs=1e-6)
    assert {"recall@3", "mrr", "rouge", "bleu"} <= set(data["compared_metrics"])
    assert [(h["run_id"], h["label"]) for h in data["history"]] == [
        (run1["id"], "B"),
        (run2["id"], "A"),
    ]
    # contexts come back with the chunk texts of both index versions
    first = data["questions"][0]
    assert first["a"]["contexts"] and all(ctx["text"] for ctx in first["a"]["contexts"])
    assert first["b"]["contexts"] and all(ctx["text"] for ctx in first["b"]["contexts"])
    assert len(first["a"]["contexts"]) == 3

    # per-language breakdown: counts from declared or detected languages, deltas per metric
    assert data["by_language"] == data["summary"]["by_language"]
    languages = {q["position"]: q["language"] for q in data["questions"]}
    assert languages == {1: "en", 2: "es", 3: "ru", 4: "en", 5: "en", 6: "en"}
    assert {lang: row["questions"] for lang, row in data["by_language"].items()} == {
        "en": 4,
        "es": 1,
        "ru": 1,
    }
    english = data["by_language"]["en"]
    assert english["baseline_questions"] == 4
    assert [m["name"] for m in english["metrics"]] == data["metrics"]
    for lang, row in data["by_language"].items():
        scores = [q for q in data["questions"] if q["language"] == lang]
        for m in row["metrics"]:
            a = [q["a"]["scores"][m["name"]] for q in scores]
            a = [v for v in a if v is not None]
            assert m["a_count"] == len(a)
            assert m["a"] == (pytest.approx(sum(a) / len(a), abs=1e-6) if a else None)
            if m["a"] is not None and m["b"] is not None:
                assert m["delta"] == pytest.approx(m["a"] - m["b"], abs=2e-6)

    r = c.get(f"/v1/evals/{run2['id']}/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert run1["id"] in page and run2["id"] in page
    assert data["summary"]["text"].split(";")[0] in page
    assert "What is a &lt;b&gt;pyroclastic&lt;/b&gt; flow &amp; how fast" in page
    assert page.count("data:image/png;base64,") == 3
    assert "size 48, overlap 8" in page
    assert '<h2 id="languages">By language</h2>' in page and "Russian" in page

    r = c.get(f"/v1/evals/{run2['id']}/report", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="eval-report-{run2["id"]}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(row["position"]) for row in rows] == [q["position"] for q in data["questions"]]
    assert {"recall@3_a", "recall@3_b", "recall@3_delta", "answer_a"} <= set(rows[0])
    assert {int(row["position"]): row["language"] for row in rows} == languages

    # Explicit baseline, both directions; the first run alone has no baseline.
    back = c.get(
        f"/v1/evals/{run1['id']}/report", params={"format": "json", "compare": run2["id"]}
    ).json()
    assert back["baseline"]["id"] == run2["id"] and back["baseline_source"] == "requested"
    for mine, theirs in zip(back["aggregates"], data["aggregates"], strict=True):
        assert mine["delta"] == pytest.approx(-theirs["delta"], abs=2e-6)
    alone = c.get(f"/v1/evals/{run1['id']}/report", params={"format": "json"}).json()
    assert alone["baseline"] is None and alone["summary"]["text"].startswith("No baseline")


def test_report_requests_are_validated(runs):
    c, _, run1, run2 = runs

    def error(run_id, status, **params):
        r = c.get(f"/v1/evals/{run_id}/report", params=params)
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    assert "format must be one of html, json, csv, got 'pdf'" in error(
        run2["id"], 422, format="pdf"
    )
    assert "eval run 'nope' not found" in error("nope", 404)
    assert "compare run 'nope' not found" in error(run2["id"], 404, compare="nope")
    assert "not with itself" in error(run2["id"], 422, compare=run2["id"])

    r = c.post(
        "/v1/testsets",
        json={
            "name": "other",
            "cases": [{"question": QUERIES[0][0], "reference_doc_ids": [QUERIES[0][1]]}],
        },
    )
    assert r.status_code == 201, r.text
    r = c.post("/v1/evals", json={"testset": "other", "kb": "kb", "top_k": 3})
    other = wait_eval_run(c, r.json()["id"])
    message = error(run2["id"], 422, compare=other["id"])
    assert f"run {run2['id']} scored test set samples@1 but run {other['id']} scored other@1" in (
        message
    )

    rt = c.app.state.runtime
    with rt.db.session() as s:
        row = s.get(EvalRun, other["id"])
        row.status, row.progress = JobStatus.RUNNING, 0.4
    assert error(other["id"], 409) == (
        f"eval run {other['id']} is 40% done; report when it has succeeded"
    )
    with rt.db.session() as s:
        row = s.get(EvalRun, other["id"])
        row.status, row.error = JobStatus.FAILED, "worker lost"
    assert "failed (worker lost)" in error(other["id"], 409)


def test_report_cli(runs, tmp_path, monkeypatch):
    _, settings, run1, run2 = runs
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    r = runner.invoke(cli.app, ["report", run2["id"]])
    assert r.exit_code == 0, r.output
    default = tmp_path / f"eval-report-{run2['id']}.html"
    assert f"wrote {default.name}" in r.stdout and "metrics" in r.stdout
    assert default.read_text().startswith("<!DOCTYPE html>")

    out = tmp_path / "review.json"
    r = runner.invoke(
        cli.app,
        ["report", run2["id"], "--compare", run1["id"], "--format", "json", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["baseline"]["id"] == run1["id"] and len(data["questions"]) == 6

    r = runner.invoke(cli.app, ["report", run1["id"], "--compare", run2["id"], "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 6 and rows[0]["mrr_b"] != ""

    r = runner.invoke(cli.app, ["report", run2["id"], "--format", "pdf"])
    assert r.exit_code == 2 and "use one of html, json, csv" in r.output
    r = runner.invoke(cli.app, ["report", "nope"])
    assert r.exit_code == 2 and "eval run 'nope' not found" in r.output
    r = runner.invoke(cli.app, ["report", run2["id"], "--compare", run2["id"]])
    assert r.exit_code == 2 and "another run" in r.output


def test_report_marks_garbage_collected_chunks(runs):
    """Runs last: it deletes the chunks run 1 retrieved, as GC of a retired version would."""
    c, _, run1, run2 = runs
    data = c.get(f"/v1/evals/{run2['id']}/report", params={"format": "json"}).json()
    gone = {ctx["chunk_id"] for q in data["questions"] for ctx in q["b"]["contexts"]}
    kept = {ctx["chunk_id"] for q in data["questions"] for ctx in q["a"]["contexts"]}
    rt = c.app.state.runtime
    with rt.db.session() as s:
        s.execute(delete(Chunk).where(Chunk.id.in_(gone - kept)))
    r = c.get(f"/v1/evals/{run2['id']}/report")
    assert r.status_code == 200 and "(chunk no longer stored)" in r.text
    data = c.get(f"/v1/evals/{run2['id']}/report", params={"format": "json"}).json()
    assert all(
        ctx["text"] is None
        for q in data["questions"]
        for ctx in q["b"]["contexts"]
        if ctx["chunk_id"] not in kept
    )
    assert all(ctx["text"] for q in data["questions"] for ctx in q["a"]["contexts"])
