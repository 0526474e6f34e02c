"""question memory: confirmed pairs and gaps, how staff resolved a queue group

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.Column("query_id", sa.String(length=36), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("embedder", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.JSON(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=True),
        sa.Column("chunk_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("text_hash", sa.String(length=64), nullable=True),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("asker_groups", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("retrieved", sa.JSON(), nullable=False),
        sa.Column("asker_id", sa.String(length=128), nullable=False),
        sa.Column("confirmed_by", sa.String(length=128), nullable=False),
        sa.Column("staff", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("negatives", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("memory_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memory_entries_query_id"), ["query_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_memory_entries_document_id"), ["document_id"], unique=False
        )
        batch_op.create_index("ix_memory_entries_state", ["state", "updated_at"], unique=False)

    with op.batch_alter_table("query_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memory", sa.JSON(), nullable=True))

    with op.batch_alter_table("queue_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolution", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("linked_document_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("linked_chunk_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queue_groups", schema=None) as batch_op:
        batch_op.drop_column("linked_chunk_id")
        batch_op.drop_column("linked_document_id")
        batch_op.drop_column("resolution")
    with op.batch_alter_table("query_log", schema=None) as batch_op:
        batch_op.drop_column("memory")
    with op.batch_alter_table("memory_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_memory_entries_state")
        batch_op.drop_index(batch_op.f("ix_memory_entries_document_id"))
        batch_op.drop_index(batch_op.f("ix_memory_entries_query_id"))
    op.drop_table("memory_entries")
