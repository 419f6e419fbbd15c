"""`ragops gate`, gated `ragops promote`, `ragops decisions` and `ragops schedule` on a
catalog built by the real app (12 QA documents in en/es/ru, 36 questions)."""

import json
import time

import pytest
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.models import make_derived_model
from tests.utils.qa_kb import qa_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_gate_promote_decisions_and_schedules(tmp_path, monkeypatch):
    model = make_derived_model(tmp_path / "squeezed", out_features=8)
    with qa_client(tmp_path, kb="sample", docs_per_language=4, testset="smoke") as c:
        r = c.post(
            "/v1/kbs/sample/versions",
            json={"embedding_model": str(model), "chunking": {"chunk_size": 120}},
        )
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 120
        while c.get("/v1/kbs/sample/versions/2").json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()

    r = runner.invoke(cli.app, ["gate", "show", "--kb", "sample"])
    assert r.exit_code == 1 and "no quality gate" in r.output
    base = ["gate", "set", "--kb", "sample", "--testset", "smoke"]
    r = runner.invoke(cli.app, [*base, "--min", "mrr"])
    assert r.exit_code == 2 and "metric=number" in r.output
    r = runner.invoke(cli.app, [*base, "--min", "bogus=0.5"])
    assert r.exit_code == 2 and "bogus" in r.output
    r = runner.invoke(
        cli.app,
        [
            *base,
            "--min",
            "recall@k=0.5",
            "--max-regression",
            "0.02",
            "--metric",
            "mrr",
            "--mode",
            "dense",
            "--top-k",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output

    r = runner.invoke(cli.app, ["promote", "2", "--kb", "sample", "--actor", "ana"])
    assert r.exit_code == 3, r.output
    assert "refused" in r.output and "mrr" in r.output
    r = runner.invoke(cli.app, ["promote", "2", "--kb", "sample", "--force", "--actor", "bob"])
    assert r.exit_code == 2 and "reason" in r.output
    r = runner.invoke(cli.app, ["decisions", "--kb", "sample"])
    assert r.exit_code == 0 and "refused" in r.output and "ana" in r.output
    # The refused promotion is in the audit log, made by the command line.
    r = runner.invoke(cli.app, ["audit", "--action", "version.promote", "--jsonl"])
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(e["key_id"], e["kb"], e["outcome"]) for e in events] == [("cli", "sample", "error")]
    assert events[0]["detail"]["decision"] == "refused" and events[0]["target"] == "version 2"

    r = runner.invoke(
        cli.app,
        [
            "schedule",
            "add",
            "n",
            "--kind",
            "live_nightly",
            "--testset",
            "smoke",
            "--cron",
            "every night",
        ],
    )
    assert r.exit_code == 2 and "crontab" in r.output
    r = runner.invoke(
        cli.app,
        [
            "schedule",
            "add",
            "nightly",
            "--kind",
            "live_nightly",
            "--testset",
            "smoke",
            "--kb",
            "sample",
        ],
    )
    assert r.exit_code == 0 and "0 2 * * *" in r.output
    r = runner.invoke(cli.app, ["schedule", "run", "nightly"])
    assert r.exit_code == 0 and "queued 1 eval runs" in r.output
    r = runner.invoke(cli.app, ["schedule", "list"])
    assert r.exit_code == 0 and "nightly" in r.output
