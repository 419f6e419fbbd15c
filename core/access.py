"""Who may do what: API keys with a role over some knowledge bases or all of them.

Roles are ordered: `reader` (retrieve, answer, feedback) < `reviewer` (evals, reports,
gates, feedback review, and everything a reader may) < `owner` (upload, delete,
configure, build and promote, and everything a reviewer may) < `admin` (everything,
keys included). A key holds one role over the KBs it lists (by id) or over every KB
(`kbs` None, written `"*"`). A KB the key may not see does not exist for it: every
lookup answers 404, never 403, so a key cannot learn which names are taken.

Secrets are 32 random bytes (`rgo_` + urlsafe base64), shown once; the catalog keeps
their sha256 only (a high-entropy token needs no slow hash: nothing to brute-force).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog.models import ApiKey, utcnow
from core.errors import Duplicate, Forbidden, InvalidInput, NotFound, Unauthenticated
from core.kbs import get_kb

SECRET_PREFIX = "rgo_"
ALL_KBS = "*"
BOOTSTRAP_KEY_ID = "bootstrap"
ANONYMOUS_KEY_ID = "anonymous"


class Role(enum.StrEnum):
    READER = "reader"
    REVIEWER = "reviewer"
    OWNER = "owner"
    ADMIN = "admin"

    @property
    def level(self) -> int:
        return _LEVELS[self]

    def covers(self, needed: Role) -> bool:
        return self.level >= needed.level


_LEVELS = {Role.READER: 1, Role.REVIEWER: 2, Role.OWNER: 3, Role.ADMIN: 4}


@dataclass(frozen=True)
class Principal:
    """The caller: a key id (never the secret), its role and the KB ids it may see
    (None: every KB)."""

    key_id: str
    role: Role
    kb_ids: frozenset[str] | None = None
    name: str | None = None

    @property
    def all_kbs(self) -> bool:
        return self.kb_ids is None

    def sees(self, kb_id: str | None) -> bool:
        """Whether the KB exists for this key; a resource with no KB (None) is visible
        to every key (callers decide what a KB-less resource needs)."""
        return self.kb_ids is None or kb_id is None or kb_id in self.kb_ids

    def require(self, role: Role, *, action: str) -> None:
        if not self.role.covers(role):
            raise Forbidden(
                f"this key's role {self.role.value!r} may not {action}: it needs "
                f"{role.value!r} or higher; ask an admin for a key with that role"
            )

    def require_all_kbs(self, *, action: str) -> None:
        if not self.all_kbs:
            raise Forbidden(
                f'{action} needs a key for every knowledge base (kbs "*"); this key '
                "is limited to some of them"
            )


BOOTSTRAP = Principal(key_id=BOOTSTRAP_KEY_ID, role=Role.ADMIN, name="RAGOPS_ADMIN_KEY")
ANONYMOUS = Principal(key_id=ANONYMOUS_KEY_ID, role=Role.ADMIN, name="open mode")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def shown_prefix(secret: str) -> str:
    """The start of a secret kept in clear so that people can tell their keys apart."""
    return secret[: len(SECRET_PREFIX) + 6]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            f"role {value!r} is not one of {', '.join(r.value for r in Role)}"
        ) from None


def resolve_kb_ids(
    *, session: Session, kbs: Iterable[str], viewer: Principal | None = None
) -> list[str]:
    """KB names or ids → ids, each checked to exist and, with `viewer`, to be visible to
    it (NotFound names the unknown ones, whether absent or hidden from the viewer)."""
    ids: list[str] = []
    unknown: list[str] = []
    for ref in kbs:
        try:
            kb_id = get_kb(session=session, name_or_id=ref).id
        except NotFound:
            unknown.append(ref)
            continue
        if viewer is not None and not viewer.sees(kb_id):
            unknown.append(ref)
        elif kb_id not in ids:
            ids.append(kb_id)
    if unknown:
        raise NotFound(
            f"kbs: knowledge base(s) {', '.join(map(repr, unknown))} not found; "
            "create them with POST /v1/kbs"
        )
    return ids


def principal_for(key: ApiKey) -> Principal:
    return Principal(
        key_id=key.id,
        role=Role(key.role),
        kb_ids=None if key.kbs is None else frozenset(key.kbs),
        name=key.name,
    )


def any_keys(*, session: Session) -> bool:
    return session.execute(select(ApiKey.id).limit(1)).first() is not None


def check_grant(grantor: Principal, *, role: Role, kb_ids: list[str] | None) -> None:
    """A key may only hand out what it holds: no higher role, no KB it does not see."""
    grantor.require(Role.ADMIN, action="manage API keys")
    if not grantor.role.covers(role):
        raise Forbidden(f"a {grantor.role.value} key cannot create a {role.value} key")
    if grantor.kb_ids is not None:
        if kb_ids is None:
            raise Forbidden(
                "this key is limited to some knowledge bases: it cannot create a key for "
                'every knowledge base ("*")'
            )
        # Callers resolve names with the grantor's view: anything else is unknown.
        outside = [k for k in kb_ids if k not in grantor.kb_ids]
        if outside:
            raise NotFound(f"kbs: knowledge base(s) {', '.join(outside)} not found")


def create_key(
    *, session: Session, name: str, role: Role, kb_ids: list[str] | None
) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret exists outside the caller)."""
    if session.execute(select(ApiKey.id).where(ApiKey.name == name)).first() is not None:
        raise Duplicate(f"an API key named {name!r} exists; choose another name")
    secret = new_secret()
    key = ApiKey(
        name=name,
        role=role.value,
        kbs=kb_ids,
        secret_sha256=secret_hash(secret),
        prefix=shown_prefix(secret),
    )
    session.add(key)
    session.flush()
    return key, secret


