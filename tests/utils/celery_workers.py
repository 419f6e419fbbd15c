"""What the scale-out tests share: `ragops worker` subprocesses with their output in a log
file, a flushed Redis database for their broker, and small one-topic documents."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import Settings
from tests.conftest import need_service

ROOT = Path(__file__).resolve().parents[2]
# The line a worker logs for each job it runs (its id).
RAN = re.compile(r"ran job ([0-9a-f]{32}) as ")

TOPICS = {
    "glaciers.txt": "Glaciers carve U-shaped valleys as compacted ice grinds over bedrock.",
    "tides.txt": "Ocean tides rise and fall twice a day under the pull of the moon.",
    "saffron.txt": "Saffron threads are the hand-picked stigmas of the crocus flower.",
    "violins.txt": "A violin's spruce top and maple back shape the warmth of its tone.",
    "compost.txt": "Compost heaps need air, moisture and a balance of green and brown waste.",
    "eclipses.txt": "A solar eclipse happens when the moon passes between earth and sun.",
    "origami.txt": "Origami cranes are folded from one square sheet without cuts or glue.",
    "espresso.txt": "Espresso forces hot water through finely ground coffee at high pressure.",
    "falconry.txt": "Falconers train hawks to hunt and return to the glove on command.",
    "sundials.txt": "A sundial's gnomon casts a shadow whose angle tells the solar time.",
    "kelp.txt": "Kelp forests grow in cold coastal water and shelter sea otters and urchins.",
    "mosaics.txt": "Roman mosaics were set from small stone tesserae pressed into mortar.",
}


@contextmanager
def flushed_redis(url: str) -> Iterator[str]:
    """A Redis database (by URL) emptied before and after; skips (fails under CI=true)
    when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        need_service("Redis", f"{url}: {exc.__class__.__name__}: {exc}")
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


class Worker:
    """`python -m api.cli worker` on `settings` (data dir, catalog, broker, queue, blob
    store), its output in a log file we can parse."""

    def __init__(self, log: Path, settings: Settings) -> None:
        self.log_path = log
        env = {
            **os.environ,
            "RAGOPS_DATA_DIR": str(settings.data_dir),
            "RAGOPS_DATABASE_URL": settings.database_url,
            "RAGOPS_CELERY_BROKER_URL": settings.celery_broker_url or "",
            "RAGOPS_CELERY_QUEUE": settings.celery_queue,
            "RAGOPS_BLOB_URL": settings.blob_url or "",
            "RAGOPS_BLOB_ACCESS_KEY": settings.blob_access_key or "",
            "RAGOPS_BLOB_SECRET_KEY": settings.blob_secret_key or "",
            "RAGOPS_WORKERS": "0",
            "RAGOPS_ENVIRONMENT": "test",
        }
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--log-level", "info"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, deadline: float) -> None:
        """Until Celery's "<nodename> ready." line, or `deadline` (time.monotonic())."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            if " ready." in self.output():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in time:\n{self.output()[-4000:]}")

    def ran(self) -> set[str]:
        return set(RAN.findall(self.output()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def wait_logged(workers: list[Worker], job_ids: set[str], timeout: float = 30) -> list[set[str]]:
    """What each worker logged as run, once the workers together logged every job in
    `job_ids` (or `timeout` passed). A job's state is final before its worker writes the
    "ran job" line, so reading the logs right after the state would race it."""
    deadline = time.monotonic() + timeout
    while True:
        ran = [w.ran() for w in workers]
        if job_ids <= set().union(*ran) or time.monotonic() > deadline:
            return ran
        time.sleep(0.2)
