"""The composition root: runtimes own their heavy components, side by side."""

from __future__ import annotations

import pytest

from api.components import Components
from api.runtime import Runtime
from index.qdrant_index import make_client
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def test_two_runtimes_side_by_side_own_and_close_their_components(tmp_path):
    a = Runtime(make_settings(tmp_path / "a", workers=0))
    b = Runtime(make_settings(tmp_path / "b", workers=0))
    try:
        a.start(workers=False, models=False)
        b.start(workers=False, models=False)
        assert a.ready and b.ready
        # Catalog only: nothing was loaded.
        assert a.components is not b.components
        assert a.components._objects == {} and not a.components.presidio.loaded()
        assert a.embedder() is a.embedder() and a.embedder() is not b.embedder()
        assert a.redactor() is not b.redactor()
        assert a.redactor().engines is a.components.presidio
        assert a.generator("local") is a.generator("local")
        a_client = a.qdrant_client()
        assert a_client is a.qdrant_client() and a_client is not b.qdrant_client()
    finally:
        a.close()
    assert a.components.closed and not b.components.closed
    # a's local Qdrant folder is free again; b still works.
    make_client(path=a.settings.qdrant_path).close()
    assert b.embedder().dimension == 384
    b.close()


def test_shared_components_are_borrowed_not_closed(tmp_path):
    shared = Components()
    a = Runtime(make_settings(tmp_path / "a", workers=0), components=shared)
    b = Runtime(make_settings(tmp_path / "b", workers=0), components=shared)
    try:
        assert a.embedder() is b.embedder()
        # Settings that shape an object are part of its key.
        c = Runtime(
            make_settings(tmp_path / "c", workers=0, embedding_batch_size=8), components=shared
        )
        assert c.embedder() is not a.embedder() and c.embedder().batch_size == 8
        c.close()
        a.close()
        assert not shared.closed and b.embedder() is not None
    finally:
        b.close()
        shared.close()
    with pytest.raises(RuntimeError, match="closed"):
        shared.embedder(a.settings)
