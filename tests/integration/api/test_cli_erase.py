"""`ragops erase` against a real catalog and index: a document, then a data subject, with
the receipt printed and the audit event written; bad arguments exit 2 with a reason."""

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_erase_command(tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli.app, list(args))

    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        upload(
            client,
            "kb",
            [
                ("a.txt", b"Maria Lopez-Quintero signed the lease for the Valencia office."),
                ("b.txt", b"The Valencia office opens at nine and closes at six."),
            ],
        )
        docs = wait_for_documents(client, "kb", expected=2)

        for args, reason in (
            ((), "either --kb and --document"),
            (("--document", docs["a.txt"]["id"]), "needs --kb"),
            (("--value", "ab"), "3-512 characters"),
            (("--kb", "kb", "--document", "0" * 32), "not found in knowledge base"),
            (("--kb", "nope", "--document", "0" * 32), "knowledge base 'nope' not found"),
        ):
            r = run("erase", *args)
            assert r.exit_code == 2, (args, r.output)
            assert reason in " ".join(r.output.split()), r.output

        r = run("erase", "--value", "maria lopez-quintero", "--json")
        assert r.exit_code == 0, r.output
        receipt = json.loads(r.stdout)
        assert receipt["stores"]["documents"]["ids"] == [docs["a.txt"]["id"]]
        assert "lopez" not in r.stdout.casefold()

        r = run("erase", "--kb", "kb", "--document", docs["b.txt"]["id"])
        assert r.exit_code == 0, r.output
        assert "documents: 1" in r.stdout and "vectors: 1" in r.stdout
        assert client.get("/v1/kbs/kb/documents").json()["documents"] == []
        events = client.get("/v1/audit", params={"limit": 1000}).json()["events"]
        erases = [(e["action"], e["key_id"]) for e in events if "eras" in e["action"]]
        assert erases == [("erasure.subject", "cli"), ("document.erase", "cli")]
