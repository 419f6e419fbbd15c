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


def test_a_policy_without_operators_gets_the_measured_per_entity_defaults():
    assert RedactionConfig().entity_operators == {"PERSON": "pseudonymize"}
    assert base().redaction.operator == "replace"
    assert base().redaction.entity_operators == {"PERSON": "pseudonymize"}
    # A chosen operator applies to every entity, on creation and in a later change.
    assert RedactionConfig(operator="mask").entity_operators is None
    masked = base().merged({"redaction": {"operator": "mask"}})
    assert masked.redaction.operator == "mask" and masked.redaction.entity_operators is None
    both = base().merged(
        {"redaction": {"operator": "mask", "entity_operators": {"PERSON": "hash"}}}
    )
    assert both.redaction.entity_operators == {"PERSON": "hash"}
    explicit = base().merged({"redaction": {"entity_operators": {"EMAIL_ADDRESS": "hash"}}})
    assert explicit.redaction.entity_operators == {"EMAIL_ADDRESS": "hash"}
    # A stored policy (every KB made before this default) loads exactly as stored.
    stored = {"enabled": True, "entities": None, "operator": "replace", "entity_operators": None}
    assert RedactionConfig.model_validate(stored).entity_operators is None
    kept = base().model_copy(update={"redaction": RedactionConfig.model_validate(stored)})
    assert kept.merged({"chunking": {"chunk_size": 100}}).redaction.entity_operators is None
