"""`ragops ask` against a catalog built by the real app (in-process CLI runner)."""

import json

import pytest
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.answers import corpus_client
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ask_prints_an_answer_with_citations(tmp_path, monkeypatch):
    with corpus_client(tmp_path, kb="sample"):
        pass
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()
    query, filename = QUERIES[3]

    r = runner.invoke(cli.app, ["ask", query, "--kb", "sample", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["citations"][0]["filename"] == filename and body["generator"] == "extractive"

    r = runner.invoke(cli.app, ["ask", query, "--kb", "sample", "--stream"])
    assert r.exit_code == 0, r.output
    assert "[1] sourdough.md" in r.stdout and "prompt default@1" in r.stdout

    r = runner.invoke(cli.app, ["ask", query, "--kb", "nope"])
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(cli.app, ["ask", query, "--kb", "sample", "--stream", "--json"])
    assert r.exit_code == 2 and "do not combine" in r.output
