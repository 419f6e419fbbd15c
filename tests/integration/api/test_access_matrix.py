"""Role × route × own/other KB, over every route the app serves.

`EXPECTED` is this test's own statement of who may call what (independent of
`api.access_policy`); the first test fails when the app serves a route it does not list,
so a new route cannot ship without a decided scope check. For each route and role the
matrix sends a real request and checks:

- a KB the key may not see (`{kb}` in the path) is 404, the same as a KB that does not
  exist, whatever the role;
- on the key's own KB, a role below the route's is 403, one at or above it gets past
  authorisation (no 401/403, no "knowledge base not found");
- deployment-wide routes (`all`) need the role over every KB: a key limited to some KBs
  is 403 even with the role.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.route_labels import route_contexts
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOOT = {"Authorization": "Bearer boot-admin"}
ROLES = ("reader", "reviewer", "owner", "admin")
LEVEL = {role: i for i, role in enumerate(ROLES)}
KB_NOT_FOUND = "create it with POST /v1/kbs"

# (method, path) → (least role, where the KB comes from: "path", "all" or "any").
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/v1/kbs"): ("owner", "all"),
    ("GET", "/v1/kbs"): ("reader", "any"),
    ("GET", "/v1/kbs/{kb}"): ("reader", "path"),
    ("PATCH", "/v1/kbs/{kb}"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/documents"): ("owner", "path"),
    ("GET", "/v1/kbs/{kb}/documents"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/documents/{doc_id}"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/documents/{doc_id}/chunks"): ("reviewer", "path"),
    ("DELETE", "/v1/kbs/{kb}/documents/{doc_id}"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/documents/{doc_id}/reprocess"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/documents/{doc_id}/erase"): ("owner", "path"),
    ("POST", "/v1/erasure"): ("owner", "any"),
    ("GET", "/v1/erasures"): ("owner", "any"),
    ("GET", "/v1/erasures/{erasure_id}"): ("owner", "any"),
    ("GET", "/v1/kbs/{kb}/ingestion"): ("reviewer", "path"),
    ("POST", "/v1/kbs/{kb}/retrieve"): ("reader", "path"),
    ("POST", "/v1/retrieve"): ("reader", "any"),
    ("POST", "/v1/kbs/{kb}/answer"): ("reader", "path"),
    ("GET", "/v1/kbs/{kb}/answer-settings"): ("reviewer", "path"),
    ("PUT", "/v1/kbs/{kb}/answer-settings"): ("owner", "path"),
    ("GET", "/v1/answers/{answer_id}"): ("reader", "any"),
    ("POST", "/v1/answers/{answer_id}/feedback"): ("reader", "any"),
    ("GET", "/v1/kbs/{kb}/versions"): ("reviewer", "path"),
    ("POST", "/v1/kbs/{kb}/versions"): ("owner", "path"),
    ("GET", "/v1/kbs/{kb}/versions/{number}"): ("reviewer", "path"),
    ("POST", "/v1/kbs/{kb}/versions/{number}/promote"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/rollback"): ("owner", "path"),
    ("DELETE", "/v1/kbs/{kb}/versions/{number}"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/versions/gc"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/versions/{number}/snapshots"): ("owner", "path"),
    ("GET", "/v1/kbs/{kb}/snapshots"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/snapshots/{snapshot_id}"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/snapshots/{snapshot_id}/download"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/versions/restore"): ("owner", "path"),
    ("POST", "/v1/prompts"): ("owner", "all"),
    ("GET", "/v1/prompts"): ("reader", "any"),
    ("GET", "/v1/prompts/{name}"): ("reader", "any"),
    ("GET", "/v1/prompts/{name}/{version}"): ("reader", "any"),
    ("POST", "/v1/testsets"): ("reviewer", "any"),
    ("POST", "/v1/testsets/generate"): ("reviewer", "any"),
    ("GET", "/v1/testsets/generate/{job_id}"): ("reviewer", "any"),
    ("GET", "/v1/testsets"): ("reviewer", "any"),
    ("GET", "/v1/testsets/{name}"): ("reviewer", "any"),
    ("GET", "/v1/testsets/{name}/{version}"): ("reviewer", "any"),
    ("POST", "/v1/testsets/{name}/from-feedback"): ("reviewer", "any"),
    ("POST", "/v1/evals"): ("reviewer", "any"),
    ("GET", "/v1/evals"): ("reviewer", "any"),
    ("GET", "/v1/evals/{run_id}"): ("reviewer", "any"),
    ("GET", "/v1/evals/{run_id}/results"): ("reviewer", "any"),
    ("GET", "/v1/evals/{run_id}/report"): ("reviewer", "any"),
    ("GET", "/v1/models/registry"): ("reader", "any"),
    ("POST", "/v1/models/registry"): ("admin", "all"),
    ("POST", "/v1/models/registry/{kind}/{name}/stage"): ("admin", "all"),
    ("GET", "/v1/models/registry/{kind}/{name}"): ("reader", "any"),
    ("PATCH", "/v1/models/registry/{kind}/{name}"): ("admin", "all"),
    ("DELETE", "/v1/models/registry/{kind}/{name}"): ("admin", "all"),
    ("GET", "/v1/kbs/{kb}/finetune-dataset"): ("reviewer", "path"),
    ("POST", "/v1/models/finetune"): ("admin", "all"),
    ("GET", "/v1/models/finetune/{job_id}"): ("reviewer", "any"),
    ("POST", "/v1/models/finetune/{job_id}/cancel"): ("admin", "all"),
    ("POST", "/v1/kbs/{kb}/ab-tests"): ("owner", "path"),
    ("GET", "/v1/kbs/{kb}/ab-tests"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/ab-tests/{name}"): ("reviewer", "path"),
    ("POST", "/v1/kbs/{kb}/ab-tests/{name}/stop"): ("owner", "path"),
    ("POST", "/v1/kbs/{kb}/ab-tests/{name}/evaluate"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/quality-gate"): ("reviewer", "path"),
    ("PUT", "/v1/kbs/{kb}/quality-gate"): ("reviewer", "path"),
    ("DELETE", "/v1/kbs/{kb}/quality-gate"): ("reviewer", "path"),
    ("GET", "/v1/kbs/{kb}/decisions"): ("reviewer", "path"),
    ("GET", "/v1/decisions/{decision_id}"): ("reviewer", "any"),
    ("GET", "/v1/jobs/{job_id}"): ("reader", "any"),
    ("GET", "/v1/schedules"): ("reviewer", "any"),
    ("POST", "/v1/schedules"): ("reviewer", "any"),
    ("GET", "/v1/schedules/{name}"): ("reviewer", "any"),
    ("PATCH", "/v1/schedules/{name}"): ("reviewer", "any"),
    ("DELETE", "/v1/schedules/{name}"): ("reviewer", "any"),
    ("POST", "/v1/schedules/{name}/run"): ("reviewer", "any"),
    ("POST", "/v1/keys"): ("admin", "any"),
    ("GET", "/v1/keys"): ("admin", "any"),
    ("GET", "/v1/keys/{key_id}"): ("admin", "any"),
    ("POST", "/v1/keys/{key_id}/rotate"): ("admin", "any"),
    ("DELETE", "/v1/keys/{key_id}"): ("admin", "any"),
    ("GET", "/v1/audit"): ("admin", "any"),
    # The OpenAI façade: a model is a KB, so `{model}` is the KB here.
    ("GET", "/v1/models"): ("reader", "any"),
    ("GET", "/v1/models/{model}"): ("reader", "path"),
    ("POST", "/v1/chat/completions"): ("reader", "any"),
    ("POST", "/retrieval"): ("reader", "any"),
    # Last: it deletes the key's own KB when allowed.
    ("DELETE", "/v1/kbs/{kb}"): ("owner", "path"),
}
# Served without a key by design: probes, metrics (per-KB series need a key), the docs.
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
OPEN.add("/redoc")
# The web console (api/console): pages check their own session; the bridge
# /console/api/{path} sends each call to /v1/{path}, through the policy above.
OPEN |= {"/", "/console", "/console/sign-in", "/console/sign-out", "/console/kbs"}
OPEN |= {"/console/kbs/{kb}", "/console/kbs/{kb}/playground", "/console/api/{path}"}
OPEN.add("/console/kbs/{kb}/documents/{doc_id}")
OPEN |= {"/console/kbs/{kb}/quality", "/console/kbs/{kb}/quality/runs/{run_id}", "/console/models"}
OPEN |= {"/console/kbs/{kb}/versions", "/console/kbs/{kb}/settings"}

PLACEHOLDERS = {
    "doc_id": "0" * 32,
    "number": "1",
    "answer_id": "0" * 32,
    "name": "nosuch",
    "version": "1",
    "kind": "embedding",
    "job_id": "0" * 32,
    "run_id": "0" * 32,
    "decision_id": "0" * 32,
    "key_id": "0" * 32,
    "erasure_id": "0" * 32,
    "snapshot_id": "0" * 32,
}


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, c.path_format)
        for c in route_contexts(app)
        for method in (getattr(c, "methods", None) or set()) - {"HEAD"}
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Bootstrap admin key; KB `other` that no test key sees; per role a KB
    `own-<role>` and two keys: one limited to it, one over every KB."""
    settings = make_settings(tmp_path_factory.mktemp("matrix") / "data", admin_key="boot-admin")
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        for name in ("other", *(f"own-{r}" for r in ROLES)):
            r = client.post("/v1/kbs", json={"name": name}, headers=BOOT)
            assert r.status_code == 201, r.text
        scoped, everywhere = {}, {}
        for role in ROLES:
            for keys, kbs, label in ((scoped, [f"own-{role}"], "s"), (everywhere, "*", "g")):
                r = client.post(
                    "/v1/keys",
                    json={"name": f"{role}-{label}", "role": role, "kbs": kbs},
                    headers=BOOT,
                )
                assert r.status_code == 201, r.text
                keys[role] = {"Authorization": f"Bearer {r.json()['key']}"}
        yield client, scoped, everywhere


