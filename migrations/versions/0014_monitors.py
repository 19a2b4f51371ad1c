"""balance_monitors: conditions on an account's balance (or on the accounts a pattern
matches) that raise ``balance.crossed`` when a change makes them true or false
(ledger/monitors/).

Revision ID: 0014_monitors
Revises: 0013_holds
"""
from alembic import op

revision = "0014_monitors"
down_revision = "0013_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE balance_monitors (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ledger_id bigint NOT NULL REFERENCES ledgers (id),
            account text COLLATE "C" NOT NULL,
            balance text NOT NULL CHECK (balance IN ('own', 'child', 'total')),
            op text NOT NULL CHECK (op IN ('lt', 'lte', 'gt', 'gte', 'eq')),
            amount numeric NOT NULL,
            currency text,
            description text,
            created timestamptz NOT NULL DEFAULT now(),
            updated timestamptz NOT NULL DEFAULT now()
        )""")
    # The engine reads a ledger's monitors once per batch: one probe of this index.
    op.execute("CREATE INDEX balance_monitors_ledger ON balance_monitors (ledger_id, id)")
    # How many a ledger has, read with its schema by every posting (ledger/schema/store.py),
    # so that the engine asks for the monitors of a ledger that has some only.
    op.execute("ALTER TABLE ledgers ADD COLUMN monitors integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE ledgers DROP COLUMN monitors")
    op.execute("DROP TABLE balance_monitors")
