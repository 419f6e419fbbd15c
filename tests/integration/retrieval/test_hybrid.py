"""Hybrid retrieval through the API on a small three-language KB (real pipeline, the
packaged model, FAISS and Qdrant Edge): fusion never below BM25 on es/ru, filters
with ranges on both backends, several KBs in one call, MMR, the rerank path, and a
recall regression guard for the default mode."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.kbs import get_kb
from index.versions import queryable_version
from retrieval.calibration import dense_score
from tests.bench.qa import LANGUAGES, is_relevant, load_documents, load_questions, render
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Two documents per topic per language: 18 documents, 54 questions (18 per language).
SUBSET = {f"{lang}-topic{t}-{i:02d}" for lang in LANGUAGES for t in range(3) for i in (0, 1)}
# recall@5 of the default mode (hybrid, multilingual-e5-small) measured on this subset:
# en 1.0, es 0.94, ru 1.0 (MiniLM: es 0.83); the full benchmarks are
# tests/bench/bench_retrieval*.py. Minus a margin of ~2 questions.
MIN_RECALL = {"en": 0.9, "es": 0.83, "ru": 0.9}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hybrid")
    with TestClient(
        create_app(make_settings(tmp / "data"), components=SHARED_COMPONENTS)
    ) as client:
        docs = [d for d in load_documents() if d["filename"].rsplit(".", 1)[0] in SUBSET]
        assert (
            client.post(
                "/v1/kbs", json={"name": "mix", "redaction": {"enabled": False}}
            ).status_code
            == 201
        )
        for d in docs:
            r = client.post(
                "/v1/kbs/mix/documents",
                files=[("files", (d["filename"], render(d), "application/octet-stream"))],
                data={"metadata": json.dumps(d["metadata"])},
            )
            assert r.status_code == 202, r.text
        client.post("/v1/kbs", json={"name": "other", "redaction": {"enabled": False}})
        other = [d for d in load_documents() if d["filename"].startswith("en-topic2-05")]
        client.post(
            "/v1/kbs/other/documents",
            files=[("files", (d["filename"], render(d), "text/plain")) for d in other],
        )
        states = wait_for_documents(client, "mix", expected=len(docs), timeout=300)
        assert {s["status"] for s in states.values()} == {"indexed"}
        wait_for_documents(client, "other", expected=1, timeout=120)
        yield client, tmp


def questions():
    return [q for q in load_questions() if q.filename.rsplit(".", 1)[0] in SUBSET]


def post(client, body, kb="mix", status=200):
    r = client.post(f"/v1/kbs/{kb}/retrieve", json=body)
    assert r.status_code == status, r.text
    return r.json()


def recall_at_5(client, qs, **body):
    found = 0
    for q in qs:
        hits = post(client, {"query": q.question, "top_k": 5, **body})["results"]
        found += any(is_relevant(q, h["filename"], h["text"]) for h in hits)
    return found / len(qs)


def bm25_recall_at_5(client, qs):
    rt = client.app.state.runtime
    with rt.db.session() as s:
        version = queryable_version(session=s, kb=get_kb(session=s, name_or_id="mix"), number=None)
    bm25 = rt.bm25.for_version(version, wait=True)
    texts = {}
    with rt.db.session() as s:
        from sqlalchemy import select

        from core.catalog.models import Chunk, Document

        for cid, text, name in s.execute(
            select(Chunk.id, Chunk.text, Document.filename).join(
                Document, Document.id == Chunk.document_id
            )
        ):
            texts[cid] = (name, text)
    found = 0
    for q in qs:
        rows = bm25.search(q.question, 5)
        found += any(is_relevant(q, *texts[bm25.ids[r]]) for r, _ in rows)
    return found / len(qs)


def test_default_mode_recall_per_language_and_hybrid_not_below_bm25(app):
    client, _ = app
    by_language = {lang: [q for q in questions() if q.language == lang] for lang in LANGUAGES}
    measured = {
        lang: (recall_at_5(client, qs), bm25_recall_at_5(client, qs))
        for lang, qs in by_language.items()
    }
    print(f"\nrecall@5 (hybrid, bm25) per language: {measured}")
    for lang, (hybrid, bm25) in measured.items():
        assert hybrid >= MIN_RECALL[lang], measured
        if lang in ("es", "ru"):
            assert hybrid >= bm25, measured
    body = post(client, {"query": by_language["ru"][0].question})
    assert body["mode"] == "hybrid" and body["language"] == "ru"
    hit = body["results"][0]
    assert set(hit["scores"]) == {"dense", "bm25", "fused", "rerank", "kbs_fused"}
    assert hit["scores"]["fused"] == hit["score"] and 0 < hit["score"] <= 1
    assert hit["metadata"]["revision"] == 1 and hit["metadata"]["kb"] == "mix"
    assert hit["metadata"]["lang"] == "ru" and hit["metadata"]["revision_id"]
    dense = post(client, {"query": "How tall is the lighthouse tower?", "mode": "dense"})
    assert dense["mode"] == "dense" and dense["results"][0]["scores"]["bm25"] is None
    top = dense["results"][0]  # the score is the dense cosine on the calibrated scale
    assert top["score"] == pytest.approx(
        dense_score("multilingual-e5-small", top["scores"]["dense"]), abs=1e-5
    )


def _filenames(client, body, kb="mix"):
    return sorted({h["filename"] for h in post(client, body, kb)["results"]})


FILTER_CASES = [
    ({"lang": "es"}, lambda m: m["lang"] == "es"),
    ({"lang": ["es", "ru"]}, lambda m: m["lang"] in ("es", "ru")),
    ({"year": {"gte": 2003, "lt": 2005}}, lambda m: 2003 <= m["year"] < 2005),
    ({"published": {"gte": "2011-01-01"}}, lambda m: m["published"] >= "2011-01-01"),
    ({"published": {"lt": "2010-06-01T00:00:00Z"}, "lang": "en"}, None),
]


def test_filters_with_ranges_agree_on_faiss_and_qdrant(app):
    client, _ = app
    r = client.post("/v1/kbs/mix/versions", json={"backend": "qdrant"})
    assert r.status_code == 202, r.text
    number = r.json()["number"]
    deadline = time.monotonic() + 120
    while client.get(f"/v1/kbs/mix/versions/{number}").json()["status"] != "ready":
        assert time.monotonic() < deadline, "qdrant version did not become ready"
        time.sleep(0.2)
    docs = {d["filename"]: d["metadata"] for d in load_documents()}
    for filters, predicate in FILTER_CASES:
        for mode in ("dense", "hybrid"):
            body = {"query": "history of the place", "top_k": 50, "filters": filters, "mode": mode}
            faiss_hits = _filenames(client, body)
            qdrant_hits = _filenames(client, {**body, "index_version": number})
            assert faiss_hits == qdrant_hits, (filters, mode)
            if predicate is not None:
                assert faiss_hits and all(predicate(docs[f]) for f in faiss_hits), filters
    # Bad shapes are 422 with the key named.
    for filters, words in (
        ({"year": {"between": [1, 2]}}, "'year': a range takes gt, gte, lt, lte"),
        ({"published": {"gte": "yesterday"}}, "ISO 8601"),
        ({"lang": []}, "non-empty list"),
    ):
        r = client.post("/v1/kbs/mix/retrieve", json={"query": "x", "filters": filters})
        assert r.status_code == 422 and words in r.json()["error"]["message"], r.text


def test_several_kbs_in_one_call(app):
    client, _ = app
    body = {"kbs": ["mix", "other"], "query": "Which shipyard built the schooner?", "top_k": 6}
    r = client.post("/v1/retrieve", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out["index_versions"]) == {"mix", "other"}
    kbs = [h["metadata"]["kb"] for h in out["results"]]
    assert set(kbs) == {"mix", "other"} and len(out["results"]) == 6
    assert all(h["scores"]["kbs_fused"] for h in out["results"])
    assert client.post("/v1/retrieve", json={**body, "kbs": ["mix", "nope"]}).status_code == 404
    assert client.post("/v1/retrieve", json={**body, "kbs": []}).status_code == 422


def test_mmr_and_rerank_paths(app):
    client, tmp = app
    q = "Какая рыба живёт в озере?"
    plain = post(client, {"query": q, "top_k": 4})["results"]
    diverse = post(client, {"query": q, "top_k": 4, "mmr": True, "mmr_lambda": 0.3})["results"]
    assert len(diverse) == 4 and len({h["chunk_id"] for h in diverse}) == 4
    assert diverse[0]["chunk_id"] == plain[0]["chunk_id"]  # the best hit stays first

    r = client.post("/v1/kbs/mix/retrieve", json={"query": q, "rerank": True})
    assert r.status_code == 422 and "has no reranker" in r.json()["error"]["message"]
    r = client.patch("/v1/kbs/mix", json={"reranker": str(tmp / "missing")})
    assert r.status_code == 422 and "not a local CrossEncoder" in r.json()["error"]["message"]

    # An untrained head scores junk, but exercises loading and the rerank path offline.
    from sentence_transformers import CrossEncoder

    from ingest.embed import resolve_model_path

    path = tmp / "cross-encoder"
    CrossEncoder(str(resolve_model_path("all-MiniLM-L6-v2")), num_labels=1).save(str(path))
    r = client.patch("/v1/kbs/mix", json={"reranker": str(path)})
    assert r.status_code == 200 and r.json()["reranker"] == str(path), r.text
    hits = post(client, {"query": q, "top_k": 5})["results"]  # on by default once set
    assert all(h["scores"]["rerank"] is not None for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["score"] == h["scores"]["rerank"] for h in hits)
    off = post(client, {"query": q, "top_k": 5, "rerank": False})["results"]
    assert all(h["scores"]["rerank"] is None for h in off)
    assert client.patch("/v1/kbs/mix", json={"reranker": ""}).json()["reranker"] is None
