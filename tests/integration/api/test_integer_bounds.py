"""Integers from a request are bounded at the edge: one beyond what a catalog column holds
(2**63 - 1) is a 422 naming the field, never an overflow inside the database (500)."""

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration

HUGE = 99999999999999999999  # > 2**63 - 1


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("bounds") / "data")
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        yield c


CASES = [
    ("get", f"/v1/kbs/kb/versions/{HUGE}", None),
    ("delete", f"/v1/kbs/kb/versions/{HUGE}", None),
    ("post", f"/v1/kbs/kb/versions/{HUGE}/promote", None),
    ("get", f"/v1/kbs/kb/documents?offset={HUGE}", None),
    ("get", f"/v1/evals?offset={HUGE}", None),
    ("get", f"/v1/prompts/default/{HUGE}", None),
    ("get", f"/v1/testsets/t/{HUGE}", None),
    ("post", "/v1/kbs/kb/retrieve", {"query": "x", "index_version": HUGE}),
    ("post", "/v1/kbs/kb/answer", {"query": "x", "index_version": HUGE}),
    ("post", "/v1/kbs/kb/answer", {"query": "x", "prompt": f"default@{HUGE}"}),
    ("post", "/v1/kbs/kb/answer", {"query": "x", "prompt": "default@²"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_an_integer_beyond_the_catalog_is_a_422(client, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"]["message"]
