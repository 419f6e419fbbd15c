"""Shared request dependencies as `Annotated` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from core.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_key(request: Request, rt: RuntimeDep) -> None:
    """When RAGOPS_ADMIN_KEY is set, every /v1 route needs `Authorization: Bearer <key>`."""
    expected = rt.settings.admin_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
