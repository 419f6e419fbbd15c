"""index version lifecycle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:38:59.761851
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_chunks_config_hash"), ["config_hash"], unique=False)

    with op.batch_alter_table("index_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("index_params", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(sa.Column("progress", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("stats", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("ready_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "uq_one_live_version",
            ["kb_id"],
            unique=True,
            sqlite_where=sa.text("status = 'live'"),
            postgresql_where=sa.text("status = 'live'"),
        )

    # Chunks written before this migration belong to their KB's first version.
    op.execute(
        "UPDATE chunks SET config_hash = (SELECT v.config_hash FROM index_versions v "
        "WHERE v.kb_id = chunks.kb_id AND v.number = 1) WHERE config_hash IS NULL"
    )
    # Ready versions built before this migration count as fully built.
    op.execute("UPDATE index_versions SET progress = 1 WHERE status IN ('ready', 'live')")


def downgrade() -> None:
    with op.batch_alter_table("index_versions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_one_live_version",
            sqlite_where=sa.text("status = 'live'"),
            postgresql_where=sa.text("status = 'live'"),
        )
        batch_op.drop_column("purged_at")
        batch_op.drop_column("retired_at")
        batch_op.drop_column("ready_at")
        batch_op.drop_column("job_id")
        batch_op.drop_column("error")
        batch_op.drop_column("stats")
        batch_op.drop_column("progress")
        batch_op.drop_column("index_params")

    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chunks_config_hash"))
        batch_op.drop_column("config_hash")
