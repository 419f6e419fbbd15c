"""The real server as a subprocess: upload a multi-format corpus, query it, kill it hard
with work still queued, restart it, and check that the index and the queue survived."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.api import top_filename, wait_for_documents
from tests.utils.corpus import make_html, make_md
from tests.utils.samples import QUERIES, build_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "RAGOPS_DATA_DIR": str(data_dir),
            "RAGOPS_ADMIN_KEY": KEY,
            "RAGOPS_JOB_LEASE_SECONDS": "3",
            "RAGOPS_JOB_POLL_SECONDS": "0.1",
            **env,
        }
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, headers=AUTH, timeout=30)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError("server not ready in time")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.client.close()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()
        self.log.close()


def upload(server: Server, kb: str, items: list[tuple[str, bytes]]) -> httpx.Response:
    return server.client.post(
        f"/v1/kbs/{kb}/documents",
        files=[("files", (n, d, "application/octet-stream")) for n, d in items],
    )


def test_upload_query_restart(tmp_path):
    data_dir = tmp_path / "data"
    log = tmp_path / "server.log"
    corpus = [(p.name, p.read_bytes()) for p in build_corpus(tmp_path / "corpus")]

    server = Server(data_dir, log)
    try:
        server.wait_ready()
        assert server.client.post("/v1/kbs", json={"name": "e2e"}).status_code == 201
        t0 = time.monotonic()
        assert upload(server, "e2e", corpus).status_code == 202
        docs = wait_for_documents(server.client, "e2e", expected=6)
        elapsed = time.monotonic() - t0
        assert {d["status"] for d in docs.values()} == {"indexed"}, docs
        chunks = sum(d["chunk_count"] for d in docs.values())
        print(f"\ne2e: 6 documents, {chunks} chunks indexed in {elapsed:.1f}s")
        for query, expected in QUERIES:
            assert top_filename(server.client, "e2e", query) == expected, query
    finally:
        server.kill()

    # A server with no workers accepts uploads; the jobs wait in the catalog when it dies.
    late = [
        (
            "harbour.md",
            make_md("Harbour", ["The ferry to the island leaves at nine from the eastern quay."]),
        ),
        (
            "observatory.html",
            make_html(
                "Observatory", ["The telescope dome opens on clear nights for public stargazing."]
            ),
        ),
    ]
    idle = Server(data_dir, log, RAGOPS_WORKERS="0")
    try:
        idle.wait_ready()
        r = upload(idle, "e2e", late)
        assert r.status_code == 202
        assert {d["status"] for d in r.json()["documents"]} == {"pending"}
    finally:
        idle.kill()

    again = Server(data_dir, log)
    try:
        again.wait_ready()
        # The index written before the crash serves at once.
        assert top_filename(again.client, "e2e", QUERIES[0][0]) == QUERIES[0][1]
        docs = wait_for_documents(again.client, "e2e", expected=8)
        assert {d["status"] for d in docs.values()} == {"indexed"}
        assert top_filename(again.client, "e2e", "when does the ferry leave") == "harbour.md"
        assert top_filename(again.client, "e2e", "stargazing telescope") == "observatory.html"
    finally:
        again.stop()


def test_cli_ingest_and_query(tmp_path):
    corpus_dir = tmp_path / "corpus"
    build_corpus(corpus_dir)
    (corpus_dir / "junk.bin").write_bytes(bytes(range(256)) * 4)
    env = {**os.environ, "RAGOPS_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "api.cli"]
    run = subprocess.run(
        [*cli, "ingest", str(corpus_dir), "--kb", "cli"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out  # junk.bin was rejected: the run says so
    assert "junk.bin" in out and "unsupported" in out
    assert "6 queued, 0 unchanged, 1 rejected" in out
    assert out.count("indexed") >= 6

    rerun = subprocess.run(
        [*cli, "ingest", str(corpus_dir / "sourdough.md"), "--kb", "cli"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0 and "0 queued, 1 unchanged" in rerun.stdout

    q = subprocess.run(
        [*cli, "query", QUERIES[3][0], "--kb", "cli", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert q.returncode == 0, q.stderr
    import json

    assert json.loads(q.stdout)["results"][0]["filename"] == QUERIES[3][1]

    missing = subprocess.run(
        [*cli, "query", "x", "--kb", "nope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_cli_ingest_resumes_after_ctrl_c(tmp_path):
    corpus_dir = tmp_path / "corpus"
    build_corpus(corpus_dir)
    env = {**os.environ, "RAGOPS_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "api.cli", "ingest", str(corpus_dir), "--kb", "resume"]
    # No workers: everything is queued and the progress bar waits, so Ctrl-C lands
    # with the whole batch unfinished.
    first = subprocess.Popen(
        cli,
        cwd=ROOT,
        env={**env, "RAGOPS_WORKERS": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    seen = ""
    while "queued" not in seen:
        assert time.monotonic() < deadline and first.poll() is None, seen
        seen += first.stdout.readline()
    time.sleep(1)
    first.send_signal(signal.SIGINT)
    out = seen + first.communicate(timeout=60)[0]
    assert first.returncode == 130, out
    assert "6 queued" in out and "run the same command again" in out

    second = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "6 queued, 0 unchanged" in second.stdout  # still pending, so waited for again
    assert second.stdout.count("indexed") >= 6
