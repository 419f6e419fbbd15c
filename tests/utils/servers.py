"""Run an ASGI app on a free 127.0.0.1 port in a background thread (for clients that need
a real HTTP server, such as the official `openai` SDK)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: Any, *, timeout: float = 120.0) -> Iterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT`) once the app has started (lifespan
    included); stops it on exit."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test server on port {port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 300) -> None:
    """Until `url`/readyz answers 200; fails if the server exits or the deadline passes
    (generous: model loading on a busy 2-core machine)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        assert time.monotonic() < deadline, "server not ready in time"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


@contextmanager
def ragops_server(tmp: Path, key: str, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`ragops serve` in a subprocess on a fresh data dir under `tmp` (its own event loop
    and GIL, as in production; redaction and the embedded scheduler off unless `env`
    says otherwise). Yields (process, base URL) once /readyz answers; stops it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environ = {
        **os.environ,
        "RAGOPS_DATA_DIR": str(tmp / "data"),
        "RAGOPS_ADMIN_KEY": key,
        "RAGOPS_REDACTION_ENABLED": "false",
        "RAGOPS_SCHEDULER_EMBEDDED": "false",
        **env,
    }
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"]
    with (tmp / "server.log").open("ab") as log:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, url)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def sample_corpus_server(tmp: Path, key: str, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`ragops_server` whose KB `docs` holds the six sample documents, indexed."""
    from tests.utils.answers import sample_files
    from tests.utils.api import wait_for_documents

    with ragops_server(tmp, key, **env) as (proc, url):
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
            assert http.post("/v1/kbs", json={"name": "docs"}).status_code == 201
            files = [("files", (n, d, "application/octet-stream")) for n, d in sample_files(tmp)]
            assert http.post("/v1/kbs/docs/documents", files=files).status_code == 202
            wait_for_documents(http, "docs", expected=6, timeout=300)
        yield proc, url
