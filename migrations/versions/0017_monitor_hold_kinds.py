"""monitor hold kinds: balance monitors also watch pending and available balances
(``ownPending``, ``ownAvailable``, ``childPending``, ... as ledger/monitors/model.py KINDS).

Revision ID: 0017_monitor_hold_kinds
Revises: 0016_monitor_ik
"""
from alembic import op

revision = "0017_monitor_hold_kinds"
down_revision = "0016_monitor_ik"
branch_labels = None
depends_on = None

_KINDS = ("own", "child", "total", "ownPending", "childPending", "totalPending",
          "ownAvailable", "childAvailable", "totalAvailable")


def upgrade() -> None:
    op.execute("ALTER TABLE balance_monitors DROP CONSTRAINT balance_monitors_balance_check")
    op.execute("ALTER TABLE balance_monitors ADD CONSTRAINT balance_monitors_balance_check "
               f"CHECK (balance IN ({', '.join(repr(k) for k in _KINDS)}))")


def downgrade() -> None:
    # The older schema cannot hold these monitors; the ledgers' counts follow their removal.
    op.execute("DELETE FROM balance_monitors WHERE balance NOT IN ('own', 'child', 'total')")
    op.execute("UPDATE ledgers g SET monitors = (SELECT count(*) FROM balance_monitors m "
               "WHERE m.ledger_id = g.id)")
    op.execute("ALTER TABLE balance_monitors DROP CONSTRAINT balance_monitors_balance_check")
    op.execute("ALTER TABLE balance_monitors ADD CONSTRAINT balance_monitors_balance_check "
               "CHECK (balance IN ('own', 'child', 'total'))")
