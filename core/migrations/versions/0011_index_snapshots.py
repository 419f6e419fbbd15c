"""index_snapshots: index versions exported as Qdrant shard snapshots, and their restores

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_snapshots",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "kb_id",
            sa.String(length=32),
            sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version_id", sa.String(length=32), nullable=True),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("blob_key", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("point_count", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=512), nullable=False),
        sa.Column("lexical", sa.Boolean(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("restored_into", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_index_snapshot_kb_created", "index_snapshots", ["kb_id", "created_at"])
    op.create_index("ix_index_snapshots_sha256", "index_snapshots", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_index_snapshots_sha256", table_name="index_snapshots")
    op.drop_index("ix_index_snapshot_kb_created", table_name="index_snapshots")
    op.drop_table("index_snapshots")
