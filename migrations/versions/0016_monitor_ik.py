"""monitor ik: createBalanceMonitor takes an optional idempotency key; the same ik with the
same input replays the monitor, with another input it is refused (ik_conflict).

Revision ID: 0016_monitor_ik
Revises: 0015_webhooks
"""
from alembic import op

revision = "0016_monitor_ik"
down_revision = "0015_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ik_input: the normalised create input, compared on a replay (an update later changes
    # the monitor, not what its ik was created with).
    op.execute("ALTER TABLE balance_monitors ADD COLUMN ik text, ADD COLUMN ik_input text")
    op.execute("CREATE UNIQUE INDEX balance_monitors_ledger_ik ON balance_monitors "
               "(ledger_id, ik) WHERE ik IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX balance_monitors_ledger_ik")
    op.execute("ALTER TABLE balance_monitors DROP COLUMN ik, DROP COLUMN ik_input")
