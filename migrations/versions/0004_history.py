"""Ledger history: running totals on lines, reversal links, change records, list indexes.

Revision ID: 0004_history
Revises: 0001_core
"""
from alembic import op

revision = "0004_history"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # balance_after: the account's own balance in the line's currency right after this line,
    # in (posted, id) order. A balance at any time is then one index probe away. NULL while
    # an eventually consistent account's line waits for the rollup to number it.
    op.execute("ALTER TABLE lines ADD COLUMN balance_after numeric")
    op.execute(
        """
        UPDATE lines l SET balance_after = r.total
        FROM (SELECT id, sum(amount) OVER (PARTITION BY account_id, currency
                                           ORDER BY posted, id) AS total
              FROM lines) r
        WHERE l.id = r.id
        """)
    # Lines still waiting for their running total: small, since only the rollup's backlog
    # of eventually consistent lines is ever in it.
    op.execute(
        "CREATE INDEX lines_pending_total ON lines (account_id, currency, posted, id) "
        "WHERE balance_after IS NULL")
    # Newest-first pages of an account's lines in every currency, and of a whole ledger.
    op.execute("CREATE INDEX lines_account_time ON lines (account_id, posted, id)")
    op.execute("CREATE INDEX lines_ledger_posted ON lines (ledger_id, posted, id)")

    # A reversing entry points at the entry it reverses, and the reversed entry back at it.
    op.execute(
        """
        ALTER TABLE entries
            ADD COLUMN reverses_id bigint REFERENCES entries (id),
            ADD COLUMN reversed_by_id bigint REFERENCES entries (id),
            ADD COLUMN reversed_at timestamptz
        """)
    op.execute("CREATE UNIQUE INDEX entries_reverses ON entries (reverses_id) "
               "WHERE reverses_id IS NOT NULL")
    op.execute("CREATE INDEX entries_ledger_posted ON entries (ledger_id, posted, id)")
    op.execute("CREATE INDEX entries_groups ON entries USING gin (groups jsonb_path_ops)")

    op.execute(
        """
        CREATE TABLE entry_changes (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ledger_id     bigint NOT NULL REFERENCES ledgers (id),
            entry_id      bigint NOT NULL REFERENCES entries (id),
            changed       timestamptz NOT NULL,
            tags_before   jsonb NOT NULL,
            tags_after    jsonb NOT NULL,
            groups_before jsonb NOT NULL,
            groups_after  jsonb NOT NULL
        )
        """)
    op.execute("CREATE INDEX entry_changes_entry ON entry_changes (entry_id, id)")


def downgrade() -> None:
    op.execute("DROP TABLE entry_changes")
    op.execute("DROP INDEX entries_groups")
    op.execute("DROP INDEX entries_ledger_posted")
    op.execute("DROP INDEX entries_reverses")
    op.execute("ALTER TABLE entries DROP COLUMN reversed_at, DROP COLUMN reversed_by_id, "
               "DROP COLUMN reverses_id")
    op.execute("DROP INDEX lines_ledger_posted")
    op.execute("DROP INDEX lines_account_time")
    op.execute("DROP INDEX lines_pending_total")
    op.execute("ALTER TABLE lines DROP COLUMN balance_after")
