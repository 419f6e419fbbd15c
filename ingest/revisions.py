"""What the ingestion jobs share about one document revision: its reference, the chunk
ids, the chunk rows in the catalog, the index payloads and the first index version.

Chunk ids do not depend on the revision. A chunk is identified by its document, the
pipeline config that made it, its text and what its index payload says about it (page,
section, language, the document's filename and metadata), so an edited document keeps
the ids, rows and vectors of every chunk whose text did not change: only new text is
embedded and only new vectors are written (see `save_chunks` and `ingest.stream`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
    utcnow,
)
from core.errors import StageFailed
from core.jobs import PermanentJobError
from core.types import Piece, sha256_hex
from index.versions import active_versions, new_index_params
from ingest.config import IngestionConfig
from ingest.pipeline import IngestPipeline, PipelineResult, build_pipeline

if TYPE_CHECKING:
    from ingest.services import IngestServices


@dataclass
class RevisionRef:
    kb_id: str
    document_id: str
    revision_id: str
    filename: str
    media_type: str
    sha: str
    metadata: dict[str, Any]

    def base_payload(self) -> dict[str, Any]:
        """The document-level part of every chunk's index payload."""
        base = {k: v for k, v in self.metadata.items() if isinstance(v, str | int | float | bool)}
        return {**base, "document_id": self.document_id, "filename": self.filename}


class Superseded(Exception):
    """The revision stopped being its document's current one while it was ingested."""


def pipeline_for(rt: IngestServices, config: IngestionConfig) -> IngestPipeline:
    return build_pipeline(
        config,
        embedder=rt.embedder(config.embedding_model),
        cache=rt.embedding_cache,
        redactor_factory=rt.redactor,
        parser=rt.parser(),
    )


def payloads_for(ref: RevisionRef, chunks: list[Piece]) -> list[dict[str, Any]]:
    base = {**ref.base_payload(), "revision_id": ref.revision_id}
    return [
        {
            **base,
            "page_number": p.metadata.get("page_number"),
            "section": p.metadata.get("section"),
            "language": p.metadata.get("language"),
        }
        for p in chunks
    ]


def prepared_chunks(
    rt: IngestServices, pipeline: IngestPipeline, ref: RevisionRef
) -> PipelineResult:
    """The revision's raw bytes through every stage but embedding, with chunk ids.

    Raises PermanentJobError when the bytes are gone from the blob store, StageFailed
    when no text is left to index (and whatever the stages raise)."""
    try:
        data = rt.blobs.get(ref.sha)
    except FileNotFoundError as exc:
        raise PermanentJobError(
            f"raw bytes of {ref.filename!r} are missing from the blob store"
        ) from exc
    result = pipeline.prepare(data, media_type=ref.media_type, filename=ref.filename)
    if not result.chunks:
        raise StageFailed(
            "chunk", "no text left to index after cleaning and redaction", document=ref.filename
        )
    assign_chunk_ids(ref, result.chunks, pipeline.config_hash)
    return result


def assign_chunk_ids(ref: RevisionRef, chunks: list[Piece], config_hash: str) -> None:
    """Give each chunk its revision-independent id (see the module docstring). The
    revision id in a payload is left out of the key: it names the revision that wrote the
    vector, which an unchanged chunk keeps. Repeated identical chunks are told apart by
    their occurrence number."""
    document = json.dumps(ref.base_payload(), sort_keys=True, default=str)
    seen: dict[str, int] = {}
    for piece in chunks:
        where = json.dumps(
            [piece.metadata.get(k) for k in ("page_number", "section", "language")],
            default=str,
        )
        key = f"{piece.text_hash}:{where}"
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        piece.id = sha256_hex(
            f"{ref.kb_id}:{ref.document_id}:{config_hash}:{document}:{key}:{occurrence}"
        )[:32]


@dataclass
class SavedChunks:
    """What `save_chunks` changed: ids new to the document, ids it already had (their
    vectors are in the index unless a version missed them), ids it no longer has."""

    new: list[str]
    kept: list[str]
    gone: list[str]


def lock_current(s: Session, refs: list[RevisionRef]) -> dict[str, str | None]:
    """Each document's current revision id (None: the document is gone), with the rows
    locked until the caller's transaction ends (PostgreSQL; SQLite serialises writers),
    so a newer upload cannot slip between this check and the caller's writes."""
    rows = s.execute(
        select(Document.id, Document.current_revision_id)
        .where(Document.id.in_({r.document_id for r in refs}))
        .with_for_update()
    ).all()
    found = {doc_id: current for doc_id, current in rows}
    return {r.document_id: found.get(r.document_id) for r in refs}


def check_current(s: Session, ref: RevisionRef) -> None:
    """Raises Superseded when `ref` is no longer its document's current revision (a newer
    revision owns the chunk rows now), PermanentJobError when the document is gone."""
    current = lock_current(s, [ref])[ref.document_id]
    if current is None:
        raise PermanentJobError(f"{ref.filename!r} was deleted while it was being ingested")
    if current != ref.revision_id:
        raise Superseded(ref.revision_id)


