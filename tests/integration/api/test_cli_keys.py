"""`ragops keys` and `ragops audit` against a real catalog, and the keys they make working
over HTTP."""

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from api.cli import helpers as cli_helpers
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration]


def test_keys_and_audit_commands(tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "data", redaction_enabled=False, admin_key="boot")
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    monkeypatch.setattr(cli_helpers.console, "width", 200)
    runner = CliRunner()

    def ok(*args):
        r = runner.invoke(cli.app, list(args))
        assert r.exit_code == 0, r.output
        return r.stdout

    def fails(*args):
        r = runner.invoke(cli.app, list(args))
        assert r.exit_code == 2, r.output
        return " ".join(r.output.split())

    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        boot = {"Authorization": "Bearer boot"}
        assert client.post("/v1/kbs", json={"name": "handbook"}, headers=boot).status_code == 201

        out = ok("keys", "create", "bot", "--role", "reader", "--kb", "handbook")
        secret = out.strip().splitlines()[-1]
        assert secret.startswith("rgo_")
        key = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/kbs/handbook", headers=key).status_code == 200
        assert client.post("/v1/kbs/handbook/versions", json={}, headers=key).status_code == 403

        listing = ok("keys", "list")
        assert "bot" in listing and "reader" in listing and "handbook" in listing
        assert secret not in listing

        assert "--kb" in fails("keys", "create", "x", "--role", "reader")
        assert "not one of" in fails("keys", "create", "x", "--role", "root", "--all-kbs")
        assert "not found" in fails("keys", "create", "x", "--role", "reader", "--kb", "nope")
        assert "exists" in fails("keys", "create", "bot", "--role", "reader", "--all-kbs")

        rotated = ok("keys", "rotate", "bot").strip().splitlines()[-1]
        assert rotated != secret
        # Another process changed the key: this one's cache forgets it within its TTL.
        client.app.state.runtime.keys.invalidate()
        assert client.get("/v1/kbs", headers=key).status_code == 401
        assert client.get("/v1/kbs", headers={"Authorization": f"Bearer {rotated}"}).json()

        ok("keys", "delete", "bot")
        client.app.state.runtime.keys.invalidate()
        gone = client.get("/v1/kbs", headers={"Authorization": f"Bearer {rotated}"})
        assert gone.status_code == 401
        assert "not found" in fails("keys", "delete", "bot")

    lines = [json.loads(line) for line in ok("audit", "--jsonl").splitlines()]
    actions = [(e["key_id"], e["action"]) for e in lines]
    assert ("bootstrap", "kb.create") in actions
    assert [a for k, a in actions if k == "cli"] == ["key.create", "key.rotate", "key.delete"]
    assert any(e["outcome"] == "denied" and e["kb"] == "handbook" for e in lines)
    assert secret not in json.dumps(lines) and rotated not in json.dumps(lines)
    table = ok("audit", "--outcome", "denied")
    assert "auth.denied" in table
    assert "--outcome" in fails("audit", "--outcome", "maybe")
