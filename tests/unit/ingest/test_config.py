import pytest
from pydantic import ValidationError

from ingest.config import ChunkingConfig, IngestionConfig, RedactionConfig

pytestmark = pytest.mark.unit


def base() -> IngestionConfig:
    return IngestionConfig(
        chunking=ChunkingConfig(chunk_size=200, chunk_overlap=20),
        redaction=RedactionConfig(enabled=True, entities=["PERSON"]),
        embedding_model="all-MiniLM-L6-v2",
    )


def test_merge_changes_one_nested_field_and_the_hash():
    cfg = base()
    merged = cfg.merged({"chunking": {"chunk_size": 120}})
    assert merged.chunking.chunk_size == 120
    assert merged.chunking.chunk_overlap == 20
    assert merged.hash != cfg.hash
    assert cfg.merged({}).hash == cfg.hash


def test_overlap_must_be_below_size():
    with pytest.raises(ValidationError, match="chunk_overlap"):
        base().merged({"chunking": {"chunk_overlap": 200}})


def test_unknown_keys_are_rejected():
    with pytest.raises(ValidationError):
        base().merged({"chunking": {"size": 10}})