def save_chunks(s: Session, ref: RevisionRef, chunks: list[Piece], config_hash: str) -> SavedChunks:
    """Make the catalog's chunk rows of `ref`'s document (for this config) the given
    chunks, inside the caller's transaction: unchanged chunks move to this revision,
    new ones are added. Rows the document no longer has stay (their vectors leave the
    index first); the job that finishes the revision deletes them. The caller has made
    sure `ref` is current (`check_current` / `lock_current`) in the same transaction."""
    rows = {
        row.id: row
        for row in s.execute(
            select(Chunk).where(
                Chunk.document_id == ref.document_id, Chunk.config_hash == config_hash
            )
        ).scalars()
    }
    ids = {p.id for p in chunks}
    # Rows of this revision it no longer yields (a forced re-run) go now: nothing else
    # would delete them.
    dropped = [i for i, row in rows.items() if i not in ids and row.revision_id == ref.revision_id]
    if dropped:
        s.execute(delete(Chunk).where(Chunk.id.in_(dropped)))
    new: list[str] = []
    kept: list[str] = []
    for p in chunks:
        assert p.id is not None
        row = rows.get(p.id)
        if row is None:
            new.append(p.id)
            s.add(
                Chunk(
                    id=p.id,
                    kb_id=ref.kb_id,
                    document_id=ref.document_id,
                    revision_id=ref.revision_id,
                    position=p.metadata["position"],
                    text=p.text,
                    text_hash=p.text_hash,
                    token_count=p.token_count or 0,
                    metadata_=p.metadata,
                    config_hash=config_hash,
                )
            )
        else:
            kept.append(p.id)
            row.revision_id = ref.revision_id
            row.position = p.metadata["position"]
            row.metadata_ = p.metadata
            row.token_count = p.token_count or 0
    return SavedChunks(new=new, kept=kept, gone=sorted(set(rows) - ids))


def stored_chunks(s: Session, ref: RevisionRef, config_hash: str) -> list[Piece]:
    """The chunks this config already made for this revision, in order (vectors not
    attached: they come from the embedding cache)."""
    rows = s.execute(
        select(Chunk)
        .where(Chunk.revision_id == ref.revision_id, Chunk.config_hash == config_hash)
        .order_by(Chunk.position)
    ).scalars()
    return [
        Piece(text=r.text, metadata=dict(r.metadata_), id=r.id, token_count=r.token_count)
        for r in rows
    ]


def document_language(chunks: list[Piece]) -> str | None:
    """The language most of the document's text is in (by characters)."""
    weights: dict[str, int] = {}
    for p in chunks:
        lang = p.metadata.get("language")
        if lang:
            weights[lang] = weights.get(lang, 0) + len(p.text)
    return max(weights, key=weights.__getitem__) if weights else None


def current_revisions(rt: IngestServices, refs: list[RevisionRef]) -> set[str]:
    """The revision ids among `refs` that are still their document's current one."""
    if not refs:
        return set()
    with rt.db.session() as s:
        rows = s.execute(
            select(Document.current_revision_id).where(
                Document.id.in_({r.document_id for r in refs})
            )
        ).scalars()
        current = set(rows)
    return {r.revision_id for r in refs if r.revision_id in current}


def ensure_versions(
    rt: IngestServices, kb: KnowledgeBase, config: IngestionConfig, pipeline: IngestPipeline
) -> list[IndexVersion]:
    """The KB's active versions; the first upload creates version 1 and makes it live."""
    for _ in range(3):
        with rt.db.session() as s:
            versions = active_versions(session=s, kb_id=kb.id)
        if versions:
            return versions
        embedder = rt.embedder(config.embedding_model)
        params = new_index_params(rt.settings, rt.settings.index_backend)
        try:
            with rt.db.session() as s:
                version = IndexVersion(
                    kb_id=kb.id,
                    number=1,
                    status=VersionStatus.LIVE,
                    backend=rt.settings.index_backend,
                    embedding_model=config.embedding_model,
                    dimension=embedder.dimension,
                    config=config.model_dump(),
                    config_hash=pipeline.config_hash,
                    index_params=params,
                    progress=1.0,
                    ready_at=utcnow(),
                    promoted_at=utcnow(),
                )
                s.add(version)
            return [version]
        except IntegrityError:
            continue  # another worker created it first
    raise RuntimeError(f"could not create the first index version of {kb.name!r}")


def set_status(rt: IngestServices, revision_ids: list[str], status: str, **values: Any) -> None:
    if not revision_ids:
        return
    with rt.db.session() as s:
        s.execute(
            update(DocumentRevision)
            .where(DocumentRevision.id.in_(revision_ids))
            .values(status=status, **values)
        )
