"""BM25 sparse vectors in Qdrant versions (`index.sparse`), on Qdrant Edge and on the
server's calls (qdrant-client's in-memory local mode as its stand-in): the sparse side
alone finds inflected rare words that the dense side misses (Russian, Spanish), scores
are BM25 with the IDF the engine computes, filters hold inside both prefetches of a
hybrid query, collections created before hybrid say so, and erasure keeps the sparse
side consistent (the erased chunks' terms are gone, IDF counts only what is left)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.db import Database
from core.errors import InvalidInput
from index.qdrant_index import close_client, collection_name, make_client, open_collection
from index.sparse import EngineFusion, HybridSearch, encode_document, tokenize
from index.store import IndexStore
from tests.integration.index.test_index_erase import new_version
from tests.integration.index.test_index_store import DIM, current, unit_rows

pytestmark = pytest.mark.integration

DOCS = [
    ("ru", "Река Мста течёт через Боровичи и впадает в озеро Ильмень."),
    ("ru", "Шексна впадает в Рыбинское водохранилище у Череповца."),
    ("ru", "Волга — самая длинная река Европы, её длина 3530 километров."),
    ("ru", "Озеро Байкал — самое глубокое озеро на Земле."),
    ("ru", "Москва — столица России и крупнейший город страны."),
    ("ru", "Зимой в Сибири морозы достигают сорока градусов."),
    ("es", "Los albañiles repararon el acueducto de Segovia en 1992."),
    ("es", "El río Ebro desemboca en el mar Mediterráneo."),
    ("es", "La catedral de Burgos tiene torres góticas."),
    ("es", "Madrid es la capital de España."),
    ("es", "Los pescadores salen al mar antes del amanecer."),
    ("es", "El puente romano de Córdoba cruza el Guadalquivir."),
]
IDS = [f"c{i:02d}" for i in range(len(DOCS))]
FUSION = EngineFusion("rrf", (0.5, 0.5))


def payloads() -> list[dict[str, Any]]:
    return [{"document_id": f"d{i}", "lang": lang} for i, (lang, _) in enumerate(DOCS)]


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def hybrid(request: pytest.FixtureRequest, tmp_path: Path, embedder: Any) -> Iterator[Any]:
    """A lexical collection holding DOCS with their real (all-MiniLM-L6-v2) vectors."""
    client: Any = (
        make_client(path=tmp_path / "qdrant")
        if request.param == "qdrant-edge"
        else QdrantClient(location=":memory:")
    )
    index = open_collection(client, "hybrid", 384, lexical=True)
    index.upsert(IDS, embedder.encode([t for _, t in DOCS]), payloads(), [t for _, t in DOCS])
    index.save()
    yield index
    close_client(client)


def dense_ids(embedder: Any, index: Any, query: str, k: int = 3) -> list[str]:
    return [h.chunk_id for h in index.search(embedder.encode([query], kind="query")[0], k)]


@pytest.mark.parametrize(
    ("query", "stem", "expected"),
    [
        # "реки" (genitive) finds "река" (nominative): both stem to "рек"
        ("реки", "рек", {"c00", "c02"}),
        # "puentes" (plural) finds "puente"
        ("puentes", "puent", {"c11"}),
    ],
)
def test_sparse_side_finds_inflected_rare_words_the_dense_side_misses(
    hybrid: Any, embedder: Any, query: str, stem: str, expected: set[str]
) -> None:
    assert isinstance(hybrid, HybridSearch) and hybrid.lexical
    lexical = hybrid.search_lexical(query, 5)
    assert {h.chunk_id for h in lexical} == expected
    assert all(stem in tokenize(DOCS[IDS.index(h.chunk_id)][1]) for h in lexical)
    # the dense side (an English-only model on Russian and Spanish) ranks another first
    assert dense_ids(embedder, hybrid, query, 1)[0] not in expected
    # fused, the lexical match comes first
    vector = embedder.encode([query], kind="query")[0]
    fused = hybrid.search_hybrid(vector, query, 3, fusion=FUSION, candidates=12)
    assert fused[0].chunk_id in expected


def test_sparse_scores_are_bm25_with_the_engines_idf(hybrid: Any) -> None:
    """score = Σ query count · idf · tf-part, idf = ln(1 + (N − n + 0.5) / (n + 0.5)) over
    the N points holding a sparse vector (the IDF of bm25s, `retrieval.bm25`)."""
    n = len(DOCS)

    def idf(df: int) -> float:
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    [hit] = hybrid.search_lexical("Шексны", 5)
    assert hit.chunk_id == "c01"
    assert hit.score == pytest.approx(idf(1) * _tf(1, "шексн"), rel=1e-4)
    scores = {h.chunk_id: h.score for h in hybrid.search_lexical("река, реки, Шексна", 5)}
    assert set(scores) == {"c00", "c01", "c02"}
    assert scores["c00"] == pytest.approx(2 * idf(2) * _tf(0, "рек"), rel=1e-4)


def _tf(doc: int, token: str) -> float:
    from index.sparse import token_index

    indices, values = encode_document(DOCS[doc][1])
    return values[indices.index(token_index(token))]


def test_filters_apply_inside_both_prefetches(hybrid: Any, embedder: Any) -> None:
    query = "реки Шексна puentes"
    vector = embedder.encode([query], kind="query")[0]
    for filters, langs in (({"lang": "es"}, {"es"}), ({"lang": ["ru"]}, {"ru"})):
        hits = hybrid.search_hybrid(vector, query, 12, filters, fusion=FUSION, candidates=12)
        assert {h.payload["lang"] for h in hits} == langs
        assert len(hits) == 6  # every matching point, from either side
        lexical = {h.chunk_id for h in hybrid.search_lexical(query, 12, filters)}
        assert lexical and lexical <= {h.chunk_id for h in hits}
    assert hybrid.search_hybrid(vector, query, 5, {"lang": []}, fusion=FUSION, candidates=5) == []
    # a query without words: the dense list alone, in its order
    dense = [h.chunk_id for h in hybrid.search(vector, 4)]
    assert [
        h.chunk_id for h in hybrid.search_hybrid(vector, "¿?", 4, fusion=FUSION, candidates=4)
    ] == dense
    # DBSF too
    hits = hybrid.search_hybrid(
        vector, query, 5, {"lang": "es"}, fusion=EngineFusion("dbsf"), candidates=12
    )
    assert hits and {h.payload["lang"] for h in hits} == {"es"}


@pytest.mark.parametrize("engine", ["qdrant-edge", "qdrant-server"])
def test_collections_created_before_hybrid_have_no_sparse_side(tmp_path: Path, engine: str) -> None:
    client: Any = (
        make_client(path=tmp_path / "qdrant")
        if engine == "qdrant-edge"
        else QdrantClient(location=":memory:")
    )
    try:
        old = open_collection(client, "old", DIM)  # as every collection was before
        old.upsert(["a"], unit_rows(1, 1), [{}], ["texts are ignored here"])
        assert not old.lexical
        with pytest.raises(InvalidInput, match="without BM25 sparse vectors"):
            old.search_hybrid(unit_rows(1, 2)[0], "texts", 3, fusion=FUSION, candidates=3)
        with pytest.raises(InvalidInput, match="without BM25 sparse vectors"):
            old.search_lexical("texts", 3)
        # opening it for a new version does not change what it holds; a new one has both
        assert not open_collection(client, "old", DIM, lexical=True).lexical
        assert open_collection(client, "new", DIM, lexical=True).lexical
        assert open_collection(client, "new", DIM).lexical
    finally:
        close_client(client)
    if engine == "qdrant-edge":  # and so it stays on disk
        client = make_client(path=tmp_path / "qdrant")
        try:
            assert open_collection(client, "new", DIM).lexical
            assert not open_collection(client, "old", DIM, lexical=True).lexical
        finally:
            close_client(client)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_erase_keeps_the_sparse_side_consistent(tmp_path: Path, db: Database) -> None:
    """Erasure rebuilds the Edge shard (a vacuumed copy, swapped in): the new shard keeps
    its sparse vectors, the erased chunks' terms match nothing, and IDF counts only the
    points left (their scores are BM25 over the smaller corpus)."""
    client = make_client(path=tmp_path / "qdrant")
    version = new_version(db, backend="qdrant")
    store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: client)
    texts = [t for _, t in DOCS]
    try:
        with store.writer(version) as index:
            index.upsert(IDS, unit_rows(len(IDS), 5), payloads(), texts)
        index = store.reader(current(db, version))
        assert index.lexical
        assert {h.chunk_id for h in index.search_lexical("Шексны", 5)} == {"c01"}
        before = {h.chunk_id: h.score for h in index.search_lexical("река", 5)}
        assert set(before) == {"c00", "c02"}

        assert store.erase(current(db, version), [], document_ids=["d1", "d2"]) == 2

        index = store.reader(current(db, version))
        name = collection_name(version.kb_id, version.number, version.id)
        assert index.lexical and index.collection == name and index.count() == len(DOCS) - 2
        assert index.search_lexical("Шексны", 5) == []
        [hit] = index.search_lexical("река", 5)
        n = len(DOCS) - 2  # "рек" is left in c00 only
        assert hit.chunk_id == "c00"
        assert hit.score == pytest.approx(math.log(1 + (n - 0.5) / 1.5) * _tf(0, "рек"), rel=1e-4)
        assert hit.score != pytest.approx(before["c00"], rel=1e-3)  # IDF moved
        # writes after the erase get sparse vectors too
        with store.writer(current(db, version)) as index:
            index.upsert(["c99"], unit_rows(1, 6), [{"document_id": "d99"}], ["Шексна снова"])
        index = store.reader(current(db, version))
        assert {h.chunk_id for h in index.search_lexical("Шексны", 5)} == {"c99"}
    finally:
        close_client(client)


def test_texts_must_match_the_ids(tmp_path: Path) -> None:
    client = make_client(path=tmp_path / "qdrant")
    try:
        index = open_collection(client, "c", DIM, lexical=True)
        with pytest.raises(InvalidInput, match="expected a list of 2 texts"):
            index.upsert(["a", "b"], unit_rows(2, 1), [{}, {}], ["only one"])
        with pytest.raises(InvalidInput, match="texts must be strings"):
            index.upsert(["a"], unit_rows(1, 1), [{}], [None])  # type: ignore[list-item]
        assert index.count() == 0
        # without texts a point has no sparse vector: only the dense side finds it
        index.upsert(["a"], unit_rows(1, 1), [{}])
        assert index.search_lexical("anything", 3) == []
        assert [h.chunk_id for h in index.search(unit_rows(1, 1)[0], 1)] == ["a"]
        assert np.isfinite(index.search(unit_rows(1, 1)[0], 1)[0].score)
    finally:
        close_client(client)
