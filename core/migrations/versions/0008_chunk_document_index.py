"""chunks: index on (document_id, config_hash), the lookup every ingest makes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:30:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunk_document", "chunks", ["document_id", "config_hash"])


def downgrade() -> None:
    op.drop_index("ix_chunk_document", table_name="chunks")
