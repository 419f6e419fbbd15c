"""docker-compose.yml can't run here (no Docker engine): check it on paper instead."""

import re
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from api.cli import app
from core.config import Settings, parse_blob_url

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RAGOPS_SERVICES = ("api", "worker", "worker-gpu", "scheduler")


def one_shot(service: dict) -> bool:
    """A setup job (creates the bucket and exits): waited for, not health-checked."""
    return service.get("restart") == "no"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_all_roles_and_backing_services_are_there(compose):
    assert {
        *RAGOPS_SERVICES,
        "postgres",
        "redis",
        "qdrant",
        "minio",
        "minio-init",
    } <= set(compose["services"])


def test_services_have_healthchecks_and_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        assert one_shot(service) or "healthcheck" in service, f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            done = "service_completed_successfully"
            wanted = done if one_shot(services[dep]) else "service_healthy"
            assert cond == {"condition": wanted}, name


def test_ragops_commands_and_settings_exist(compose):
    commands = set(get_command(app).commands)
    fields = {f"RAGOPS_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        cmd = service.get("command") or []
        if cmd and cmd[0] == "ragops":
            assert cmd[1] in commands, f"{name}: unknown command {cmd[1]}"
        for key in service.get("environment") or {}:
            assert not key.startswith("RAGOPS_") or key in fields, f"{name}: unknown {key}"
        health = service.get("healthcheck", {}).get("test", [])
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
        blob_url=env["RAGOPS_BLOB_URL"],
        blob_access_key=env["RAGOPS_BLOB_ACCESS_KEY"],
        blob_secret_key="s" * 16,
    )


def test_raw_uploads_go_to_minio_and_no_disk_is_shared(compose):
    services = compose["services"]
    minio = services["minio"]
    image = minio["image"]
    assert image.startswith("minio/minio:RELEASE."), "pinned, not :latest"
    assert minio["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert any(v.endswith(":/data") for v in minio["volumes"]), "MinIO keeps its data"
    assert re.search(r":\?", minio["environment"]["MINIO_ROOT_PASSWORD"])

    init = services["minio-init"]
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    script = "\n".join(init["command"])
    for name in RAGOPS_SERVICES:
        env = services[name]["environment"]
        location = parse_blob_url(env["RAGOPS_BLOB_URL"])
        assert location.endpoint == "http://minio:9000", name
        assert f"mc mb --ignore-existing local/{location.bucket}" in script
        assert f"mc admin user add local {env['RAGOPS_BLOB_ACCESS_KEY']} " in script
        assert re.search(r":\?", env["RAGOPS_BLOB_SECRET_KEY"]), "the secret is required"
        assert services[name]["depends_on"]["minio-init"] == {
            "condition": "service_completed_successfully"
        }

    # No named volume is mounted by two ragops services, and the replicated workers
    # mount only anonymous volumes (each replica its own).
    named: dict[str, str] = {}
    for name in RAGOPS_SERVICES:
        for volume in services[name].get("volumes", []):
            if ":" in volume:
                source = volume.split(":", 1)[0]
                assert source not in named, f"{name} shares {source} with {named.get(source)}"
                named[source] = name
    for name in ("worker", "worker-gpu"):
        assert all(":" not in v for v in services[name].get("volumes", [])), name


def test_dockerfile_installs_with_the_torch_constraint():
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text and "requirements-nodeps.txt" in text
