"""`ragops check`, the health check the compose file uses for workers and the scheduler."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def check(tmp_path, **env):
    environ = {**os.environ, "RAGOPS_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_passes_when_services_answer(tmp_path):
    r = check(tmp_path, RAGOPS_CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    if r.returncode != 0 and "broker" in r.stderr:
        from tests.conftest import need_service

        need_service("Redis", r.stderr.strip())
    assert r.returncode == 0 and "ok" in r.stdout


def test_check_names_what_is_down(tmp_path):
    r = check(
        tmp_path,
        RAGOPS_CELERY_BROKER_URL="redis://127.0.0.1:9/0",
        RAGOPS_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none",
    )
    assert r.returncode == 1
    assert "down catalog" in r.stderr.replace("\n", " ") and "broker" in r.stderr
