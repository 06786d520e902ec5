"""A job's streak of failed runs and the reason for its status.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "consecutive_failures", sa.Integer(), nullable=False, server_default="0"
            )
        )
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_finished", ["finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_finished")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("status_reason")
        batch.drop_column("consecutive_failures")
