"""API keys end to end: the secret shown once and stored hashed, rotation and revocation
taking effect at once, scoped keys that cannot see other KBs' resources by id, in
listings, in request bodies or through the façades, and the audit log of it all."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOOT = {"Authorization": "Bearer boot-admin"}
DOC = (
    b"Solar panels convert sunlight into electricity. The warranty on our panels lasts "
    b"twenty-five years. Installation takes two days and needs a permit from the city."
)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def new_key(client, name: str, role: str, kbs) -> tuple[dict, dict[str, str]]:
    r = client.post("/v1/keys", json={"name": name, "role": role, "kbs": kbs}, headers=BOOT)
    assert r.status_code == 201, r.text
    return r.json(), bearer(r.json()["key"])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """KBs `mine` and `theirs`, one document each; in `theirs` an answer, its feedback,
    a test set made from it, an eval run and a decision, all made with the admin key."""
    settings = make_settings(
        tmp_path_factory.mktemp("keys") / "data", admin_key="boot-admin", redaction_enabled=False
    )
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        made = {}
        for kb in ("mine", "theirs"):
            assert client.post("/v1/kbs", json={"name": kb}, headers=BOOT).status_code == 201
            upload(client, kb, [("solar.txt", DOC)], headers=BOOT)
            wait_for_documents(client, kb, expected=1, headers=BOOT)
        r = client.post(
            "/v1/kbs/theirs/answer", json={"query": "How long is the warranty?"}, headers=BOOT
        )
        assert r.status_code == 200, r.text
        made["answer"] = r.json()["id"]
        r = client.post(
            f"/v1/answers/{made['answer']}/feedback",
            json={"rating": -1, "correction": "Twenty-five years."},
            headers=BOOT,
        )
        assert r.status_code == 201, r.text
        r = client.post("/v1/testsets/fb/from-feedback", params={"kb": "theirs"}, headers=BOOT)
        assert r.status_code == 201, r.text
        r = client.post(
            "/v1/evals", json={"testset": "fb", "kb": "theirs", "metrics": ["mrr"]}, headers=BOOT
        )
        assert r.status_code == 202, r.text
        made["run"] = r.json()["id"]
        r = client.post(
            "/v1/kbs/theirs/documents",
            headers=BOOT,
            files=[("files", ("more.txt", DOC + b" More.", "text/plain"))],
        )
        assert r.status_code == 202, r.text
        made["job"] = r.json()["documents"][0]["job_id"]
        r = client.get("/v1/kbs/theirs/decisions", headers=BOOT)
        made["decisions"] = [d["id"] for d in r.json()["decisions"]]
        yield client, settings, made


def test_the_secret_is_shown_once_and_stored_hashed(env):
    client, settings, _ = env
    body, headers = new_key(client, "once", "reader", ["mine"])
    secret = body["key"]
    assert secret.startswith("rgo_") and len(secret) > 40
    assert body["kbs"] == ["mine"] and body["role"] == "reader"
    listed = client.get("/v1/keys", headers=BOOT).json()["keys"]
    shown = next(k for k in listed if k["id"] == body["id"])
    assert "key" not in shown and secret[:10] == shown["prefix"]
    assert client.get(f"/v1/keys/{body['id']}", headers=BOOT).json().get("key") is None
    # The catalog holds the sha256, never the secret.
    engine = create_engine(settings.catalog_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT secret_sha256 FROM api_keys WHERE id = :id"), {"id": body["id"]}
        ).scalar_one()
    engine.dispose()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    catalog_bytes = (settings.data_dir / "catalog.db").read_bytes()
    wal = settings.data_dir / "catalog.db-wal"
    if wal.exists():
        catalog_bytes += wal.read_bytes()
    assert secret.encode() not in catalog_bytes
    # The key works for what it may do.
    assert client.get("/v1/kbs", headers=headers).json()["data"][0]["name"] == "mine"


def test_rotation_and_revocation_take_effect_at_once(env):
    client, _, _ = env
    body, old = new_key(client, "rotating", "reader", ["mine"])
    assert client.get("/v1/kbs/mine", headers=old).status_code == 200
    r = client.post(f"/v1/keys/{body['id']}/rotate", headers=BOOT)
    assert r.status_code == 200 and r.json()["key"] != body["key"]
    new = bearer(r.json()["key"])
    assert client.get("/v1/kbs/mine", headers=old).status_code == 401
    assert client.get("/v1/kbs/mine", headers=new).status_code == 200
    assert client.delete(f"/v1/keys/{body['id']}", headers=BOOT).status_code == 204
    assert client.get("/v1/kbs/mine", headers=new).status_code == 401
    assert client.get(f"/v1/keys/{body['id']}", headers=BOOT).status_code == 404


def test_a_key_hands_out_no_more_than_it_holds(env):
    client, _, _ = env
    _, scoped_admin = new_key(client, "mine-admin", "admin", ["mine"])
    r = client.post(
        "/v1/keys", json={"name": "x1", "role": "reader", "kbs": "*"}, headers=scoped_admin
    )
    assert r.status_code == 403, r.text
    r = client.post(
        "/v1/keys", json={"name": "x2", "role": "reader", "kbs": ["theirs"]}, headers=scoped_admin
    )
    # A KB the key may not see does not exist for it.
    assert r.status_code == 404 and "theirs" in r.text
    r = client.post(
        "/v1/keys", json={"name": "x3", "role": "owner", "kbs": ["mine"]}, headers=scoped_admin
    )
    assert r.status_code == 201, r.text
    # It administers the keys within its KBs only.
    new_key(client, "theirs-reader", "reader", ["theirs"])
    names = {k["name"] for k in client.get("/v1/keys", headers=scoped_admin).json()["keys"]}
    assert "x3" in names and "theirs-reader" not in names
    r = client.post(
        "/v1/keys", json={"name": "x3", "role": "reader", "kbs": ["mine"]}, headers=BOOT
    )
    assert r.status_code == 409
    r = client.post("/v1/keys", json={"name": "x4", "role": "root", "kbs": "*"}, headers=BOOT)
    assert r.status_code == 422


def test_other_kbs_resources_do_not_exist_for_a_scoped_key(env):
    client, _, made = env
    _, key = new_key(client, "mine-reviewer", "reviewer", ["mine"])
    # By id: the same 404 as an id that does not exist.
    for path in (
        f"/v1/answers/{made['answer']}",
        f"/v1/evals/{made['run']}",
        f"/v1/evals/{made['run']}/results",
        f"/v1/evals/{made['run']}/report",
        f"/v1/jobs/{made['job']}",
        "/v1/testsets/fb",
        "/v1/testsets/fb/1",
        *(f"/v1/decisions/{d}" for d in made["decisions"]),
    ):
        mine = client.get(path, headers=key)
        assert mine.status_code == 404, (path, mine.text)
        # (A report of a run still running is a 409: it exists.)
        assert client.get(path, headers=BOOT).status_code in (200, 409), path
    r = client.post(f"/v1/answers/{made['answer']}/feedback", json={"rating": 1}, headers=key)
    assert r.status_code == 404
    # Listings leave them out.
    assert [k["name"] for k in client.get("/v1/kbs", headers=key).json()["data"]] == ["mine"]
    assert client.get("/v1/evals", headers=key).json()["runs"] == []
    assert client.get("/v1/testsets", headers=key).json()["testsets"] == []
    assert client.get("/v1/evals", params={"kb": "theirs"}, headers=key).status_code == 404
    # Named in a body or a query: 404 like a KB that does not exist.
    for method, path, kwargs in (
        ("POST", "/v1/retrieve", {"json": {"query": "warranty", "kbs": ["mine", "theirs"]}}),
        ("POST", "/v1/evals", {"json": {"testset": "fb", "kb": "theirs"}}),
        ("POST", "/v1/evals", {"json": {"testset": "fb", "kb": "mine"}}),
        ("POST", "/v1/testsets/fb2/from-feedback", {"params": {"kb": "theirs"}}),
        (
            "POST",
            "/v1/schedules",
            {
                "json": {
                    "name": "s",
                    "kind": "eval",
                    "testset": "fb",
                    "kb": "theirs",
                    "cron": "0 3 * * *",
                }
            },
        ),
    ):
        r = client.request(method, path, headers=key, **kwargs)
        assert r.status_code == 404, (path, r.status_code, r.text)
    r = client.post("/v1/retrieve", json={"query": "warranty", "kbs": ["mine"]}, headers=key)
    assert r.status_code == 200 and r.json()["results"]


def test_the_facades_see_only_the_keys_kbs(env):
    client, _, _ = env
    _, key = new_key(client, "mine-bot", "reader", ["mine"])
    models = {m["id"] for m in client.get("/v1/models", headers=key).json()["data"]}
    assert "mine" in models and not any(m.startswith("theirs") for m in models)
    assert client.get("/v1/models/theirs", headers=key).status_code == 404
    assert client.get("/v1/models/mine", headers=key).status_code == 200
    chat = {"messages": [{"role": "user", "content": "How long is the warranty?"}]}
    r = client.post("/v1/chat/completions", json={"model": "theirs", **chat}, headers=key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = client.post("/v1/chat/completions", json={"model": "mine", **chat}, headers=key)
    assert r.status_code == 200, r.text
    dify = {"query": "warranty", "retrieval_setting": {"top_k": 2, "score_threshold": 0}}
    r = client.post("/retrieval", json={"knowledge_id": "theirs", **dify}, headers=key)
    assert r.status_code == 404 and r.json()["error_code"] == 2001
    r = client.post("/retrieval", json={"knowledge_id": "mine", **dify}, headers=key)
    assert r.status_code == 200 and r.json()["records"]
    r = client.post(
        "/retrieval",
        json={"knowledge_id": "mine", **dify},
        headers={"Authorization": "Bearer wrong"},
    )
    assert r.status_code == 403 and r.json()["error_code"] == 1002


def test_a_kb_name_never_shadows_an_id(env):
    client, _, _ = env
    theirs = client.get("/v1/kbs/theirs", headers=BOOT).json()
    assert theirs["matched_by"] == "name"
    by_id = client.get(f"/v1/kbs/{theirs['id']}", headers=BOOT).json()
    assert by_id["name"] == "theirs" and by_id["matched_by"] == "id"
    for name in (theirs["id"], "0123456789abcdef0123456789ABCDEF"):
        r = client.post("/v1/kbs", json={"name": name}, headers=BOOT)
        assert r.status_code == 422, r.text
        assert "id" in r.json()["error"]["message"]


def test_the_audit_log_records_writes_and_refusals_without_secrets(env):
    client, _, _ = env
    body, key = new_key(client, "audited", "reader", ["mine"])
    assert client.post("/v1/kbs/mine/versions", json={}, headers=key).status_code == 403
    assert client.get("/v1/kbs/theirs", headers=key).status_code == 404
    assert client.get("/v1/kbs", headers=bearer("rgo_wrong")).status_code == 401
    assert client.patch("/v1/kbs/mine", json={"description": "d"}, headers=BOOT).status_code == 200
    assert client.get("/v1/audit", headers=key).status_code == 403

    events = client.get("/v1/audit", params={"limit": 1000}, headers=BOOT).json()["events"]
    created = [e for e in events if e["action"] == "key.create" and e["target"] == body["id"]]
    assert created and created[0]["key_id"] == "bootstrap" and created[0]["outcome"] == "ok"
    denied = [e for e in events if e["key_id"] == body["id"] and e["outcome"] == "denied"]
    assert {(e["method"], e["status"]) for e in denied} >= {("POST", 403), ("GET", 404)}
    assert any(e["action"] == "auth.failed" and e["status"] == 401 for e in events)
    update = [e for e in events if e["action"] == "kb.update"][-1]
    assert update["kb"] == "mine" and update["request_id"] and update["status"] == 200
    # Reads are not audited; secrets never are.
    assert not any(e["method"] == "GET" and e["outcome"] == "ok" for e in events)
    raw = client.get("/v1/audit", params={"limit": 1000, "format": "jsonl"}, headers=BOOT)
    assert raw.headers["content-type"].startswith("application/x-ndjson")
    assert len(raw.text.splitlines()) == len(events)
    assert body["key"] not in raw.text and "boot-admin" not in raw.text
    # Filters and paging.
    page = client.get("/v1/audit", params={"limit": 2}, headers=BOOT).json()
    assert len(page["events"]) == 2 and page["next_after"] == page["events"][-1]["id"]
    nxt = client.get("/v1/audit", params={"limit": 2, "after": page["next_after"]}, headers=BOOT)
    assert nxt.json()["events"][0]["id"] > page["next_after"]
    only = client.get("/v1/audit", params={"outcome": "denied", "kb": "mine"}, headers=BOOT)
    assert only.json()["events"] and all(
        e["outcome"] == "denied" and e["kb"] == "mine" for e in only.json()["events"]
    )
