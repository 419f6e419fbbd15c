"""The OpenAPI document tells the truth about the pieces schemathesis leans on
(tests/e2e/test_schemathesis.py runs the whole of it): real bodies validate against the
documented error schema, bearer auth is declared, timestamps are UTC with `Z`, a 405
lists every method of its path, and names that a fixed route segment would shadow are
refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from api import openapi
from api.app import create_app
from api.limits import MAX_JSON_BODY_BYTES
from eval.testsets import RESERVED_NAMES as RESERVED_TESTSET_NAMES
from ingest.knowledge_bases import ID_LIKE_RE, NAME_RE
from ingest.knowledge_bases import RESERVED_NAMES as RESERVED_KB_NAMES
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration

KEY = "contract-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_SCHEMAS = {"Error", "OpenAIError", "DifyError"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("contract") / "data", admin_key=KEY, redaction_enabled=False
    )
    with TestClient(create_app(settings, components=SHARED_COMPONENTS), headers=AUTH) as c:
        assert c.post("/v1/kbs", json={"name": "handbook"}).status_code == 201
        yield c


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


def validate(spec: dict, body: object, path: str, method: str, status: int) -> None:
    """`body` against the schema the document gives for this response."""
    media = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    schema = {**media["schema"], "components": spec["components"]}
    jsonschema_rs.validate(schema, body)


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_error_bodies_match_the_documented_error_schema(client, spec):
    missing = client.get("/v1/kbs/nope")
    assert missing.status_code == 404
    validate(spec, missing.json(), "/v1/kbs/{kb}", "get", 404)
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]

    invalid = client.post("/v1/kbs", json={"name": "x", "chunking": {"chunk_size": "200"}})
    assert invalid.status_code == 422, invalid.text  # strict: no "200" for 200
    validate(spec, invalid.json(), "/v1/kbs", "post", 422)
    assert "chunk_size" in invalid.json()["error"]["message"]

    anonymous = client.get("/v1/kbs", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    validate(spec, anonymous.json(), "/v1/kbs", "get", 401)

    oai = client.get("/v1/models/nope")
    assert oai.status_code == 404 and oai.json()["error"]["code"] == "model_not_found"
    validate(spec, oai.json(), "/v1/models/{model}", "get", 404)

    dify = client.post("/retrieval", json={"query": "x"})
    assert dify.status_code == 400 and dify.json()["error_code"] == 400
    validate(spec, dify.json(), "/retrieval", "post", 400)


def test_every_error_response_has_the_real_schema(spec):
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/readyz":
                continue
            schema = response["content"]["application/json"]["schema"]
            refs = {s["$ref"] for s in schema.get("anyOf", [schema])}
            names = {ref.rsplit("/", 1)[-1] for ref in refs}
            assert names and names <= ERROR_SCHEMAS, (method, path, status, schema)
        if path.startswith("/v1/") or path == "/retrieval":
            assert {"429", "503"} <= set(op["responses"]), (method, path)
            assert "404" in op["responses"] or "{" not in path, (method, path)


def test_the_post_processors_tables_name_real_operations(spec):
    """A renamed route must not leave its documented errors behind silently."""
    real = {(method, path) for path, method, _ in operations(spec)}
    for table in (openapi.NAMES_IN_BODY, openapi.ROUTE_ERRORS, openapi.REQUEST_BODIES):
        assert set(table) <= real, set(table) - real
    assert set(openapi.PROBES) <= real


def test_bearer_auth_is_declared_on_v1_and_the_facades(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method, op in operations(spec):
        if path.startswith("/v1/") or path == "/retrieval":
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert ("401" if path != "/retrieval" else "403") in op["responses"], (method, path)
        elif path == "/metrics":
            assert op["security"] == [{}, {"bearerAuth": []}]  # a key only adds gauges
        else:
            assert "security" not in op, (method, path)


def test_facade_request_bodies_are_documented(spec):
    chat = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    assert chat["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    dify = spec["paths"]["/retrieval"]["post"]["requestBody"]["content"]
    assert dify["application/json"]["schema"]["$ref"].endswith("/DifyRetrievalRequest")
    testsets = spec["paths"]["/v1/testsets"]["post"]["requestBody"]["content"]
    assert set(testsets) == {"application/json", "multipart/form-data"}


def test_timestamps_are_utc_with_z_and_openai_created_stays_an_int(client, spec):
    kb = client.get("/v1/kbs/handbook").json()
    for field in ("created_at", "updated_at"):
        assert kb[field].endswith("Z"), kb[field]
        parsed = datetime.fromisoformat(kb[field])
        assert parsed.utcoffset().total_seconds() == 0
        assert abs((datetime.now(UTC) - parsed).total_seconds()) < 300  # UTC, not local
    documented = spec["components"]["schemas"]["KnowledgeBasePublic"]["properties"]
    assert documented["created_at"]["pattern"] == "Z$"
    models = client.get("/v1/models").json()["data"]
    assert [type(m["created"]) for m in models if m["id"] == "handbook"] == [int]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/kbs/handbook", "DELETE, GET, PATCH"),
        ("OPTIONS", "/v1/kbs", "GET, POST"),
        ("GET", "/v1/kbs/handbook/versions/gc", "POST"),  # not version "gc"
        ("GET", "/v1/testsets/generate", "POST"),  # not a test set named "generate"
        ("PATCH", "/v1/models/registry/embedding/some/model/stage", "POST"),
        ("GET", "/v1/models/registry/embedding/some/model/stage", "POST"),
        ("PUT", "/v1/models/registry", "GET, POST"),
    ],
)
def test_405_lists_every_method_of_the_path(client, spec, method, path, allow):
    r = client.request(method, path)
    assert r.status_code == 405, (r.status_code, r.text)
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"
    template = re.sub(r"/handbook(?=/|$)", "/{kb}", path).replace("some/model", "{name}")
    template = template.replace("/embedding/", "/{kind}/")
    if template in spec["paths"]:
        assert sorted(m.upper() for m in spec["paths"][template]) == allow.split(", ")


def test_names_a_fixed_route_segment_would_shadow_are_refused(client, spec):
    """Every literal segment that sits where a route takes a KB name (or a model id, or a
    test set name) is a reserved name, derived from the routes themselves."""
    templates = [p.strip("/").split("/") for p in spec["paths"]]
    shadowed: dict[str, set[str]] = {"{kb}": set(), "{model}": set(), "{name}": set()}
    for segments in templates:
        for i, segment in enumerate(segments):
            if segment not in shadowed:
                continue
            for other in templates:
                if len(other) > i and other[:i] == segments[:i] and "{" not in other[i]:
                    shadowed[segment].add(other[i])
    kb_names = {n for n in shadowed["{kb}"] | shadowed["{model}"] if NAME_RE.fullmatch(n)}
    assert kb_names == set(RESERVED_KB_NAMES) == {"finetune", "registry"}
    testsets = {n for n in shadowed["{name}"] if n == "generate"}
    assert testsets <= RESERVED_TESTSET_NAMES

    r = client.post("/v1/kbs", json={"name": "registry"})
    assert r.status_code == 422 and "reserved" in r.json()["error"]["message"]
    kb_name = spec["components"]["schemas"]["KnowledgeBaseCreate"]["properties"]["name"]
    assert kb_name["pattern"] == NAME_RE.pattern
    assert kb_name["not"] == {
        "anyOf": [{"enum": ["finetune", "registry"]}, {"pattern": ID_LIKE_RE.pattern}]
    }
    case = {"question": "q", "reference_answer": "a"}
    r = client.post("/v1/testsets", json={"name": "generate", "cases": [case]})
    assert r.status_code == 422 and "reserved" in r.json()["error"]["message"]
    model = {"kind": "embedding", "name": "a/stage", "source_type": "hub_id", "source": "a/b"}
    r = client.post("/v1/models/registry", json=model)
    assert r.status_code == 422 and "/stage" in r.json()["error"]["message"]


def test_dify_refuses_oversized_and_deeply_nested_bodies_as_documented(client, spec):
    """Dify's route reads its body within api.limits like the OpenAI façade (before, a
    100,000-deep body was a RecursionError: 500)."""
    deep = b'{"knowledge_id": "handbook", "query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = client.post("/retrieval", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "deeper than" in r.json()["error_msg"], r.text
    validate(spec, r.json(), "/retrieval", "post", 400)
    huge = b'{"query": "' + b"x" * MAX_JSON_BODY_BYTES + b'"}'
    r = client.post("/retrieval", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == 413, r.text
    validate(spec, r.json(), "/retrieval", "post", 413)
