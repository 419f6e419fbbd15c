"""Console sessions: who is signed in to the web console, and the CSRF token of each
session.

A session is a random id in an HttpOnly, SameSite=Strict cookie (`ragops_console`, path
`/console`, Secure over HTTPS); the API key it was opened with stays in this process's
memory, keyed by that id, and never reaches the browser again (no local storage, no page
HTML). Every request re-authenticates the key (`KeyRing.authenticate`, as `/v1` does),
so a rotated or deleted key ends its sessions at once. Sessions end on sign-out, after
`IDLE_SECONDS` without a request, after `MAX_AGE_SECONDS`, and when the process
restarts; several API replicas need sticky sessions.

CSRF: each session has its own token, sent back in a hidden form field (`csrf_token`) or
the `X-CSRF-Token` header and compared in constant time on every request that changes
something. The sign-in form, which has no session yet, uses a double-submit token: the
same random value in a short-lived cookie and in the form.

Example::

    store = session_store(request.app)
    console = store.create(token="rgo_...")      # at sign-in
    set_session_cookie(response, request, console.id)
    store.get(request.cookies.get(SESSION_COOKIE))  # later requests; None when gone
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "ragops_console"
SIGN_IN_COOKIE = "ragops_console_sign_in"
COOKIE_PATH = "/console"
SIGN_IN_PATH = "/console/sign-in"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# A working day of inactivity signs a console out; a day signs it out whatever it does.
IDLE_SECONDS = 8 * 3600
MAX_AGE_SECONDS = 24 * 3600
# Sessions kept per process: past it the longest idle ones go first (a flood of
# sign-ins cannot grow memory without bound).
MAX_SESSIONS = 10_000
# How long the sign-in form's CSRF cookie lives.
SIGN_IN_FORM_SECONDS = 3600


@dataclass
class ConsoleSession:
    """One signed-in browser. `token` is the API key (None in open mode)."""

    id: str
    token: str | None = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float


class SessionStore:
    """Sessions of one app, in memory; thread-safe."""

    def __init__(
        self,
        *,
        idle_s: float = IDLE_SECONDS,
        max_age_s: float = MAX_AGE_SECONDS,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s, self.max_age_s, self.limit = idle_s, max_age_s, limit
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, ConsoleSession] = {}

    def create(self, token: str | None) -> ConsoleSession:
        now = self._clock()
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
        )
        with self._lock:
            self._prune(now)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session with this id (its idle clock restarts), else None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: ConsoleSession, now: float) -> bool:
        return now - session.seen > self.idle_s or now - session.created > self.max_age_s

    def _prune(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[sid]
        excess = len(self._sessions) - self.limit + 1
        if excess > 0:
            idle_first = sorted(self._sessions.values(), key=lambda s: s.seen)
            for s in idle_first[:excess]:
                del self._sessions[s.id]


_STORE_LOCK = threading.Lock()


def session_store(app: Any) -> SessionStore:
    """The app's session store (made on first use: one per app, so apps in one process,
    as in tests, never share sessions)."""
    store = getattr(app.state, "console_sessions", None)
    if store is None:
        with _STORE_LOCK:
            store = getattr(app.state, "console_sessions", None)
            if store is None:
                store = app.state.console_sessions = SessionStore()
    return store


def current_session(request: Request) -> ConsoleSession | None:
    return session_store(request.app).get(request.cookies.get(SESSION_COOKIE))


def csrf_ok(expected: str | None, supplied: str | None) -> bool:
    if not expected or not supplied:
        return False
    return secrets.compare_digest(expected.encode(), supplied.encode())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    # No Max-Age: the cookie ends with the browser session; the server ends it sooner.
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def sign_in_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one its cookie holds, else a new one (set it
    with `set_sign_in_cookie`)."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=SIGN_IN_FORM_SECONDS,
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_sign_in_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SIGN_IN_COOKIE, path=SIGN_IN_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )
