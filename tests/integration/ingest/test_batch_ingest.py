"""Ingest jobs run in batches (ingest.stream): many documents per worker round, one
embedding batch and one index publish for many of them, and still each document ends on
its own: a file that hangs the parser fails alone with its reason while the rest of its
batch is indexed."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from api.components import Components
from api.runtime import Runtime
from core.catalog.models import DocumentRevision, Job
from core.config import Settings
from core.kbs import live_version
from ingest.documents import INGEST_JOB, submit_uploads
from ingest.isolate import IsolatedParser
from ingest.knowledge_bases import create_kb
from tests.conftest import make_settings
from tests.utils.corpus import make_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG_AFTER_S = 2.0


class HangingParserComponents(Components):
    """Real components, except that the isolated parser hangs on bytes starting with
    HANG (tests.utils.hostile.hanging_parse) until its timeout kills the worker."""

    def parser(self, settings: Settings) -> IsolatedParser:
        return self._get(
            ("hanging-parser",),
            lambda: IsolatedParser(
                timeout_s=HANG_AFTER_S, parse_function="tests.utils.hostile:hanging_parse"
            ),
        )


TOPICS = {
    "bees": "Honeybees dance to tell the hive where the flowers are.",
    "chess": "The Sicilian Defence answers the king's pawn with the c-pawn.",
    "tides": "Tides rise and fall twice a day because of the moon.",
    "bread": "Sourdough rises slowly because wild yeast ferments the dough.",
    "glass": "Glassblowers shape molten glass with breath and a long pipe.",
    "rails": "Railway signals keep trains a safe braking distance apart.",
    "coral": "Coral reefs grow from the limestone skeletons of tiny polyps.",
    "salt": "Sea salt is harvested by letting shallow ponds evaporate.",
}


def wait_final(rt: Runtime, ids: list[str], timeout: float = 180.0) -> dict[str, DocumentRevision]:
    deadline = time.monotonic() + timeout
    while True:
        with rt.db.session() as s:
            revs = {
                r.id: r
                for r in s.execute(
                    select(DocumentRevision).where(DocumentRevision.id.in_(ids))
                ).scalars()
            }
        if all(r.status in ("indexed", "failed") for r in revs.values()):
            return revs
        if time.monotonic() > deadline:
            raise AssertionError({r.id: r.status for r in revs.values()})
        time.sleep(0.1)


def test_a_hanging_file_fails_alone_and_its_batch_is_indexed(tmp_path):
    settings = make_settings(tmp_path / "data", workers=1, redaction_enabled=False)
    components = HangingParserComponents()
    rt = Runtime(settings, components=components)
    try:
        rt.start(workers=True)
        kb = create_kb(rt, name="batch", changes={"redaction": {"enabled": False}})
        files = [
            (f"{name}.txt", make_text(name.title(), [text] * 3), "text/plain")
            for name, text in TOPICS.items()
        ]
        files.insert(
            3, ("stuck.txt", b"HANG" + make_text("Stuck", ["Never parsed."]), "text/plain")
        )
        outcomes = submit_uploads(rt, kb=kb, files=files)
        revs = wait_final(rt, [o.revision_id for o in outcomes])
        by_name = {o.filename: revs[o.revision_id] for o in outcomes}

        stuck = by_name.pop("stuck.txt")
        assert stuck.status == "failed"
        assert (
            stuck.error
            == f"parse failed for 'stuck.txt': parsing took longer than {HANG_AFTER_S:g} s"
        )
        assert {n: r.status for n, r in by_name.items()} == {n: "indexed" for n in by_name}
        assert all(
            r.report["counts"]["index"]["written"] == r.chunk_count for r in by_name.values()
        )

        with rt.db.session() as s:
            jobs = list(s.execute(select(Job).where(Job.kind == INGEST_JOB)).scalars())
            version = live_version(session=s, kb_id=kb.id)
        # Each job ran once; the vectors are exactly the indexed documents' chunks.
        assert all(j.attempts == 1 for j in jobs)
        assert rt.indexes.reader(version).count() == sum(r.chunk_count for r in by_name.values())
    finally:
        rt.close()
        components.close()
