"""balance_deltas.created: when a delta was appended, so the rollup's lag can be measured
(/metrics ``ledger_rollup_lag_seconds``).

``now()`` is the appending transaction's start, stable within it, so adding the column
with it as default writes no row: existing deltas read the migration's time.

Revision ID: 0010_delta_created
Revises: 0009_workspace
"""
from alembic import op

revision = "0010_delta_created"
down_revision = "0009_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE balance_deltas ADD COLUMN created timestamptz NOT NULL DEFAULT now()")


def downgrade() -> None:
    op.execute("ALTER TABLE balance_deltas DROP COLUMN created")
