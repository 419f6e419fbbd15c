"""Engine, sessions and migrations for the catalog (SQLite or PostgreSQL by URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: object) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            # WAL lets readers (the API) run while a worker writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted rows are overwritten with zeros: an erased
            # document's text must not survive in the file's free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest migration (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error.

        `immediate=True` is for a transaction that reads, decides and then writes (an
        upload: dedup, queue bounds, rows): on SQLite it takes the write lock up front
        (BEGIN IMMEDIATE, waiting up to busy_timeout), so what it read cannot change
        before it writes and it never fails half-way for want of the lock. PostgreSQL
        needs nothing here (callers lock the rows they decide on).
        """
        with self._sessions() as session, session.begin():
            if immediate and self.engine.dialect.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE"))
            yield session

    def flush_deleted(self, *, attempts: int = 20) -> dict[str, object]:
        """After an erase, leave no copy of deleted rows in the catalog's own files.

        SQLite: deleted rows are zeroed in the database file (`secure_delete`), but the
        write-ahead log still holds the frames that wrote them; a TRUNCATE checkpoint
        copies the log into the file and empties it. It needs a moment without readers
        in old snapshots, so it is retried. PostgreSQL: the rows are deleted; their bytes
        stay in the table's free space (and in the server's WAL) until VACUUM reuses it
        or VACUUM FULL rewrites the table (see the README)."""
        if self.engine.dialect.name != "sqlite":
            return {"engine": self.engine.dialect.name, "vacuum": "left to the server"}
        busy = 1
        for attempt in range(attempts):
            with self.engine.connect() as conn:
                busy, _log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                break
            time.sleep(min(0.05 * (attempt + 1), 0.5))
        return {"engine": "sqlite", "wal_truncated": not busy}

    def dispose(self) -> None:
        self.engine.dispose()
