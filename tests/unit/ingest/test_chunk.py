import pytest

from core.types import Piece, StageReport
from ingest.chunk import SentenceChunker

pytestmark = pytest.mark.unit

SENTENCE = "Magma rises through the crust of Iceland and feeds the chamber below Hekla. "


def chunker(embedder, size=60, overlap=10):
    return SentenceChunker(
        embedder.tokenize, chunk_size=size, chunk_overlap=overlap, max_tokens=embedder.max_tokens
    )


def test_chunks_never_exceed_the_budget_in_model_tokens(embedder):
    report = StageReport()
    out = chunker(embedder)([Piece(SENTENCE * 40, {"page_number": 1})], report)
    assert len(out) > 5
    for piece in out:
        assert piece.token_count == embedder.count_tokens(piece.text)
        assert piece.token_count <= 60
    assert [p.metadata["position"] for p in out] == list(range(len(out)))
    assert report.counts["chunk"]["chunks"] == len(out)


def test_pages_and_sections_are_not_mixed(embedder):
    pieces = [
        Piece("Page one text about bees.", {"page_number": 1, "section": "Bees"}),
        Piece("More about bees.", {"page_number": 1, "section": "Bees"}),
        Piece("Page two is about wasps.", {"page_number": 2, "section": "Wasps"}),
    ]
    out = chunker(embedder)(pieces, StageReport())
    assert [(p.metadata["page_number"], p.metadata["section"]) for p in out] == [
        (1, "Bees"),
        (2, "Wasps"),
    ]
    assert "More about bees." in out[0].text


def test_unsplittable_text_is_hard_split_within_budget(embedder):
    words = " ".join(f"tok{i}x{i * 7}" for i in range(400))  # no sentence boundary at all
    long_word = "y" * 5000
    out = chunker(embedder, size=40, overlap=5)([Piece(words + " " + long_word)], StageReport())
    assert all(embedder.count_tokens(p.text) <= 40 for p in out)
    assert "tok399x2793" in " ".join(p.text for p in out)


def test_chunk_size_over_model_limit_is_refused(embedder):
    with pytest.raises(ValueError, match="silently truncated"):
        chunker(embedder, size=embedder.max_tokens + 1)


def test_overlap_repeats_text_between_neighbours(embedder):
    text = " ".join(f"Sentence {i} mentions lighthouse number {i}." for i in range(60))
    out = chunker(embedder, size=50, overlap=20)([Piece(text)], StageReport())
    assert len(out) >= 3
    shared = set(out[0].text.split()) & set(out[1].text.split())
    assert any(w.startswith(("Sentence", "lighthouse")) for w in shared)
