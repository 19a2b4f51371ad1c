"""Drop the foreign keys the posting engine's own writes already guarantee.

``lines.entry_id``, ``lines.account_id``, ``entries.ledger_id`` and
``posting_jobs.ledger_id`` are written only by the engine and the outbox, from ids they
read or created in the same transaction, and nothing ever deletes a ledger, an account or
a posted entry (the ledger is append-only; the one ``DELETE FROM entries`` releases the
ik claims of refused entries, which have no lines). So these keys could never fire, yet
each inserted row paid a referential-integrity trigger: a query per row and a
``FOR KEY SHARE`` lock on the parent row, which on a hot account (every deposit's bank
line) turns into a multixact shared by all concurrent posters. Measured with
pg_stat_statements on batches of 1,000 deposits, the triggers were 45% of the time of
the lines INSERT and 20% of the entries INSERT.

Integrity is still checked: ``ledger.balances.orphans`` finds any line whose entry or
account is missing, and the tests' invariants call it.

Revision ID: 0007_engine_written_references
Revises: 0006_lines_until (and needs 0003_outbox, whose table it changes)
"""
from alembic import op

revision = "0007_engine_written_references"
down_revision = "0006_lines_until"
branch_labels = None
depends_on = ("0003_outbox",)

_DROPPED = (
    ("lines", "lines_entry_id_fkey", "entry_id", "entries"),
    ("lines", "lines_account_id_fkey", "account_id", "accounts"),
    ("entries", "entries_ledger_id_fkey", "ledger_id", "ledgers"),
    ("posting_jobs", "posting_jobs_ledger_id_fkey", "ledger_id", "ledgers"),
)


def upgrade() -> None:
    for table, name, _, _ in _DROPPED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    for table, name, column, parent in _DROPPED:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                   f"FOREIGN KEY ({column}) REFERENCES {parent} (id)")
