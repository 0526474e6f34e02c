"""generated answers: faithfulness and fallback reason per answer, injection-like text flagged
per document

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("query_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("faithfulness", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("fallback_reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("flags")
    with op.batch_alter_table("query_log", schema=None) as batch_op:
        batch_op.drop_column("fallback_reason")
        batch_op.drop_column("faithfulness")
