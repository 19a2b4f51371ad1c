"""Holds without foreign keys: the rows of a batch of holds are written by the engine alone,
from the entries and accounts it has just claimed or created, and nothing deletes those.
Their per-row triggers made a batch of holds a quarter slower than the same batch posted
(bench/post.py --compare-holds), and the key on ``hold_lines.account_id`` took a share lock
on a hot account's row for every hold. As for lines and entries (0007_engine_written_references),
``ledger audit`` checks the same references instead (``hold_without_entry``,
``hold_line_without_hold``, ``hold_line_without_account``).

Revision ID: 0018_holds_no_fkeys
Revises: 0017_monitor_hold_kinds
"""
from __future__ import annotations

from alembic import op

revision = "0018_holds_no_fkeys"
down_revision = "0017_monitor_hold_kinds"
branch_labels = None
depends_on = None

_KEYS = [
    ("holds", "holds_entry_id_fkey", "entry_id", "entries(id)"),
    ("holds", "holds_ledger_id_fkey", "ledger_id", "ledgers(id)"),
    ("hold_lines", "hold_lines_entry_id_fkey", "entry_id", "holds(entry_id)"),
    ("hold_lines", "hold_lines_account_id_fkey", "account_id", "accounts(id)"),
]


def upgrade() -> None:
    for table, name, _, _ in _KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    for table, name, column, target in _KEYS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                   f"REFERENCES {target}")
