"""The Dify External Knowledge API (`POST /retrieval`) on the real app."""

import json

import pytest

from retrieval import search
from tests.utils.answers import corpus_client, sample_files
from tests.utils.api import wait_for_documents
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "dify-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with corpus_client(tmp_path_factory.mktemp("dify"), admin_key=KEY) as c:
        yield c


def body(query=QUERIES[0][0], top_k=3, score_threshold=0.0, **extra):
    return {
        "knowledge_id": "docs",
        "query": query,
        "retrieval_setting": {"top_k": top_k, "score_threshold": score_threshold},
        **extra,
    }


def test_records_have_difys_shape(client):
    r = client.post("/retrieval", json=body(), headers=AUTH)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert len(records) == 3
    top = records[0]
    assert set(top) == {"content", "score", "title", "metadata"}
    assert top["title"] == "volcanoes.pdf" and "pyroclastic" in top["content"].lower()
    assert 0 < top["score"] <= 1 and isinstance(top["metadata"], dict)
    assert top["metadata"]["page_number"] == 2 and top["metadata"]["index_version"] == 1
    assert [x["score"] for x in records] == sorted((x["score"] for x in records), reverse=True)


def test_threshold_and_metadata_condition(client):
    r = client.post("/retrieval", json=body(score_threshold=0.99), headers=AUTH)
    assert r.json() == {"records": []}
    condition = {
        "logical_operator": "and",
        "conditions": [
            {"name": ["filename"], "comparison_operator": "is", "value": "sourdough.md"}
        ],
    }
    r = client.post("/retrieval", json=body(metadata_condition=condition), headers=AUTH)
    assert r.status_code == 200 and {x["title"] for x in r.json()["records"]} == {"sourdough.md"}
    condition["conditions"][0]["comparison_operator"] = "like"
    r = client.post("/retrieval", json=body(metadata_condition=condition), headers=AUTH)
    assert r.status_code == 400 and r.json()["error_code"] == 400
    message = r.json()["error_msg"]
    assert "operator 'like' is not supported" in message and "not contains" in message


