"""The embedded catalog overwrites what it deletes: an erased document's text must not
survive in SQLite's free pages (PRAGMA secure_delete, `core.db.make_engine`)."""

import pytest
from sqlalchemy import text

from core.catalog.models import KnowledgeBase
from core.db import Database

pytestmark = pytest.mark.integration

CANARY = "canary-7f3a91-erase-me-please"


def test_deleted_rows_leave_no_bytes_in_the_file(tmp_path):
    path = tmp_path / "catalog.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    with db.session() as s:
        # Enough rows of it to fill pages, so the file keeps pages that held the canary.
        for i in range(200):
            s.add(KnowledgeBase(name=f"kb-{i}", description=CANARY * 20, config={}))
    with db.session() as s:
        assert s.execute(text("PRAGMA secure_delete")).scalar() == 1
        s.execute(text("DELETE FROM knowledge_bases"))
    with db.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    db.dispose()
    data = path.read_bytes()
    wal = path.with_name("catalog.db-wal")
    if wal.exists():
        data += wal.read_bytes()
    assert CANARY.encode() not in data
