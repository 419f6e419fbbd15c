"""`SessionDep`, `KbDep` and `VersionDep` on a real catalog (SQLite and PostgreSQL): the
request's transaction commits before the response is sent, a domain error rolls it back
and keeps its status, a failed commit is an error response and never a 2xx."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import errors
from api.deps import KbDep, SessionDep, VersionDep
from core.access import KeyRing
from core.catalog.models import IndexVersion, KnowledgeBase, VersionStatus
from core.db import Database
from core.errors import Conflict

pytestmark = pytest.mark.integration


@pytest.fixture
def db(catalog_url: str):
    database = Database(catalog_url)
    database.migrate()
    with database.session() as s:
        kb = KnowledgeBase(name="handbook", config={})
        s.add(kb)
        s.flush()
        s.add(
            IndexVersion(
                kb_id=kb.id,
                number=1,
                status=VersionStatus.LIVE,
                embedding_model="m",
                dimension=3,
                config_hash="h",
            )
        )
    yield database
    database.dispose()


@pytest.fixture
def client(db: Database):
    app = FastAPI()
    errors.install(app)
    # Open mode (no admin key, no keys): every request is the anonymous admin.
    app.state.runtime = SimpleNamespace(db=db, keys=KeyRing(db, None))

    @app.post("/kbs/{name}", status_code=201)
    def add(name: str, session: SessionDep, fail: bool = False) -> dict:
        session.add(KnowledgeBase(name=name, config={}))
        session.flush()
        if fail:
            raise Conflict(f"refused {name}")
        return {"added": name}

    @app.post("/unflushed/{name}", status_code=201)
    def add_unflushed(name: str, session: SessionDep) -> dict:
        # Not flushed: a duplicate name fails only at commit, after the route returned.
        session.add(KnowledgeBase(name=name, config={}))
        return {"added": name}

    @app.get("/kbs/{kb}")
    def get(kb: KbDep) -> dict:
        return {"id": kb.id, "name": kb.name, "config": kb.config}

    @app.get("/kbs/{kb}/versions/{number}")
    def version(version: VersionDep) -> dict:
        return {"number": version.number, "status": version.status}

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def names(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.execute(select(KnowledgeBase.name).order_by(KnowledgeBase.name)).scalars())


def test_session_commits_when_the_route_succeeds(client, db):
    r = client.post("/kbs/policies")
    assert r.status_code == 201 and r.json() == {"added": "policies"}
    assert names(db) == ["handbook", "policies"]


def test_a_domain_error_rolls_back_and_keeps_its_status(client, db):
    r = client.post("/kbs/policies", params={"fail": True})
    assert r.status_code == 409
    assert r.json() == {"error": {"code": "conflict", "message": "refused policies"}}
    assert names(db) == ["handbook"]


def test_a_failed_commit_is_an_error_response(client, db):
    r = client.post("/unflushed/handbook")  # the name is taken: the commit fails
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal server error"}}
    with db.session() as s:
        assert s.execute(select(func.count(KnowledgeBase.id))).scalar() == 1


def test_kb_dep_resolves_name_or_id_and_404s_unknown(client, db):
    by_name = client.get("/kbs/handbook")
    assert by_name.status_code == 200 and by_name.json()["name"] == "handbook"
    by_id = client.get(f"/kbs/{by_name.json()['id']}")
    assert by_id.json() == by_name.json()
    r = client.get("/kbs/nope")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "knowledge base 'nope' not found; create it with POST /v1/kbs",
    }


def test_version_dep(client):
    assert client.get("/kbs/handbook/versions/1").json() == {"number": 1, "status": "live"}
    r = client.get("/kbs/handbook/versions/7")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "index version 7 not found in knowledge base 'handbook'"
    assert client.get("/kbs/nope/versions/1").status_code == 404
    assert client.get("/kbs/handbook/versions/x").status_code == 422
