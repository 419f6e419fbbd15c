"""answer_feedback.supporting_chunk_id: the chunk a reviewer names for a correction

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("answer_feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("supporting_chunk_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answer_feedback", schema=None) as batch_op:
        batch_op.drop_column("supporting_chunk_id")
