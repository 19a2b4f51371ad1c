"""Core ledger: schemas, ledgers, accounts, balances, entries, lines.

Revision ID: 0001_core
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schemas",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("created", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "schema_versions",
        sa.Column("schema_id", sa.BigInteger, sa.ForeignKey("schemas.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("json", JSONB, nullable=False),
        sa.Column("created", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "ledgers",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("ik", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("schema_id", sa.BigInteger, sa.ForeignKey("schemas.id"), nullable=False),
        sa.Column("balance_utc_offset", sa.Text, nullable=False, server_default="+00:00"),
        sa.Column("created", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id"), nullable=False),
        # "C" collation: prefix ranges over paths (descendants) use the plain byte order.
        sa.Column("path", sa.Text(collation="C"), nullable=False),
        sa.Column("chart_path", sa.Text(collation="C"), nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("consistency", sa.Text, nullable=False),
        sa.Column("created", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("ledger_id", "path", name="accounts_ledger_path_key"),
    )
    op.create_index("accounts_chart_path", "accounts", ["ledger_id", "chart_path"])
    op.create_table(
        "balances",
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("currency", sa.Text, primary_key=True),
        sa.Column("ledger_id", sa.BigInteger, nullable=False),
        sa.Column("own", sa.Numeric, nullable=False, server_default="0"),
    )
    op.create_table(
        "balance_deltas",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("ledger_id", sa.BigInteger, nullable=False),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id"), nullable=False),
        sa.Column("ik", sa.Text, nullable=False),
        sa.Column("ik_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("posted", TS, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("parameters", JSONB, nullable=False),
        sa.Column("tags", JSONB, nullable=False),
        sa.Column("groups", JSONB, nullable=False),
        sa.UniqueConstraint("ledger_id", "ik", "ik_version", name="entries_ledger_ik_key"),
    )
    op.create_table(
        "lines",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("ledger_id", sa.BigInteger, nullable=False),
        sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("entries.id"), nullable=False),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("posted", TS, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("tx_external_id", sa.Text),
    )
    op.create_index("lines_entry", "lines", ["entry_id"])
    op.create_index("lines_account_posted", "lines", ["account_id", "currency", "posted", "id"])


def downgrade() -> None:
    for table in ("lines", "entries", "balance_deltas", "balances", "accounts", "ledgers",
                  "schema_versions", "schemas"):
        op.drop_table(table)
