"""Links, external accounts and their synced transactions (txs); Stripe link settings,
webhook inbox and balance-transaction tracking.

Revision ID: 0005_links
Revises: 0001_core
"""
from alembic import op

revision = "0005_links"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE links (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            public_id  text NOT NULL UNIQUE,
            ik         text NOT NULL UNIQUE,
            name       text NOT NULL,
            kind       text NOT NULL CHECK (kind IN ('custom', 'stripe')),
            created    timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE external_accounts (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            link_id      bigint NOT NULL REFERENCES links (id),
            external_id  text NOT NULL,
            name         text,
            currency     text,
            created      timestamptz NOT NULL DEFAULT now(),
            updated      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT external_accounts_link_external_key UNIQUE (link_id, external_id)
        );

        -- A deleted tx keeps its row (and history) but frees its externalId: syncing it
        -- again inserts a new tx, hence the partial unique index.
        CREATE TABLE external_txs (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            link_id      bigint NOT NULL REFERENCES links (id),
            account_id   bigint NOT NULL REFERENCES external_accounts (id),
            external_id  text NOT NULL,
            description  text,
            amount       numeric NOT NULL,
            posted       timestamptz NOT NULL,
            created      timestamptz NOT NULL DEFAULT now(),
            updated      timestamptz NOT NULL DEFAULT now(),
            deleted      timestamptz,
            ledger_id    bigint REFERENCES ledgers (id),
            entry_id     bigint REFERENCES entries (id),
            line_id      bigint,
            reconciled   timestamptz
        );
        CREATE UNIQUE INDEX external_txs_live_key ON external_txs (account_id, external_id)
            WHERE deleted IS NULL;
        CREATE INDEX external_txs_unreconciled ON external_txs (account_id, id)
            WHERE entry_id IS NULL AND deleted IS NULL;
        CREATE INDEX external_txs_entry ON external_txs (entry_id) WHERE entry_id IS NOT NULL;

        -- Which external account a ledger account mirrors, recorded at reconciliation:
        -- template linked accounts take their link from entry parameters, so the path
        -- alone cannot tell.
        CREATE TABLE linked_accounts (
            ledger_id            bigint NOT NULL REFERENCES ledgers (id),
            path                 text COLLATE "C" NOT NULL,
            external_account_id  bigint NOT NULL REFERENCES external_accounts (id),
            PRIMARY KEY (ledger_id, path)
        );

        CREATE TABLE stripe_links (
            link_id             bigint PRIMARY KEY REFERENCES links (id),
            ledger_ik           text,
            charge_entry_type   text,
            fee_entry_type      text,
            parameters          jsonb NOT NULL DEFAULT '{}'::jsonb,
            api_key             text,
            webhook_secret      text,
            -- Backfill cursor: the window being listed and the last object id done in it,
            -- and how far (in `created` time) every earlier window is complete.
            backfill_since          timestamptz,
            backfill_until          timestamptz,
            backfill_starting_after text,
            backfill_done_until     timestamptz,
            updated             timestamptz NOT NULL DEFAULT now()
        );

        -- The webhook inbox: one row per Stripe event id, however often it is delivered.
        CREATE TABLE stripe_events (
            id         text PRIMARY KEY,
            type       text NOT NULL,
            payload    jsonb NOT NULL,
            received   timestamptz NOT NULL DEFAULT now(),
            processed  timestamptz,
            error      text
        );
        CREATE INDEX stripe_events_unprocessed ON stripe_events (received) WHERE processed IS NULL;

        -- Every balance transaction seen: pending ones wait here until they settle, and a
        -- settled one that could not be reconciled keeps the reason (the report).
        CREATE TABLE stripe_balance_txs (
            id            text PRIMARY KEY,
            link_id       bigint NOT NULL REFERENCES links (id),
            type          text NOT NULL,
            status        text NOT NULL,
            source_id     text,
            currency      text NOT NULL,
            amount        numeric NOT NULL,
            fee           numeric NOT NULL,
            created       timestamptz NOT NULL,
            available_on  timestamptz,
            checked       timestamptz NOT NULL DEFAULT now(),
            synced        timestamptz,
            problem       text
        );
        CREATE INDEX stripe_balance_txs_pending ON stripe_balance_txs (available_on)
            WHERE status = 'pending';
        CREATE INDEX stripe_balance_txs_problem ON stripe_balance_txs (checked)
            WHERE problem IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE stripe_balance_txs, stripe_events, stripe_links, linked_accounts, "
        "external_txs, external_accounts, links"
    )
