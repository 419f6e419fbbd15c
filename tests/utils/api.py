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
        # One page of the largest size: a KB of more than 100 documents is listed whole.
        r = client.get(f"/v1/kbs/{kb}/documents", params={"limit": 1000}, headers=headers)
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


def _poll(fetch: Any, done: Any, what: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    value: dict[str, Any] = {}
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not finish in {timeout}s: {value}")


def wait_version(client: Any, kb: str, number: int, timeout: float = 180) -> dict[str, Any]:
    """Poll an index version until it is ready (a build error fails at once)."""

    def ready(v: dict[str, Any]) -> bool:
        assert not v["error"], v["error"]
        return v["status"] == "ready"

    return _poll(
        lambda: client.get(f"/v1/kbs/{kb}/versions/{number}").json(),
        ready,
        f"index version {number} of {kb}",
        timeout,
    )


def wait_eval_run(client: Any, run_id: str, timeout: float = 180) -> dict[str, Any]:
    """Poll an eval run until it ends; it must have succeeded."""
    run = _poll(
        lambda: client.get(f"/v1/evals/{run_id}").json(),
        lambda r: r["status"] in {"succeeded", "failed"},
        f"eval run {run_id}",
        timeout,
    )
    assert run["status"] == "succeeded", run["error"]
    return run


def wait_decision(client: Any, decision_id: str, timeout: float = 240) -> dict[str, Any]:
    """Poll a promotion decision until it is decided."""
    return _poll(
        lambda: client.get(f"/v1/decisions/{decision_id}").json(),
        lambda d: d["outcome"] not in ("pending", "deciding"),
        f"promotion decision {decision_id}",
        timeout,
    )


def wait_job(client: Any, job_id: str, timeout: float = 600) -> dict[str, Any]:
    """Poll a background job (`GET /v1/jobs/{id}`) until it succeeds or fails."""
    return _poll(
        lambda: client.get(f"/v1/jobs/{job_id}").json(),
        lambda j: j["status"] in ("succeeded", "failed"),
        f"job {job_id}",
        timeout,
    )
