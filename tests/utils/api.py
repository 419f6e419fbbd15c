"""Helpers for driving the API in tests (in-process TestClient or a real server)."""

from __future__ import annotations

import time
from typing import Any

FINAL = {"indexed", "failed"}


def wait_for_documents(
    client: Any,
    kb: str,
    *,
    expected: int,
    timeout: float = 120.0,
    headers: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Poll the document list until `expected` documents reached a final status; returns
    {filename: summary}."""
    deadline = time.monotonic() + timeout
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = client.get(f"/v1/kbs/{kb}/documents", headers=headers)
        assert r.status_code == 200, r.text
        docs = r.json()["documents"]
        if len(docs) >= expected and all(d["status"] in FINAL for d in docs):
            return {d["filename"]: d for d in docs}
        time.sleep(0.2)
    raise AssertionError(
        f"documents not processed in {timeout}s: {[(d['filename'], d['status']) for d in docs]}"
    )


def top_filename(
    client: Any, kb: str, query: str, headers: dict[str, str] | None = None, **body: Any
) -> str | None:
    r = client.post(f"/v1/kbs/{kb}/retrieve", json={"query": query, **body}, headers=headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    return results[0]["filename"] if results else None
