"""Shared fixtures: offline environment, settings on a temp data dir, catalog URLs for
SQLite and the real PostgreSQL, and a tiny multi-format corpus."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import OFFLINE_ENV, Settings
from core.memory import release_free_memory

for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)
# Models built on first use (multilingual-e5-small, 490 MB) are built once for the whole
# run, in the checkout's git-ignored data/, and shared by every test and test server.
os.environ.setdefault(
    "RAGOPS_MODEL_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "data" / "models")
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get(
    "RAGOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def need_service(name: str, reason: str) -> None:
    """Skip with a visible reason on a laptop without the service; fail under CI=true."""
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: required services must be running)")
    pytest.skip(message)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "environment": "test",
        "admin_key": None,
        "workers": 2,
        "job_poll_seconds": 0.05,
        "job_backoff_seconds": 0.05,
        "job_lease_seconds": 5,
        # Tests that need the scheduler build their own SchedulerService.
        "scheduler_embedded": False,
        # Tests send requests back to back far faster than any client would (a
        # parametrized validation test: dozens of 4xx in a second): per-key rate limits
        # are off unless a test is about them (tests/integration/api/test_overload.py,
        # and tests/e2e/test_overload_load.py on the defaults).
        "rate_limit_retrieve": "",
        "rate_limit_answer": "",
        "rate_limit_upload": "",
        "rate_limit_admin": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        need_service("PostgreSQL", f"{POSTGRES_URL}: {exc.__class__.__name__}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh schema per test, so tests never see each other's rows."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real packaged all-MiniLM-L6-v2, loaded once per test session."""
    from ingest.embed import Embedder

    emb = Embedder("all-MiniLM-L6-v2", device="cpu")
    emb.warm_up()
    return emb


@pytest.fixture(scope="session", autouse=True)
def _close_shared_components():  # type: ignore[no-untyped-def]
    """Parser processes and Qdrant clients of the shared components end with the session."""
    yield
    from tests.utils.components import SHARED_COMPONENTS

    SHARED_COMPONENTS.close()


@pytest.fixture(scope="module", autouse=True)
def _return_freed_memory():  # type: ignore[no-untyped-def]
    """After each module, hand freed memory back to the system (`release_free_memory`):
    a test process runs modules that load and drop models (training, benches), and
    without it two test workers grew past 10 GB each and the machine ran out."""
    yield
    release_free_memory()