def concrete(path: str, kb: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return kb if name in ("kb", "model") else PLACEHOLDERS[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)


def call(client, method: str, path: str, headers):
    # An empty JSON object: authorisation comes before body validation, and a request
    # that passes it then fails validation (422) instead of changing anything.
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, json=body, headers=headers)


def test_every_route_has_a_decided_scope(world):
    client, _, _ = world
    served = {r for r in app_routes(client.app) if r[1] not in OPEN}
    assert served - set(EXPECTED) == set(), "routes with no expectation: decide their scope"
    assert set(EXPECTED) - served == set(), "expectations for routes that do not exist"


CASES = [(m, p, role) for (m, p) in EXPECTED for role in ROLES]


@pytest.mark.parametrize(("method", "path", "role"), CASES, ids=lambda v: str(v))
def test_role_by_route_by_kb(world, method, path, role):
    client, scoped, everywhere = world
    needed, source = EXPECTED[(method, path)]
    allowed = LEVEL[role] >= LEVEL[needed]
    own = f"own-{role}"
    if source == "path":
        # Someone else's KB: 404 as if it did not exist, for every role.
        r = call(client, method, concrete(path, "other"), scoped[role])
        assert r.status_code == 404, (r.status_code, r.text)
        assert KB_NOT_FOUND in r.text or "model_not_found" in r.text, r.text
    r = call(client, method, concrete(path, own), scoped[role])
    if not allowed:
        assert r.status_code == 403, (r.status_code, r.text)
        assert needed in r.json()["error"]["message"]
        return
    if source == "all":
        # The role alone is not enough: it must cover every KB.
        assert r.status_code == 403, (r.status_code, r.text)
        r = call(client, method, concrete(path, own), everywhere[role])
    assert r.status_code not in (401, 403), (r.status_code, r.text)
    if r.status_code == 404:
        assert KB_NOT_FOUND not in r.text, r.text


def test_unknown_and_missing_keys_are_401(world):
    client, _, _ = world
    assert client.get("/v1/kbs").status_code == 401
    r = client.get("/v1/kbs", headers={"Authorization": "Bearer rgo_nonsense"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/v1/kbs", headers={"Authorization": "Basic abc"}).status_code == 401
