"""`/readyz` checks that storage can be written, on the real catalogs and blob store: a
catalog whose write lock another connection holds, a blob directory that cannot be
written and too little free disk each answer 503 naming the check and its reason, and
ready again once the fault is gone. The probes leave nothing behind.

The faults work as root too (a chmod would not stop root): another connection holding
SQLite's write lock or PostgreSQL's table lock, and a regular file in place of the blob
directory."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from api.app import create_app
from api.routes.health import WRITE_PROBE_TIMEOUT_S
from core.catalog.models import Lease
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration]

STORAGE = ("catalog", "catalog_writable", "blobs_writable", "disk_space")


def client_for(tmp_path: Path, catalog_url: str = "", **overrides: Any) -> TestClient:
    settings = make_settings(tmp_path / "data", database_url=catalog_url, workers=0, **overrides)
    return TestClient(create_app(settings, components=SHARED_COMPONENTS))


def not_ready(client: TestClient, failing: str) -> dict[str, Any]:
    r = client.get("/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["status"] == "not_ready"
    assert [name for name in STORAGE if not body["checks"][name]] == [failing], body
    assert set(body["reasons"]) == {failing}
    return body


def test_healthy_storage_is_ready_and_the_probes_leave_nothing(tmp_path, catalog_url):
    with client_for(tmp_path, catalog_url) as client:
        for _ in range(2):
            r = client.get("/readyz")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "ready" and body["reasons"] == {}
            assert all(body["checks"][name] is True for name in STORAGE)
        rt = client.app.state.runtime
        with rt.db.session() as s:
            assert s.execute(select(func.count()).select_from(Lease)).scalar() == 0
        assert list(rt.settings.blob_dir.iterdir()) == []


def test_a_catalog_that_cannot_be_written_is_not_ready(tmp_path, catalog_url):
    with client_for(tmp_path, catalog_url) as client:
        assert client.get("/readyz").status_code == 200
        rt = client.app.state.runtime
        if catalog_url.startswith("sqlite"):
            holder = sqlite3.connect(rt.db.engine.url.database, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # readers go on (WAL), writers wait
            release = holder.rollback
        else:
            engine = create_engine(catalog_url)
            conn = engine.connect()
            conn.execute(text("LOCK TABLE leases IN EXCLUSIVE MODE"))  # reads go on

            def release() -> None:
                conn.rollback()
                conn.close()
                engine.dispose()

        try:
            started = time.monotonic()
            body = not_ready(client, "catalog_writable")
            assert time.monotonic() - started < WRITE_PROBE_TIMEOUT_S + 2, "the probe hung"
        finally:
            release()
        reason = body["reasons"]["catalog_writable"]
        expected = "database is locked" if catalog_url.startswith("sqlite") else "lock timeout"
        assert expected in reason, reason
        assert client.get("/readyz").status_code == 200


def test_a_blob_store_that_cannot_be_written_is_not_ready(tmp_path):
    with client_for(tmp_path) as client:
        root = client.app.state.runtime.settings.blob_dir
        shutil.rmtree(root, ignore_errors=True)
        root.write_bytes(b"")  # a file where the blob directory must be
        body = not_ready(client, "blobs_writable")
        assert body["reasons"]["blobs_writable"].startswith("FileExistsError")
        root.unlink()
        assert client.get("/readyz").status_code == 200


def test_too_little_free_disk_is_not_ready(tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    with client_for(tmp_path, min_free_disk_mb=free_mb + 10_000) as client:
        body = not_ready(client, "disk_space")
        assert "below RAGOPS_MIN_FREE_DISK_MB" in body["reasons"]["disk_space"]
    with client_for(tmp_path, min_free_disk_mb=1) as client:
        assert client.get("/readyz").status_code == 200
