"""API keys (`admin` role): create (the secret is in the 201 response, once), list,
show, rotate, delete. A key limited to some KBs administers only keys within them and
can hand out no more than it holds."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.access import PrincipalDep, note_detail
from api.deps import RuntimeDep
from api.key_schemas import KeyCreate, KeyCreated, KeyList, KeyPublic, key_public
from core import access
from core.access import ALL_KBS
from core.kbs import kb_names

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyCreate, request: Request, rt: RuntimeDep, viewer: PrincipalDep) -> dict:
    """A new key; `key` in the response is its secret, shown this once."""
    role = access.Role(body.role)
    with rt.db.session() as session:
        if body.kbs == ALL_KBS:
            kb_ids = None
        else:
            kb_ids = access.resolve_kb_ids(session=session, kbs=body.kbs, viewer=viewer)
        access.check_grant(viewer, role=role, kb_ids=kb_ids)
        key, secret = access.create_key(session=session, name=body.name, role=role, kb_ids=kb_ids)
        names = kb_names(session=session)
        body_out = key_public(key, names, secret=secret)
    rt.keys.invalidate()
    note_detail(request, target=key.id, name=key.name, role=role.value, kbs=body_out["kbs"])
    return body_out


@router.get("", response_model=KeyList)
def list_keys(rt: RuntimeDep, viewer: PrincipalDep) -> dict:
    """Keys this key administers (never their secrets)."""
    with rt.db.session() as session:
        names = kb_names(session=session)
        keys = access.visible_keys(session=session, viewer=viewer)
        return {"keys": [key_public(k, names) for k in keys]}


@router.get("/{key_id}", response_model=KeyPublic)
def get_key(key_id: str, rt: RuntimeDep, viewer: PrincipalDep) -> dict:
    with rt.db.session() as session:
        key = access.get_key(session=session, key_id=key_id, viewer=viewer)
        return key_public(key, kb_names(session=session))


@router.post("/{key_id}/rotate", response_model=KeyCreated)
def rotate_key(key_id: str, request: Request, rt: RuntimeDep, viewer: PrincipalDep) -> dict:
    """A new secret for the key (same id, name, role and KBs); the old one stops working
    at once."""
    with rt.db.session() as session:
        key = access.get_key(session=session, key_id=key_id, viewer=viewer)
        secret = access.rotate_key(session=session, key=key)
        body_out = key_public(key, kb_names(session=session), secret=secret)
    rt.keys.invalidate()
    note_detail(request, target=key_id, name=body_out["name"])
    return body_out


@router.delete("/{key_id}", status_code=204)
def delete_key(key_id: str, request: Request, rt: RuntimeDep, viewer: PrincipalDep) -> Response:
    """Revoke a key: it stops working at once."""
    with rt.db.session() as session:
        key = access.get_key(session=session, key_id=key_id, viewer=viewer)
        name = key.name
        session.delete(key)
    rt.keys.invalidate()
    note_detail(request, target=key_id, name=name)
    return Response(status_code=204)
