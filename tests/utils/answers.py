"""Helpers for the answer-chain tests: an app with the sample corpus indexed, the local
model loaded once per test process, and an SSE parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.generators.local import LocalGenerator
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.samples import build_corpus


@lru_cache(maxsize=1)
def local_generator() -> LocalGenerator:
    """The packaged SmolLM2, loaded once per process (~20 s): every app, generator and
    fake server in the session shares this model."""
    gen = LocalGenerator(None)
    gen.warm_up()
    return gen


def upload(client: Any, kb: str, files: list[tuple[str, bytes]], headers: Any = None) -> None:
    r = client.post(
        f"/v1/kbs/{kb}/documents",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=headers,
    )
    assert r.status_code == 202, r.text


def sample_files(tmp: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in build_corpus(tmp / "corpus")]


@contextmanager
def corpus_client(tmp: Path, kb: str = "docs", **overrides: Any) -> Iterator[TestClient]:
    """A TestClient over the real app whose KB `kb` holds the six sample documents
    (redaction off: these tests are about answers, and Presidio is slow to load)."""
    settings = make_settings(tmp / "data", redaction_enabled=False, **overrides)
    headers = {"Authorization": f"Bearer {settings.admin_key}"} if settings.admin_key else None
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        r = client.post("/v1/kbs", json={"name": kb}, headers=headers)
        assert r.status_code == 201, r.text
        upload(client, kb, sample_files(tmp), headers=headers)
        wait_for_documents(client, kb, expected=6, headers=headers)
        yield client


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """[(event, data)] from a text/event-stream body (data decoded as JSON)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        events.append((event, json.loads("\n".join(data))))
    return events
