"""balances.lines_until: no line of the (account, currency) is posted after it.

Lets the posting engine compute the running totals of lines posted at the end of an
account's history from the locked balance alone, without probing the lines index.
NULL means unknown (the rollup folded lines in): the next posting recomputes it.

Revision ID: 0006_lines_until
Revises: 0004_history
"""
from alembic import op

revision = "0006_lines_until"
down_revision = "0004_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE balances ADD COLUMN lines_until timestamptz")
    op.execute(
        """
        UPDATE balances b SET lines_until = coalesce(
            (SELECT max(x.posted) FROM lines x
             WHERE x.account_id = b.account_id AND x.currency = b.currency),
            TIMESTAMPTZ '0001-01-01 00:00:00+00')
        """)


def downgrade() -> None:
    op.execute("ALTER TABLE balances DROP COLUMN lines_until")
