"""A KB built from the multilingual QA set (`tests/bench/data`), with a matching test
set: real documents and questions with known answers, for eval, gate and report tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from tests.bench.qa import load_documents, load_questions, render
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS


def qa_subset(
    docs_per_language: int, languages: tuple[str, ...] = ("en", "es", "ru")
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first `docs_per_language` documents of each language and a test case for
    every question about them: (documents, cases)."""
    docs: list[dict[str, Any]] = []
    for lang in languages:
        docs += [d for d in load_documents() if d["language"] == lang][:docs_per_language]
    names = {d["filename"] for d in docs}
    cases = [
        {
            "question": q.question,
            "reference_answer": q.answer,
            "reference_doc_ids": [q.filename],
            "tags": [q.language, q.split],
        }
        for q in load_questions()
        if q.filename in names
    ]
    return docs, cases


@contextmanager
def qa_client(
    tmp: Path, *, kb: str, docs_per_language: int, testset: str = "qa", **overrides: Any
) -> Iterator[TestClient]:
    """The app with KB `kb` holding a QA subset, and test set `testset` over it."""
    docs, cases = qa_subset(docs_per_language)
    settings = make_settings(tmp / "data", redaction_enabled=False, **overrides)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        assert client.post("/v1/kbs", json={"name": kb}).status_code == 201
        upload(client, kb, [(d["filename"], render(d)) for d in docs])
        wait_for_documents(client, kb, expected=len(docs), timeout=300)
        r = client.post("/v1/testsets", json={"name": testset, "cases": cases})
        assert r.status_code == 201, r.text
        yield client
