"""`ragops testset` and `ragops eval` against a catalog built by the real app."""

import json

import pytest
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.answers import corpus_client
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_testset_upload_list_and_eval(tmp_path, monkeypatch):
    with corpus_client(tmp_path, kb="sample"):
        pass
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        "\n".join(json.dumps({"question": q, "reference_doc_ids": [f]}) for q, f in QUERIES[:3])
    )

    r = runner.invoke(cli.app, ["testset", "upload", str(cases), "--name", "smoke"])
    assert r.exit_code == 0, r.output
    assert "test set smoke version 1: 3 cases" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reference_answer\n,x\n")
    r = runner.invoke(cli.app, ["testset", "upload", str(bad), "--name", "smoke"])
    assert r.exit_code == 2 and "line 2: field 'question'" in r.output
    r = runner.invoke(cli.app, ["testset", "list"])
    assert r.exit_code == 0 and "smoke" in r.stdout

    r = runner.invoke(cli.app, ["eval", "--kb", "sample", "--testset", "smoke", "--wait", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "succeeded" and body["aggregate"]["recall@5"]["mean"] == 1.0

    r = runner.invoke(cli.app, ["eval", "--kb", "sample", "--testset", "smoke", "--wait"])
    assert r.exit_code == 0, r.output
    assert "recall@5" in r.stdout and "1.0000" in r.stdout
    r = runner.invoke(cli.app, ["eval", "--kb", "sample", "--testset", "smoke"])
    assert r.exit_code == 0 and "queued eval run" in r.stdout
    r = runner.invoke(cli.app, ["eval", "--kb", "sample", "--testset", "nope"])
    assert r.exit_code == 2 and "not found" in r.output
