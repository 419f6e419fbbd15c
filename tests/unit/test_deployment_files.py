"""docker-compose.yml can't run here (no Docker engine): check it on paper instead."""

from pathlib import Path

import pytest
import yaml

from core.config import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services
            assert cond == {"condition": "service_healthy"}


def test_ragops_settings_in_compose_exist(compose):
    fields = {f"RAGOPS_{name.upper()}" for name in Settings.model_fields}
    env = compose["services"]["api"]["environment"]
    unknown = [k for k in env if k.startswith("RAGOPS_") and k not in fields]
    assert not unknown, f"compose sets settings that don't exist: {unknown}"
    assert env["RAGOPS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert ":?" in env["RAGOPS_ADMIN_KEY"], "the admin key must be required, not defaulted"


def test_dockerfile_installs_with_the_torch_constraint():
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text and "requirements-pdf.txt" in text