def visible_keys(*, session: Session, viewer: Principal) -> list[ApiKey]:
    """Keys the viewer administers: all for an all-KB admin, else those whose KBs all
    lie within the viewer's."""
    keys = session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)).scalars()
    return [k for k in keys if administers(viewer, k)]


def administers(viewer: Principal, key: ApiKey) -> bool:
    if not viewer.role.covers(Role.ADMIN):
        return False
    if viewer.kb_ids is None:
        return True
    return key.kbs is not None and set(key.kbs) <= viewer.kb_ids


def get_key(*, session: Session, key_id: str, viewer: Principal, by_name: bool = False) -> ApiKey:
    """The key with this id (or, with `by_name`, this id or name) that the viewer
    administers; NotFound otherwise, whether absent or not the viewer's."""
    key = session.get(ApiKey, key_id)
    if key is None and by_name:
        key = session.execute(select(ApiKey).where(ApiKey.name == key_id)).scalar_one_or_none()
    if key is None or not administers(viewer, key):
        hint = " (give its id or name; see ragops keys list)" if by_name else ""
        raise NotFound(f"API key {key_id!r} not found{hint}")
    return key


def rotate_key(*, session: Session, key: ApiKey) -> str:
    secret = new_secret()
    key.secret_sha256 = secret_hash(secret)
    key.prefix = shown_prefix(secret)
    key.rotated_at = utcnow()
    return secret


class KeyRing:
    """Turns a bearer token into a Principal, with a short cache so that the hot
    retrieval path does not query the catalog per request.

    Open mode (no `RAGOPS_ADMIN_KEY` and no key in the catalog) lets every request in as
    an anonymous admin, as before keys existed; the first key created ends it. A revoked
    or rotated secret stops working at once in this process and within `ttl` seconds in
    other processes sharing the catalog."""

    def __init__(self, db: Any, admin_key: str | None, *, ttl: float = 5.0) -> None:
        self._db = db
        self._admin_key = admin_key or None
        self._ttl = ttl
        self._lock = threading.Lock()
        self._principals: dict[str, tuple[Principal | None, float]] = {}
        self._has_keys: tuple[bool, float] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._principals.clear()
            self._has_keys = None

    def open_mode(self) -> bool:
        if self._admin_key:
            return False
        now = time.monotonic()
        cached = self._has_keys
        if cached is not None and cached[1] > now:
            return not cached[0]
        with self._db.session() as s:
            has = any_keys(session=s)
        self._has_keys = (has, now + self._ttl)
        return not has

    def cached(self, token: str | None) -> Principal | None:
        """The caller when it is known without the catalog (the bootstrap key, a key seen
        in the last `ttl` seconds, open mode known); None when `authenticate` must look."""
        if not token:
            cached = self._has_keys
            if not self._admin_key and cached is not None and cached[1] > time.monotonic():
                return None if cached[0] else ANONYMOUS
            return None
        if self._admin_key and secrets.compare_digest(token.encode(), self._admin_key.encode()):
            return BOOTSTRAP
        hit = self._principals.get(secret_hash(token))
        if hit is not None and hit[0] is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def authenticate(self, token: str | None) -> Principal:
        """The caller of a request with this bearer token (None: no Authorization)."""
        if not token:
            if self.open_mode():
                return ANONYMOUS
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        if self._admin_key and secrets.compare_digest(token.encode(), self._admin_key.encode()):
            return BOOTSTRAP
        digest = secret_hash(token)
        now = time.monotonic()
        cached = self._principals.get(digest)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            principal = self._load(digest)
            with self._lock:
                if len(self._principals) > 10_000:  # a flood of wrong keys
                    self._principals.clear()
                self._principals[digest] = (principal, now + self._ttl)
        if principal is None:
            if self.open_mode():
                return ANONYMOUS
            raise Unauthenticated("invalid API key")
        return principal

    def _load(self, digest: str) -> Principal | None:
        with self._db.session() as s:
            key = s.execute(
                select(ApiKey).where(ApiKey.secret_sha256 == digest)
            ).scalar_one_or_none()
            if key is None:
                return None
            now = utcnow()
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
                key.last_used_at = now
            return principal_for(key)
