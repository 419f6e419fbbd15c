"""docker-compose.yml can't run here (no Docker engine): check it on paper instead."""

import re
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from api.cli import app
from core.config import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_all_roles_and_backing_services_are_there(compose):
    assert {"api", "worker", "worker-gpu", "scheduler", "postgres", "redis", "qdrant"} <= set(
        compose["services"]
    )


def test_services_have_healthchecks_and_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond == {"condition": "service_healthy"}, name


def test_ragops_commands_and_settings_exist(compose):
    commands = set(get_command(app).commands)
    fields = {f"RAGOPS_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        cmd = service.get("command") or []
        if cmd and cmd[0] == "ragops":
            assert cmd[1] in commands, f"{name}: unknown command {cmd[1]}"
        for key in service.get("environment") or {}:
            assert not key.startswith("RAGOPS_") or key in fields, f"{name}: unknown {key}"
        health = service["healthcheck"]["test"]
        if health[:2] == ["CMD", "ragops"]:
            assert health[2] in commands


def test_settings_are_wired_for_scale_out(compose):
    env = compose["services"]["api"]["environment"]
    assert env["RAGOPS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["RAGOPS_CELERY_BROKER_URL"].startswith("redis://redis:")
    assert env["RAGOPS_QDRANT_URL"] == "http://qdrant:6333"
    assert env["RAGOPS_WORKERS"] == "0"
    assert re.search(r":\?", env["RAGOPS_ADMIN_KEY"]), "the admin key must be required"
    gpu = compose["services"]["worker-gpu"]
    assert gpu["environment"]["RAGOPS_EMBEDDING_DEVICE"] == "cuda"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    # Settings accept what compose passes (production requires a real key).
    Settings(
        _env_file=None,
        environment="production",
        admin_key="k" * 16,
        database_url="postgresql+psycopg://u:p@postgres:5432/ragops",
        celery_broker_url="redis://redis:6379/0",
        index_backend="qdrant",
        qdrant_url="http://qdrant:6333",
    )


def test_dockerfile_installs_with_the_torch_constraint():
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text and "requirements-nodeps.txt" in text
