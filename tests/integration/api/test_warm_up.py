"""The app serves while it warms up: probes, uploads and model-needing requests during a
background warm-up, a failed warm-up, and a shutdown in the middle of one.

A gate holds one warm-up step (the real components are shared and loaded as usual), so
the test decides how long warming lasts."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.runtime
from api.app import create_app
from api.components import Components
from core.config import Settings
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_md

pytestmark = pytest.mark.integration


class _Gated:
    """A component whose `warm_up` waits for `gate` first; everything else is the real one."""

    def __init__(self, real: Any, gate: threading.Event) -> None:
        self._real, self._gate = real, gate

    def warm_up(self) -> None:
        assert self._gate.wait(120), "test gate never opened"
        self._real.warm_up()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class GatedComponents(Components):
    """The shared components, with the warm-up of `step` ("embedder" or "parser") held
    until `gate` is set."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step, self.gate = step, threading.Event()

    def embedder(self, settings: Settings, ref: str | None = None) -> Any:
        real = SHARED_COMPONENTS.embedder(settings, ref)
        return _Gated(real, self.gate) if self.step == "embedder" else real

    def parser(self, settings: Settings) -> Any:
        real = SHARED_COMPONENTS.parser(settings)
        return _Gated(real, self.gate) if self.step == "parser" else real

    def redactor(self, settings: Settings, policy: Any = None) -> Any:
        return SHARED_COMPONENTS.redactor(settings, policy)


def _poll_readyz(c: TestClient, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = c.get("/readyz").json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_serves_while_models_load_and_503s_model_requests_with_retry_after(tmp_path, monkeypatch):
    monkeypatch.setattr(api.runtime, "WARM_UP_WAIT_SECONDS", 0.5)
    components = GatedComponents("embedder")
    app = create_app(
        make_settings(tmp_path / "data"), components=components, background_warm_up=True
    )
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        body = r.json()
        assert body["status"] == "warming" and body["ready"] is False
        # The parser loads beside the model (its own process): it may be done already.
        assert body["warming"] in (
            ["embedding model", "parser", "redactor", "workers"],
            ["embedding model", "redactor", "workers"],
        )
        assert body["since_s"] >= 0 and body["error"] is None
        assert body["checks"] == {
            "models_loaded": False,
            "workers": False,
            "catalog": None,
            "catalog_writable": None,
            "blobs_writable": None,
            "disk_space": True,
        }
        # Catalog-only routes work; one that needs the model waits (bounded), then 503s.
        assert c.get("/v1/kbs").json()["data"] == []
        t0 = time.monotonic()
        r = c.post("/v1/kbs", json={"name": "early"})
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert "still warming up (embedding model, " in r.json()["error"]["message"]
        assert 0.4 < time.monotonic() - t0 < 10

        # A request already waiting when the model finishes loading goes through.
        monkeypatch.setattr(api.runtime, "WARM_UP_WAIT_SECONDS", 60)
        threading.Timer(0.5, components.gate.set).start()
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        body = _poll_readyz(c, lambda b: b["ready"])
        assert body["status"] == "ready" and body["warming"] == [] and body["error"] is None
        assert body["checks"] == {
            "models_loaded": True,
            "workers": True,
            "catalog": True,
            "catalog_writable": True,
            "blobs_writable": True,
            "disk_space": True,
        }
        assert c.get("/readyz").status_code == 200


def test_uploads_are_queued_while_warming_and_ingested_after(tmp_path):
    components = GatedComponents("parser")
    app = create_app(
        make_settings(tmp_path / "data"), components=components, background_warm_up=True
    )
    with TestClient(app) as c:
        _poll_readyz(c, lambda b: b["warming"][0] == "parser")
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        doc = make_md("Lighthouse", ["The lighthouse keeper climbs 120 steps every evening."])
        r = c.post("/v1/kbs/kb/documents", files=[("files", ("light.md", doc, "text/markdown"))])
        assert r.status_code == 202 and r.json()["documents"][0]["status"] == "pending"
        time.sleep(0.5)  # no worker runs before warm-up ends
        docs = c.get("/v1/kbs/kb/documents").json()["documents"]
        assert [d["status"] for d in docs] == ["pending"]
        assert c.get("/readyz").json()["warming"] == ["parser", "redactor", "workers"]

        components.gate.set()
        assert _poll_readyz(c, lambda b: b["ready"])["status"] == "ready"
        docs = wait_for_documents(c, "kb", expected=1)
        assert docs["light.md"]["status"] == "indexed"


def test_failed_warm_up_is_reported_by_readyz_and_logged(tmp_path, caplog):
    settings = make_settings(tmp_path / "data", embedding_model=str(tmp_path / "no-model"))
    app = create_app(settings, components=SHARED_COMPONENTS, background_warm_up=True)
    with caplog.at_level(logging.ERROR, logger="api.runtime"), TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        body = _poll_readyz(c, lambda b: b["status"] != "warming")
        assert body["status"] == "failed" and body["ready"] is False
        assert body["error"].startswith("embedding model: InvalidInput: embedding model")
        assert "not found" in body["error"]
        # The parser loaded beside the model (its own process) and is done; nothing after
        # the failed stage ran.
        assert body["warming"] == ["embedding model", "redactor", "workers"]
        r = c.get("/readyz")
        assert r.status_code == 503 and "retry-after" not in r.headers
        # Nothing waits on a failed warm-up: the request fails with the same reason.
        r = c.post("/v1/kbs", json={"name": "kb"})
        assert r.status_code == 422 and "not found" in r.json()["error"]["message"]
    assert "warm-up failed; GET /readyz reports: embedding model" in caplog.text


def test_shutdown_during_warm_up_does_not_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(api.runtime, "CLOSE_WAIT_SECONDS", 1.0)
    components = GatedComponents("embedder")
    app = create_app(
        make_settings(tmp_path / "data"), components=components, background_warm_up=True
    )
    try:
        with TestClient(app) as c:
            assert c.get("/readyz").json()["status"] == "warming"
            rt = c.app.state.runtime
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 15
        # The step in progress ends after the close; nothing starts after it.
        components.gate.set()
        rt._warm_thread.join(60)
        assert not rt._warm_thread.is_alive()
        assert not rt.ready and not rt.workers.alive
        # The parser's step ran beside the model's (a child process); the next stage never
        # started.
        assert rt.readiness().warming == ("redactor", "workers")
    finally:
        components.gate.set()
