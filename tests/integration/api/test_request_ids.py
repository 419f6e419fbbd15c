"""Request ids and error logging on a real server (uvicorn, in a thread): the caller's
`X-Request-ID` (or a generated one) comes back in the header and in error bodies, is on
the JSON log lines of the request and of the ingestion job it queued; an unhandled
error is logged exactly once, with its traceback, and answered 500 with the request id
on a connection that stays usable."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import api.routes.kbs
from api.app import create_app
from core.logs import JsonFormatter
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


class JsonLines(logging.Handler):
    """Formats each record as the service would (JSON) at emit time, in the thread and
    context that logged it, and keeps the parsed lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def with_id(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("request_id") == request_id]

    def access(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The request's access line: written once the response is sent, so it may come
        a moment after the client has the response."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.with_id(request_id) if line["logger"] == "ragops.access"]
            if lines or time.monotonic() > deadline:
                assert len(lines) == 1, lines
                return lines[0]
            time.sleep(0.02)


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    handler = JsonLines()
    # uvicorn's own loggers do not propagate to the root under its default config: listen
    # there too, so a second log of an error by the server would be seen.
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    root = loggers[0]
    level = root.level
    root.setLevel(logging.INFO)
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[httpx.Client]:
    settings = make_settings(tmp_path / "data", job_max_attempts=1)
    app = create_app(settings, components=SHARED_COMPONENTS)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/v1/kbs", json={"name": "handbook"}).status_code == 201
        yield client


def test_request_id_follows_the_upload_into_its_ingestion_job(server, logs):
    rid = "upload-7f3a.2026:01"
    r = server.post(
        "/v1/kbs/handbook/documents",
        files=[
            ("files", ("bees.txt", b"Honey bees dance to show where flowers are.", "text/plain"))
        ],
        headers={"X-Request-ID": rid},
    )
    assert r.status_code == 202, r.text
    assert r.headers["x-request-id"] == rid
    job_id = r.json()["documents"][0]["job_id"]
    wait_for_documents(server, "handbook", expected=1)

    access = logs.access(rid)
    assert access["route"] == "/v1/kbs/{kb}/documents" and access["status"] == 202
    assert access["method"] == "POST" and access["duration_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["timestamp"])
    lines = logs.with_id(rid)
    # Logged by the worker thread that ran the job, under the upload's request id.
    done = [line for line in lines if line.get("job_id") == job_id]
    assert any("succeeded" in line["message"] for line in done), lines
    assert all(line["level"] == "info" for line in done)

    # Other requests get ids of their own.
    r = server.get("/v1/kbs/handbook/documents")
    other = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", other) and other != rid


def test_error_bodies_carry_the_request_id(server, logs):
    r = server.get("/v1/kbs/no-such-kb", headers={"X-Request-ID": "lookup-1"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "lookup-1"
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "knowledge base 'no-such-kb' not found; create it with POST /v1/kbs",
        "request_id": "lookup-1",
    }
    # An unsafe id (spaces, too long) is replaced, never echoed or logged.
    for unsafe in ("two words", "x" * 200):
        r = server.get("/v1/kbs/no-such-kb", headers={"X-Request-ID": unsafe})
        replaced = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced)
        assert r.json()["error"]["request_id"] == replaced
    assert not any(unsafe in json.dumps(line) for line in logs.lines for unsafe in ("two words",))


def test_an_unhandled_error_is_logged_once_and_answered_with_the_request_id(
    server, logs, monkeypatch
):
    def broken_catalog(**_: Any) -> list[Any]:
        raise RuntimeError("catalog exploded")

    monkeypatch.setattr(api.routes.kbs, "kb_summaries", broken_catalog)
    r = server.get("/v1/kbs", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    assert r.headers.get("connection") != "close"
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "request_id": "boom-1",
        }
    }
    with_traceback = [line for line in logs.lines if "exception" in line]
    assert len(with_traceback) == 1, with_traceback
    (error,) = with_traceback
    assert error["level"] == "error" and error["request_id"] == "boom-1"
    assert error["message"] == "unhandled error: RuntimeError: catalog exploded"
    assert "Traceback (most recent call last)" in error["exception"]
    assert "RuntimeError: catalog exploded" in error["exception"]
    assert "broken_catalog" in error["exception"]
    assert not any("Exception in ASGI application" in line["message"] for line in logs.lines)
    access = logs.access("boom-1")
    assert access["status"] == 500 and access["route"] == "/v1/kbs"

    # The connection was not dropped: the same client keeps working.
    monkeypatch.undo()
    assert server.get("/v1/kbs").status_code == 200
