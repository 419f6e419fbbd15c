"""The real server as a subprocess: upload a multi-format corpus, query it, kill it hard
with work still queued, restart it, and check that the index and the queue survived; the
port opens at once and `/readyz` reports the warm-up behind it (time-to-listen and
time-to-ready are printed: run with -s to see them)."""

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
        self.spawned = time.monotonic()
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
        # Seconds from spawn until the port accepted a connection, /healthz answered 200,
        # /readyz answered 200; and the distinct 503 bodies of /readyz seen before that.
        self.listen_s: float | None = None
        self.health_s: float | None = None
        self.ready_s: float | None = None
        self.not_ready: list[dict] = []

    def _check(self, deadline: float) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"server not ready in time; /readyz said {self.not_ready[-1:]}")

    def wait_listening(self, timeout: float = 120) -> None:
        """Until the port accepts a TCP connection and /healthz answers 200."""
        deadline = time.monotonic() + timeout
        while self.listen_s is None:
            self._check(deadline)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.listen_s = time.monotonic() - self.spawned
            except OSError:
                time.sleep(0.05)
        while self.health_s is None:
            self._check(deadline)
            if self.client.get("/healthz").status_code == 200:
                self.health_s = time.monotonic() - self.spawned
            else:
                time.sleep(0.1)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        self.wait_listening(timeout)
        while True:
            self._check(deadline)
            r = self.client.get("/readyz")
            if r.status_code == 200:
                self.ready_s = time.monotonic() - self.spawned
                return
            body = {k: v for k, v in r.json().items() if k != "since_s"}
            if body not in self.not_ready:
                self.not_ready.append(body)
            time.sleep(0.2)

    def timings(self) -> str:
        return f"listening after {self.listen_s:.1f}s, ready after {self.ready_s:.1f}s"

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


def test_port_opens_at_once_and_readyz_reports_the_warm_up(tmp_path):
    server = Server(tmp_path / "data", tmp_path / "server.log")
    try:
        server.wait_ready()
        print(f"\ne2e: fresh start: {server.timings()}")
        assert server.listen_s <= server.health_s < server.ready_s
        # Between the two, /readyz said 503 and named what was still loading.
        assert server.not_ready, "/readyz was never seen warming"
        first = server.not_ready[0]
        assert first["status"] == "warming" and first["ready"] is False, first
        assert "embedding model" in first["warming"] and first["warming"][-1] == "workers"
        assert all(b["error"] is None for b in server.not_ready), server.not_ready
        assert server.client.get("/readyz").json()["checks"] == {
            "models_loaded": True,
            "workers": True,
            "catalog": True,
            "catalog_writable": True,
            "blobs_writable": True,
            "disk_space": True,
        }
    finally:
        server.stop()


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
        idle.wait_listening()  # uploads are taken while the models load
        r = upload(idle, "e2e", late)
        assert r.status_code == 202
        assert {d["status"] for d in r.json()["documents"]} == {"pending"}
    finally:
        idle.kill()

    # Restarted after a kill -9: the port opens before the models load, an upload is
    # taken while they do, and the jobs queued before the crash run once warm-up ends.
    again = Server(data_dir, log)
    try:
        again.wait_listening()
        during = [("lighthouse.md", make_md("Lighthouse", ["The keeper climbs 120 steps."]))]
        r = upload(again, "e2e", during)
        assert r.status_code == 202 and r.json()["documents"][0]["status"] == "pending"
        again.wait_ready()
        print(f"e2e: restart after kill -9: {again.timings()}")
        assert again.not_ready and again.not_ready[0]["status"] == "warming", again.not_ready
        # The index written before the crash serves at once.
        assert top_filename(again.client, "e2e", QUERIES[0][0]) == QUERIES[0][1]
        docs = wait_for_documents(again.client, "e2e", expected=9)
        assert {d["status"] for d in docs.values()} == {"indexed"}
        assert top_filename(again.client, "e2e", "keeper climbs steps") == "lighthouse.md"
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
