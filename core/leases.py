"""Expiring named locks in the catalog: exactly one holder at a time across processes
and machines (SQLite or PostgreSQL), taken over when the holder stops renewing."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from core.catalog.models import Lease, utcnow
from core.db import Database


class CatalogLease:
    def __init__(
        self, db: Database, name: str, *, ttl_seconds: float = 60.0, owner: str | None = None
    ) -> None:
        self.db = db
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def acquire(self) -> bool:
        """Take or renew the lease; False while another live holder has it."""
        now = utcnow()
        with self.db.session() as s:
            renewed = s.execute(
                update(Lease)
                .where(
                    Lease.name == self.name, or_(Lease.owner == self.owner, Lease.expires_at < now)
                )
                .values(owner=self.owner, expires_at=now + self.ttl)
            ).rowcount
        if renewed == 1:
            return True
        try:
            with self.db.session() as s:
                if s.get(Lease, self.name) is not None:
                    return False
                s.add(Lease(name=self.name, owner=self.owner, expires_at=now + self.ttl))
            return True
        except IntegrityError:
            return False  # another process inserted it first

    def release(self) -> None:
        with self.db.session() as s:
            s.execute(
                update(Lease)
                .where(Lease.name == self.name, Lease.owner == self.owner)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
