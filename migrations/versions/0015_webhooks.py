"""webhooks: endpoints with their delivery cursor over the event feed, a log of every
delivery attempt, and the mark that a synced tx was reported unreconciled
(ledger/events/webhooks.py, ledger/events/delivery.py, ledger/events/alerts.py).

Revision ID: 0015_webhooks
Revises: 0014_monitors (and needs 0005_links)
"""
from alembic import op

revision = "0015_webhooks"
down_revision = "0014_monitors"
branch_labels = None
# external_txs comes from 0005_links, a branch of its own.
depends_on = ("0005_links",)


def upgrade() -> None:
    # ledger_id: only that ledger's events (NULL: every event); cursor: the feed position (ledger/events/store.py) after the last event delivered,
    # or passed over as not subscribed; failures: attempts failed in a row.
    op.execute("""
        CREATE TABLE webhook_endpoints (
            id bigserial PRIMARY KEY,
            url text NOT NULL,
            types text[] NOT NULL,
            description text,
            secret text NOT NULL,
            enabled boolean NOT NULL DEFAULT true,
            disabled_reason text,
            cursor text NOT NULL,
            ledger_id bigint REFERENCES ledgers (id),
            failures integer NOT NULL DEFAULT 0,
            next_attempt timestamptz NOT NULL DEFAULT now(),
            created timestamptz NOT NULL DEFAULT now(),
            deleted timestamptz
        )""")
    op.execute("CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt) "
               "WHERE enabled AND deleted IS NULL")
    op.execute("""
        CREATE TABLE webhook_deliveries (
            id bigserial PRIMARY KEY,
            endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id),
            event_id bigint NOT NULL REFERENCES events (id),
            attempt integer NOT NULL,
            manual boolean NOT NULL DEFAULT false,
            ok boolean NOT NULL,
            status integer,
            latency_ms integer NOT NULL,
            response text,
            error text,
            created timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries "
               "(endpoint_id, id)")
    # tx.unreconciled_for is raised once per tx: beat's sweep finds the unmarked ones.
    op.execute("ALTER TABLE external_txs ADD COLUMN unreconciled_alerted timestamptz")
    op.execute("CREATE INDEX external_txs_unreconciled_alert ON external_txs (created) "
               "WHERE entry_id IS NULL AND deleted IS NULL AND unreconciled_alerted IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX external_txs_unreconciled_alert")
    op.execute("ALTER TABLE external_txs DROP COLUMN unreconciled_alerted")
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