def test_errors_have_difys_codes(client):
    r = client.post("/retrieval", json=body())
    assert r.status_code == 403 and r.json()["error_code"] == 1001
    r = client.post("/retrieval", json=body(), headers={"Authorization": f"Basic {KEY}"})
    assert r.status_code == 403 and r.json()["error_code"] == 1001
    r = client.post("/retrieval", json=body(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403 and r.json() == {
        "error_code": 1002,
        "error_msg": "Authorization failed",
    }
    r = client.post("/retrieval", json={**body(), "knowledge_id": "missing"}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error_code"] == 2001
    r = client.post("/retrieval", json={"knowledge_id": "docs"}, headers=AUTH)
    assert r.status_code == 400 and "query" in r.json()["error_msg"]


# Per-document metadata of the "meta" KB: strings, numbers, a numeric string, ISO dates,
# a boolean, an empty string and one document without any.
META = {
    "volcanoes.pdf": {
        "topic": "Geology",
        "author": "Ana Ruiz",
        "year": 2019,
        "published": "2019-05-01",
    },
    "honeybees.docx": {
        "topic": "Biology",
        "author": "ben okafor",
        "year": 2021,
        "published": "2021-03-15",
        "status": "",
    },
    "printing_press.html": {"topic": "History", "author": "Ana Ruiz", "year": "1450"},
    "sourdough.md": {"topic": "Cooking", "year": 2023, "published": "2023-01-10", "draft": True},
    "lighthouses.pptx": {
        "topic": "Engineering",
        "author": "Li Wei",
        "year": 2020,
        "published": "2020-07-04",
    },
    "chess_openings.txt": {},
}
ALL = set(META)


@pytest.fixture(scope="module")
def meta_kb(client, tmp_path_factory):
    """A second KB in the same app, each document uploaded with its own metadata."""
    assert client.post("/v1/kbs", json={"name": "meta"}, headers=AUTH).status_code == 201
    for name, data in sample_files(tmp_path_factory.mktemp("meta")):
        r = client.post(
            "/v1/kbs/meta/documents",
            files=[("files", (name, data, "application/octet-stream"))],
            data={"metadata": json.dumps(META[name])} if META[name] else None,
            headers=AUTH,
        )
        assert r.status_code == 202, r.text
    docs = wait_for_documents(client, "meta", expected=6, headers=AUTH)
    assert {d["status"] for d in docs.values()} == {"indexed"}, docs
    return "meta"


def dify(client, kb, metadata_condition, query=QUERIES[0][0], top_k=100):
    """A request as Dify sends it: `metadata_condition` is `MetadataCondition.model_dump()`
    and left out when Dify has none."""
    extra = {} if metadata_condition is ... else {"metadata_condition": metadata_condition}
    r = client.post(
        "/retrieval", json={**body(query, top_k), "knowledge_id": kb, **extra}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    return r.json()["records"]


def condition(name, operator, value=None, logical="and"):
    return {
        "logical_operator": logical,
        "conditions": [{"name": name, "comparison_operator": operator, "value": value}],
    }


def test_or_across_two_fields(client, meta_kb):
    """Dify's automatic metadata filtering joins its conditions with "or"."""
    either = {
        "logical_operator": "or",
        "conditions": [
            {"name": "topic", "comparison_operator": "is", "value": "Cooking"},
            {"name": "author", "comparison_operator": "start with", "value": "Ana"},
        ],
    }
    records = dify(client, meta_kb, either)
    assert {x["title"] for x in records} == {"sourdough.md", "volcanoes.pdf", "printing_press.html"}
    for x in records:
        meta = x["metadata"]
        assert meta["topic"] == "Cooking" or meta["author"].startswith("Ana")
    assert [x["score"] for x in records] == sorted((x["score"] for x in records), reverse=True)
    both = {**either, "logical_operator": "and"}
    assert dify(client, meta_kb, both) == []


@pytest.mark.parametrize(
    ("name", "operator", "value", "expected"),
    [
        ("topic", "contains", "olog", {"volcanoes.pdf", "honeybees.docx"}),
        ("topic", "contains", "OLOG", set()),  # case-sensitive, as Dify's own knowledge
        # Documents without the field match no operator but "empty" (Dify's SQL NULL).
        (
            "topic",
            "not contains",
            "olog",
            {"printing_press.html", "sourdough.md", "lighthouses.pptx"},
        ),
        ("author", "start with", "Ana", {"volcanoes.pdf", "printing_press.html"}),
        ("topic", "end with", "ing", {"sourdough.md", "lighthouses.pptx"}),
        ("filename", "end with", ".pdf", {"volcanoes.pdf"}),
        ("topic", "is", "History", {"printing_press.html"}),
        (
            "topic",
            "is not",
            "History",
            {"volcanoes.pdf", "honeybees.docx", "sourdough.md", "lighthouses.pptx"},
        ),
        ("topic", "in", "Geology, Cooking", {"volcanoes.pdf", "sourdough.md"}),
        (
            "topic",
            "not in",
            ["Geology", "Cooking"],
            {"honeybees.docx", "printing_press.html", "lighthouses.pptx"},
        ),
        ("author", "empty", None, {"sourdough.md", "chess_openings.txt"}),
        ("status", "empty", None, ALL),
        (
            "author",
            "not empty",
            None,
            {"volcanoes.pdf", "honeybees.docx", "printing_press.html", "lighthouses.pptx"},
        ),
        ("year", "=", 2023, {"sourdough.md"}),
        ("year", "=", 1450, {"printing_press.html"}),  # a numeric string is its number
        (
            "year",
            "≠",
            2023,
            {"volcanoes.pdf", "honeybees.docx", "printing_press.html", "lighthouses.pptx"},
        ),
        (
            "year",
            ">",
            "2020",
            {"honeybees.docx", "sourdough.md"},
        ),  # a string value, as an LLM sends
        ("year", "<", 2000, {"printing_press.html"}),
        ("year", "≥", 2020, {"lighthouses.pptx", "honeybees.docx", "sourdough.md"}),
        ("year", "≤", 2019, {"volcanoes.pdf", "printing_press.html"}),
        ("published", "before", "2020-01-01", {"volcanoes.pdf"}),
        ("published", "after", 1600000000, {"honeybees.docx", "sourdough.md"}),  # Unix seconds
        ("draft", "is", True, {"sourdough.md"}),
        ("topic", "contains", "Astro", set()),
    ],
)
def test_each_operator_picks_the_right_documents(client, meta_kb, name, operator, value, expected):
    records = dify(client, meta_kb, condition(name, operator, value))
    assert {x["title"] for x in records} == expected


def test_index_prefilter_and_predicate_together(client, meta_kb):
    """`is` on a plain string goes to the index, `<` stays a predicate: both apply."""
    both = {
        "logical_operator": "and",
        "conditions": [
            {"name": "author", "comparison_operator": "is", "value": "Ana Ruiz"},
            {"name": "year", "comparison_operator": "<", "value": 2000},
        ],
    }
    assert {x["title"] for x in dify(client, meta_kb, both)} == {"printing_press.html"}


def test_null_means_no_filter(client, meta_kb):
    unfiltered = dify(client, meta_kb, ..., top_k=5)
    assert len(unfiltered) == 5
    for nothing in (
        None,
        {"logical_operator": "and", "conditions": None},
        {"logical_operator": None, "conditions": []},
        condition("topic", "is", None),
        condition("year", ">", None, logical="or"),
    ):
        assert dify(client, meta_kb, nothing, top_k=5) == unfiltered, nothing
    # A null condition drops out; the others still filter.
    some = {
        "logical_operator": "or",
        "conditions": [
            {"name": "topic", "comparison_operator": "is", "value": None},
            {"name": "topic", "comparison_operator": "is", "value": "History"},
        ],
    }
    assert {x["title"] for x in dify(client, meta_kb, some)} == {"printing_press.html"}


def test_post_filter_grows_the_pool_past_top_k(client, meta_kb, monkeypatch):
    """With top_k 1 the first pool is 4 chunks: the one document that matches ranks
    below it, so only a larger pool finds it, with the score it has unfiltered."""
    monkeypatch.setattr(search, "MIN_CANDIDATES", 1)
    ranking = dify(client, meta_kb, ...)
    first_rank = {}
    for rank, x in enumerate(ranking):
        first_rank.setdefault(x["title"], (rank, x))
    target, (rank, best) = max(first_rank.items(), key=lambda item: item[1][0])
    assert rank >= 4, first_rank
    records = dify(client, meta_kb, condition("filename", "end with", target), top_k=1)
    assert [(x["title"], x["content"], x["score"]) for x in records] == [
        (target, best["content"], best["score"])
    ]
    # The bound: past MAX_WHERE_CANDIDATES the answer holds what was found.
    monkeypatch.setattr(search, "MAX_WHERE_CANDIDATES", 4)
    assert dify(client, meta_kb, condition("filename", "end with", target), top_k=1) == []


def test_malformed_conditions_are_400(client, meta_kb):
    for bad in (
        condition("topic", "matches", "x"),
        condition("topic", "is", {"x": 1}),
        condition("", "is", "x"),
        {"logical_operator": "xor", "conditions": []},
    ):
        r = client.post(
            "/retrieval",
            json={**body(), "knowledge_id": meta_kb, "metadata_condition": bad},
            headers=AUTH,
        )
        assert r.status_code == 400 and r.json()["error_code"] == 400, (bad, r.text)
