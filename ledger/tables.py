"""The ledger's tables, for SQLAlchemy Core queries. Migrations in ``migrations/`` create
them; keep the two in step. Every table carries ``ledger_id`` where it can, so the
database can later be sharded by ledger without reshaping rows."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

schemas = sa.Table(
    "schemas", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

schema_versions = sa.Table(
    "schema_versions", metadata,
    sa.Column("schema_id", sa.BigInteger, sa.ForeignKey("schemas.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("json", JSONB, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

ledgers = sa.Table(
    "ledgers", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ik", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("schema_id", sa.BigInteger, sa.ForeignKey("schemas.id"), nullable=False),
    sa.Column("balance_utc_offset", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    # How many balance monitors the ledger has (0014_monitors): postings skip looking for
    # monitors of a ledger that has none.
    sa.Column("monitors", sa.Integer, nullable=False, server_default="0"),
)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id"), nullable=False),
    sa.Column("path", sa.Text(collation="C"), nullable=False),
    sa.Column("chart_path", sa.Text(collation="C"), nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("consistency", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("ledger_id", "path"),
)

balances = sa.Table(
    "balances", metadata,
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("own", sa.Numeric, nullable=False),
    # Every line of this (account, currency) is posted at or before it; NULL: unknown.
    sa.Column("lines_until", sa.DateTime(timezone=True)),
)

balance_deltas = sa.Table(
    "balance_deltas", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric, nullable=False),
    # When the delta was appended (migration 0009): the rollup's lag is the oldest's age.
    sa.Column("created", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

# entries.ledger_id, lines.entry_id and lines.account_id are references the engine keeps
# without foreign keys (migration 0007); ledger/audit.py checks them.
entries = sa.Table(
    "entries", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("ik", sa.Text, nullable=False),
    sa.Column("ik_version", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("posted", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("parameters", JSONB, nullable=False),
    sa.Column("tags", JSONB, nullable=False),
    sa.Column("groups", JSONB, nullable=False),
    sa.UniqueConstraint("ledger_id", "ik", "ik_version"),
)

lines = sa.Table(
    "lines", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("entry_id", sa.BigInteger, nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("posted", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("tx_external_id", sa.Text),
)

# ---------------------------------------------------------------- history (0004_history)

# The own balance of the line's account and currency right after the line, in (posted, id)
# order; NULL while the rollup has yet to number a line of an eventually consistent account.
lines.append_column(sa.Column("balance_after", sa.Numeric))
# A reversing entry names the entry it reverses; the reversed one names its reversal.
entries.append_column(sa.Column("reverses_id", sa.BigInteger, sa.ForeignKey("entries.id")))
entries.append_column(sa.Column("reversed_by_id", sa.BigInteger, sa.ForeignKey("entries.id")))
entries.append_column(sa.Column("reversed_at", sa.DateTime(timezone=True)))

entry_changes = sa.Table(
    "entry_changes", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id"), nullable=False),
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("entries.id"), nullable=False),
    sa.Column("changed", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tags_before", JSONB, nullable=False),
    sa.Column("tags_after", JSONB, nullable=False),
    sa.Column("groups_before", JSONB, nullable=False),
    sa.Column("groups_after", JSONB, nullable=False),
)


# ---------------------------------------------------------------- links and txs (ledger/reconcile.py)

links = sa.Table(
    "links", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("public_id", sa.Text, nullable=False, unique=True),
    sa.Column("ik", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

external_accounts = sa.Table(
    "external_accounts", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("link_id", sa.BigInteger, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("currency", sa.Text),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("link_id", "external_id", name="external_accounts_link_external_key"),
)

external_txs = sa.Table(
    "external_txs", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("link_id", sa.BigInteger, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("external_accounts.id"), nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("amount", sa.Numeric, nullable=False),
    sa.Column("posted", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted", sa.DateTime(timezone=True)),
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id")),
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("entries.id")),
    sa.Column("line_id", sa.BigInteger),
    sa.Column("reconciled", sa.DateTime(timezone=True)),
    # When tx.unreconciled_for was raised for it (migration 0015).
    sa.Column("unreconciled_alerted", sa.DateTime(timezone=True)),
)

linked_accounts = sa.Table(
    "linked_accounts", metadata,
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id"), primary_key=True),
    sa.Column("path", sa.Text(collation="C"), primary_key=True),
    sa.Column("external_account_id", sa.BigInteger, sa.ForeignKey("external_accounts.id"),
              nullable=False),
)

stripe_links = sa.Table(
    "stripe_links", metadata,
    sa.Column("link_id", sa.BigInteger, sa.ForeignKey("links.id"), primary_key=True),
    sa.Column("ledger_ik", sa.Text),
    sa.Column("charge_entry_type", sa.Text),
    sa.Column("fee_entry_type", sa.Text),
    sa.Column("parameters", JSONB, nullable=False),
    sa.Column("api_key", sa.Text),
    sa.Column("webhook_secret", sa.Text),
    sa.Column("backfill_since", sa.DateTime(timezone=True)),
    sa.Column("backfill_until", sa.DateTime(timezone=True)),
    sa.Column("backfill_starting_after", sa.Text),
    sa.Column("backfill_done_until", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
)

stripe_events = sa.Table(
    "stripe_events", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("received", sa.DateTime(timezone=True), nullable=False),
    sa.Column("processed", sa.DateTime(timezone=True)),
    sa.Column("error", sa.Text),
)

stripe_balance_txs = sa.Table(
    "stripe_balance_txs", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("link_id", sa.BigInteger, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("source_id", sa.Text),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric, nullable=False),
    sa.Column("fee", sa.Numeric, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("available_on", sa.DateTime(timezone=True)),
    sa.Column("checked", sa.DateTime(timezone=True), nullable=False),
    sa.Column("synced", sa.DateTime(timezone=True)),
    sa.Column("problem", sa.Text),
)

workspace = sa.Table(
    "workspace", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("singleton", sa.Boolean, nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("xid", sa.Text, nullable=False),  # xid8 in the database (migration 0012)
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id")),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", JSONB, nullable=False),
)

# ---------------------------------------------------------------- webhooks (ledger/events/)

webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("types", sa.ARRAY(sa.Text), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("secret", sa.Text, nullable=False),  # encrypted (ledger/secrets.py)
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("cursor", sa.Text, nullable=False),
    sa.Column("ledger_id", sa.BigInteger, sa.ForeignKey("ledgers.id")),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted", sa.DateTime(timezone=True)),
)

# ---------------------------------------------------------------- holds (0013_holds, ledger/holds/)

# What pending holds reserve of a balance: their decreases (<= 0) and their increases.
balances.append_column(sa.Column("held", sa.Numeric, nullable=False, server_default="0"))
balances.append_column(sa.Column("pending_in", sa.Numeric, nullable=False, server_default="0"))

holds = sa.Table(
    "holds", metadata,
    # No foreign keys on the engine-written hold rows (0018_holds_no_fkeys; ledger audit).
    sa.Column("entry_id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending, committed, voided, expired
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved", sa.DateTime(timezone=True)),
    sa.Column("captured", JSONB),  # what the commit asked for: its replays must match
)

hold_lines = sa.Table(
    "hold_lines", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger, nullable=False),
    sa.Column("entry_id", sa.BigInteger, nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("tx_external_id", sa.Text),
)
