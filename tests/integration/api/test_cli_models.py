"""`ragops models` against a real catalog: list, register, stage, show, delete."""

import pytest
from typer.testing import CliRunner

from api import cli
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.models import make_derived_model

pytestmark = [pytest.mark.integration]


def test_models_commands(tmp_path, monkeypatch):
    # The registry mechanics around MiniLM as the server default (the e5 default registers
    # itself the same way: tests/integration/api/test_multilingual_model.py).
    settings = make_settings(
        tmp_path / "data", redaction_enabled=False, embedding_model="all-MiniLM-L6-v2"
    )
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    monkeypatch.setattr(cli_helpers.console, "width", 200)  # keep table rows on one line
    model_dir = make_derived_model(tmp_path / "minilm-cls-256")
    runner = CliRunner()

    def ok(*args):
        r = runner.invoke(cli.app, ["models", *args])
        assert r.exit_code == 0, r.output
        return r.stdout

    def fails(*args):
        r = runner.invoke(cli.app, ["models", *args])
        assert r.exit_code == 2, r.output
        return " ".join(r.output.split())  # rich wraps stderr at 80 columns

    listing = ok("list")
    assert "all-MiniLM-L6-v2" in listing and "package: all-MiniLM-L6-v2" in listing
    assert "extractive" in ok("list", "--kind", "generator")
    assert "all-MiniLM" not in ok("list", "--kind", "generator")
    assert "unknown model kind 'llm'" in fails("list", "--kind", "llm")

    out = ok(
        "register",
        "embedding",
        "minilm-cls-256",
        "--source",
        str(model_dir),
        "--fine-tuned-from",
        "all-MiniLM-L6-v2",
        "--training-data",
        "s3://corpora/tickets",
        "--metadata",
        '{"dimension": 256}',
    )
    assert out.startswith("registered embedding model minilm-cls-256 (candidate, digest ")
    assert "must be a JSON object" in fails(
        "register", "embedding", "x", "--source", str(model_dir), "--metadata", "[1]"
    )
    assert "does not exist on the server" in fails(
        "register", "embedding", "x", "--source", str(tmp_path / "missing")
    )
    assert "already registered" in fails(
        "register", "embedding", "minilm-cls-256", "--source", str(model_dir)
    )

    assert "can move to staging, archived, not production" in fails(
        "stage", "embedding", "minilm-cls-256", "production"
    )
    out = ok("stage", "embedding", "minilm-cls-256", "staging", "--actor", "ana", "--reason", "ok")
    assert out.strip() == "embedding model minilm-cls-256 is staging"
    assert "knowledge base 'nope' not found" in fails(
        "stage", "embedding", "minilm-cls-256", "production", "--kb", "nope"
    )

    shown = ok("show", "embedding", "minilm-cls-256")
    assert "parent" in shown and "embedding:all-MiniLM-L6-v2 (production)" in shown
    assert "s3://corpora/tickets" in shown and "candidate → staging" in shown
    assert "ana" in shown and "used by" in shown
    assert "embedding:minilm-cls-256" in ok("show", "embedding", "all-MiniLM-L6-v2")
    assert "RAGOPS_EMBEDDING_MODEL" in ok("show", "embedding", "all-MiniLM-L6-v2")
    assert "not registered" in fails("show", "embedding", "nope")

    assert "in use by the server default RAGOPS_EMBEDDING_MODEL" in fails(
        "delete", "embedding", "all-MiniLM-L6-v2"
    )
    assert "ships with the service" in fails("delete", "generator", "openai")
    assert ok("delete", "embedding", "minilm-cls-256").strip() == (
        "deleted embedding model minilm-cls-256"
    )
    assert "minilm-cls-256" not in ok("list")
