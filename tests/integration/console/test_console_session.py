"""The web console's session (api/console): sign-in checks the key as the API does and
keeps it on the server (HttpOnly, SameSite=Strict cookie holding a random id); every
form and every console API call that changes something needs the session's CSRF token;
sign-out ends the session on the server; a reader key sees neither other KBs nor owner
controls, and the API behind the console refuses what the role may not do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.console.session import SessionStore
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration

ADMIN = "console-admin-key"
BOOT = {"Authorization": f"Bearer {ADMIN}"}
MODEL = "all-MiniLM-L6-v2"  # packaged, quick to load


def settings_for(tmp: Path, **overrides):
    values = {
        "admin_key": ADMIN,
        "workers": 0,
        "redaction_enabled": False,
        "embedding_model": MODEL,
    }
    values.update(overrides)
    return make_settings(tmp / "data", **values)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[TestClient, str]]:
    """An app with KBs `mine` and `other`, and a reader key limited to `mine`."""
    settings = settings_for(tmp_path_factory.mktemp("console"))
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        for name in ("mine", "other"):
            r = client.post("/v1/kbs", json={"name": name}, headers=BOOT)
            assert r.status_code == 201, r.text
        r = client.post(
            "/v1/keys", json={"name": "reader", "role": "reader", "kbs": ["mine"]}, headers=BOOT
        )
        assert r.status_code == 201, r.text
        yield client, r.json()["key"]


def browser(client: TestClient) -> TestClient:
    """A second client on the same app: its own cookie jar, as a separate browser."""
    return TestClient(client.app)


def sign_in_csrf(c: TestClient, path: str = "/console/sign-in") -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


def sign_in(c: TestClient, key: str) -> str:
    """Signs in; returns the page's CSRF token (the meta tag the scripts read)."""
    token = sign_in_csrf(c)
    r = c.post("/console/sign-in", data={"csrf_token": token, "key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/kbs"
    page = c.get("/console/kbs")
    assert page.status_code == 200
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)


def set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers by cookie name, as sent."""
    out = {}
    for header in response.headers.get_list("set-cookie"):
        out[next(iter(SimpleCookie(header)))] = header
    return out


def test_sign_in_sets_an_httponly_samesite_strict_cookie_without_the_key(world):
    client, _ = world
    with browser(client) as c:
        token = sign_in_csrf(c)
        r = c.post(
            "/console/sign-in", data={"csrf_token": token, "key": ADMIN}, follow_redirects=False
        )
        assert r.status_code == 303
        cookie = set_cookies(r)["ragops_console"]
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= flags
        assert ADMIN not in cookie  # a random session id, not the key
        assert all(ADMIN not in header for header in r.headers.get_list("set-cookie"))
        for page in ("/console/kbs", "/console/kbs/mine", "/console/kbs/mine/playground"):
            r = c.get(page)
            assert r.status_code == 200 and ADMIN not in r.text, page
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["cache-control"] == "no-store"
        # The bridge answers as /v1 does for this key.
        r = c.get("/console/api/kbs")
        assert r.status_code == 200
        assert sorted(kb["name"] for kb in r.json()["data"]) == ["mine", "other"]


def test_not_signed_in_pages_redirect_and_the_bridge_is_401(world):
    client, _ = world
    with browser(client) as c:
        for entry in ("/", "/console"):
            r = c.get(entry, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, "/console/kbs")
        r = c.get("/console/kbs/mine", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/console/sign-in?next=/console/kbs/mine"
        r = c.get("/console/api/kbs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        # A bearer key sent to the bridge is not a session: the bridge ignores it.
        assert c.get("/console/api/kbs", headers=BOOT).status_code == 401


def test_a_wrong_key_is_refused_and_audited(world):
    client, _ = world
    with browser(client) as c:
        token = sign_in_csrf(c)
        r = c.post(
            "/console/sign-in",
            data={"csrf_token": token, "key": "rgo_wrong", "next": "/console/kbs/mine"},
        )
        assert r.status_code == 401
        assert "This API key is not valid." in r.text
        assert 'name="next" value="/console/kbs/mine"' in r.text  # kept for the next try
        assert "ragops_console" not in set_cookies(r)
        r = c.post("/console/sign-in", data={"csrf_token": token, "key": ""})
        assert r.status_code == 401 and "Enter an API key." in r.text
    events = client.get("/v1/audit", params={"action": "auth.failed"}, headers=BOOT).json()
    assert any(e["path"] == "/console/sign-in" and e["status"] == 401 for e in events["events"])


def test_csrf_is_required_on_every_form_and_every_change(world):
    client, _ = world
    with browser(client) as c:
        # The sign-in form: its token must match its cookie.
        sign_in_csrf(c)
        r = c.post("/console/sign-in", data={"csrf_token": "forged", "key": ADMIN})
        assert r.status_code == 403 and "expired or came from another site" in r.text
        assert "ragops_console" not in set_cookies(r)
        csrf = sign_in(c, ADMIN)
        body = {"name": "csrf-kb", "embedding_model": MODEL}
        # A console API call that changes something: no header, a wrong one → 403.
        r = c.post("/console/api/kbs", json=body)
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["error"]["message"]
        r = c.post("/console/api/kbs", json=body, headers={"X-CSRF-Token": "x" + csrf})
        assert r.status_code == 403
        r = c.delete("/console/api/kbs/mine", headers={"X-CSRF-Token": ""})
        assert r.status_code == 403
        assert c.get("/console/api/kbs/csrf-kb").status_code == 404  # nothing was created
        # Sign-out is a form too.
        r = c.post("/console/sign-out", data={}, follow_redirects=False)
        assert r.status_code == 403
        assert c.get("/console/kbs", follow_redirects=False).status_code == 200  # still in
        # With the token, the same request goes through to /v1.
        r = c.post("/console/api/kbs", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        r = c.delete("/console/api/kbs/csrf-kb", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
    # The refusals are in the audit log like any refused request.
    events = client.get("/v1/audit", params={"action": "auth.denied"}, headers=BOOT).json()
    assert {"/console/api/kbs", "/console/sign-in", "/console/sign-out"} <= {
        e["path"] for e in events["events"]
    }


def test_api_errors_reach_the_console_as_the_api_words_them(world):
    client, _ = world
    with browser(client) as c:
        csrf = sign_in(c, ADMIN)
        r = c.post("/console/api/kbs", json={"name": "bad name"}, headers={"X-CSRF-Token": csrf})
        direct = client.post("/v1/kbs", json={"name": "bad name"}, headers=BOOT)
        assert r.status_code == direct.status_code == 422
        assert r.json()["error"]["message"] == direct.json()["error"]["message"]
        r = c.post("/console/api/kbs", json={"name": "mine"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]


def test_sign_out_ends_the_session_on_the_server(world):
    client, _ = world
    with browser(client) as c:
        csrf = sign_in(c, ADMIN)
        session_id = c.cookies.get("ragops_console")
        r = c.post("/console/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/console/sign-in?notice=signed_out"
        cleared = set_cookies(r)["ragops_console"].lower()
        assert "max-age=0" in cleared and "path=/console" in cleared
        assert c.get("/console/sign-in?notice=signed_out").text.count("You are signed out.") == 1
    # The old cookie, replayed, opens nothing.
    with browser(client) as replay:
        replay.cookies.set("ragops_console", session_id, path="/console")
        assert replay.get("/console/api/kbs").status_code == 401
        r = replay.get("/console/kbs", follow_redirects=False)
        assert r.status_code == 303 and "notice=expired" in r.headers["location"]


def test_a_reader_sees_only_its_kb_and_no_owner_controls(world):
    client, reader_key = world
    with browser(client) as c:
        csrf = sign_in(c, reader_key)
        page = c.get("/console/kbs").text
        assert 'id="create-kb"' not in page  # creating a KB needs an owner of every KB
        assert "reader of some knowledge bases" in page
        assert [kb["name"] for kb in c.get("/console/api/kbs").json()["data"]] == ["mine"]
        # Another KB does not exist for it: page and API alike.
        assert c.get("/console/kbs/other").status_code == 404
        assert c.get("/console/kbs/other/playground").status_code == 404
        r = c.post(
            "/console/api/kbs/other/retrieve", json={"query": "x"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 404
        # Its own KB: the playground, never the document list or its controls.
        r = c.get("/console/kbs/mine", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/console/kbs/mine/playground")
        page = c.get("/console/kbs/mine/playground").text
        for control in ("dropzone", "choose-files", "Erase", "Upload documents", ">Documents<"):
            assert control not in page, control
        # The API refuses what the role may not do, whatever the page shows.
        assert c.get("/console/api/kbs/mine/documents").status_code == 403
        r = c.post(
            "/console/api/kbs/mine/documents",
            files=[("files", ("a.txt", b"hello", "text/plain"))],
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403 and "'owner'" in r.json()["error"]["message"]
        r = c.post("/console/api/keys", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403


def test_an_owner_sees_upload_and_erase_controls(world):
    client, _ = world
    with browser(client) as c:
        sign_in(c, ADMIN)
        page = c.get("/console/kbs/mine").text
        assert 'id="dropzone"' in page and 'data-can-erase="true"' in page
        assert 'id="create-kb"' in c.get("/console/kbs").text


def test_a_deleted_key_ends_its_sessions(world):
    client, _ = world
    r = client.post(
        "/v1/keys", json={"name": "short-lived", "role": "owner", "kbs": ["mine"]}, headers=BOOT
    )
    key_id, secret = r.json()["id"], r.json()["key"]
    with browser(client) as c:
        sign_in(c, secret)
        assert client.delete(f"/v1/keys/{key_id}", headers=BOOT).status_code == 204
        r = c.get("/console/kbs/mine", follow_redirects=False)
        assert r.status_code == 303 and "notice=expired" in r.headers["location"]
        assert c.get("/console/api/kbs").status_code == 401


def test_next_only_returns_to_console_pages(world):
    client, _ = world
    with browser(client) as c:
        for target, landing in (
            ("/console/kbs/mine/playground", "/console/kbs/mine/playground"),
            ("//evil.example/console/", "/console/kbs"),
            ("https://evil.example/", "/console/kbs"),
            ("/console/api/keys", "/console/kbs"),
        ):
            token = sign_in_csrf(c)
            r = c.post(
                "/console/sign-in",
                data={"csrf_token": token, "key": ADMIN, "next": target},
                follow_redirects=False,
            )
            assert r.headers["location"] == landing, target
            c.cookies.clear()


def test_open_mode_says_so_and_lets_the_user_in(tmp_path):
    settings = settings_for(tmp_path, admin_key=None)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        page = c.get("/console/sign-in").text
        assert "open mode" in page and 'name="key"' not in page
        csrf = sign_in(c, "")
        assert "open mode · admin of every knowledge base" in c.get("/console/kbs").text
        r = c.post(
            "/console/api/kbs",
            json={"name": "open", "embedding_model": MODEL},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 201, r.text
        # The first key ends open mode, and with it the key-less session.
        r = c.post("/v1/keys", json={"name": "first", "role": "admin", "kbs": "*"})
        assert r.status_code == 201
        r = c.get("/console/kbs", follow_redirects=False)
        assert r.status_code == 303 and "notice=expired" in r.headers["location"]


def test_sessions_expire_when_idle_or_old_and_stay_bounded():
    now = [0.0]
    store = SessionStore(idle_s=10, max_age_s=25, limit=3, clock=lambda: now[0])
    s = store.create("k")
    now[0] = 9
    assert store.get(s.id) is s  # a request restarts the idle clock
    now[0] = 18
    assert store.get(s.id) is s
    now[0] = 26
    assert store.get(s.id) is None  # older than max_age
    a, b, c = store.create("a"), store.create("b"), store.create("c")
    now[0] = 30
    store.get(a.id)
    store.create("d")  # over the limit: the longest idle (b) goes
    assert store.get(b.id) is None and store.get(a.id) is a and len(store) == 3
    now[0] = 45
    assert store.get(c.id) is None  # idle for 19 s
    assert store.get(None) is None and store.get("") is None
