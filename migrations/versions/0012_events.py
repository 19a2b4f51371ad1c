"""events: what happened, written in the transaction of the change it reports, with the
writing transaction's id so the feed can be read without gaps (ledger/events/store.py).

Revision ID: 0012_events
Revises: 0011_job_trace_context
"""
from alembic import op

revision = "0012_events"
down_revision = "0011_job_trace_context"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE events (
            id bigserial PRIMARY KEY,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            ledger_id bigint REFERENCES ledgers (id),
            type text NOT NULL,
            created timestamptz NOT NULL DEFAULT now(),
            payload jsonb NOT NULL
        )""")
    # The feed walks (xid, id); per ledger too, for delivery in order per ledger.
    op.execute("CREATE INDEX events_feed ON events (xid, id)")
    op.execute("CREATE INDEX events_ledger_feed ON events (ledger_id, xid, id)")


def downgrade() -> None:
    op.execute("DROP TABLE events")
