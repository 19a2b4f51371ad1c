"""Balance transactions synced as txs, and charges reconciled into entries."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.commands import EntryRequest
from ledger.db import Database
from ledger.errors import LedgerError
from ledger.ledgers import load_ledger
from ledger.reconcile.entries import reconcile_in
from ledger.reconcile.links import sync_accounts_in
from ledger.reconcile.model import Tx, TxInput
from ledger.reconcile.txs import sync_txs
from ledger.schema.store import load_schema
from ledger.stripe.api import stripe_api
from ledger.stripe.config import ensure_link
from ledger.stripe.model import (
    CHARGE_TYPES,
    FEE_SUFFIX,
    RECHECK_EVERY,
    Problem,
    StripeSettings,
    SyncReport,
    id_of,
    plain,
    ts,
)

log = logging.getLogger(__name__)


def _account_for(conn: Connection, link, currency: str):
    """The external account of the Stripe balance in ``currency``."""
    code = currency.upper()
    query = sa.select(t.external_accounts).where(
        t.external_accounts.c.link_id == link.id,
        t.external_accounts.c.external_id == f"balance-{code.lower()}")
    # Read first: creating it takes the account's row lock, which would serialize every
    # sync of this currency if taken each time.
    row = conn.execute(query).first()
    if row is None:
        sync_accounts_in(conn, link, [(f"balance-{code.lower()}", f"Stripe balance ({code})", code)])
        row = conn.execute(query).first()
    return row


def tx_external_id(bt: Any) -> str:
    """A charge's tx is named by the charge id (one charge, one balance transaction), so
    seed 000's ``reconcile_tx(..., external_ref=charge_id)`` and a webhook's charge find it;
    other balance transactions by their own id (a payout and its failure share a source)."""
    bt = plain(bt)
    source_id = id_of(bt.get("source"))
    if bt.get("type") in CHARGE_TYPES and source_id:
        return source_id
    return bt["id"]


class PlannedTx(NamedTuple):
    """A tx a balance transaction becomes (see ``planned_txs``)."""

    external_id: str
    description: str
    amount: int
    posted: datetime


def planned_txs(bt: Any) -> list[PlannedTx]:
    """The txs an available balance transaction becomes: its gross amount, and its fee (if
    any) as a separate negative tx ``<id>:fee``, so fees can be booked to an expense account."""
    bt = plain(bt)
    source_id = id_of(bt.get("source"))
    amount, fee = int(bt["amount"]), int(bt.get("fee") or 0)
    posted = ts(bt["created"])
    what = bt.get("description") or (f"{bt.get('type')} {source_id}" if source_id else bt.get("type"))
    ext = tx_external_id(bt)
    out = [PlannedTx(ext, what, amount, posted)]
    if fee:
        out.append(PlannedTx(ext + FEE_SUFFIX, f"Stripe fee: {what}", -fee, posted))
    return out


class PlannedEntry(NamedTuple):
    """An entry to reconcile a tx with: which of ``planned_txs`` (by index), the entry type
    and its parameters."""

    tx_index: int
    entry_type: str
    parameters: dict[str, str]


def planned_entries(settings: StripeSettings, bt: Any) -> tuple[list[PlannedEntry], list[str]]:
    """The entries that reconcile a synced balance transaction's txs, and the problems that
    leave some unreconciled (a charge lacking a mapped parameter is reported, never guessed)."""
    bt = plain(bt)
    source = bt.get("source")
    charge = source if isinstance(source, dict) else {}
    entries: list[PlannedEntry] = []
    problems: list[str] = []
    if bt.get("type") in CHARGE_TYPES and settings.charge_entry_type:
        params, missing = map_parameters(settings.parameters, bt, charge)
        if missing:
            problems.append(f"charge {id_of(source) or '?'} has no {', '.join(missing)}; "
                            f"left unreconciled (mapping: " +
                            ", ".join(f"{p} <- {settings.parameters[p]}" for p in missing) + ")")
        else:
            entries.append(PlannedEntry(0, settings.charge_entry_type, params))
    if int(bt.get("fee") or 0) and settings.fee_entry_type:
        params, _ = map_parameters(settings.parameters, bt, charge)
        entries.append(PlannedEntry(1, settings.fee_entry_type, params))
    return entries, problems


def _track(conn: Connection, settings: StripeSettings, bt: dict, now: datetime):
    """Record the balance transaction's latest state; returns the Stripe link's row."""
    link = ensure_link(conn, settings.link_id)
    values = dict(link_id=link.id, type=bt.get("type") or "unknown", status=bt.get("status") or "unknown",
                  source_id=id_of(bt.get("source")), currency=bt["currency"],
                  amount=int(bt["amount"]), fee=int(bt.get("fee") or 0),
                  created=ts(bt["created"]), available_on=ts(bt.get("available_on")),
                  checked=now)
    conn.execute(pg_insert(t.stripe_balance_txs).values(id=bt["id"], **values)
                 .on_conflict_do_update(index_elements=["id"], set_={
                     k: values[k] for k in ("status", "available_on", "checked", "source_id")}))
    return link


def _sync(conn: Connection, settings: StripeSettings, bt: dict, now: datetime) -> list[Tx]:
    link = _track(conn, settings, bt, now)
    account = _account_for(conn, link, bt["currency"])
    items = [TxInput(account.id, p.external_id, p.description, p.amount, p.posted)
             for p in planned_txs(bt)]
    txs = sync_txs(conn, link, items, field="balance_transaction")
    conn.execute(t.stripe_balance_txs.update().where(t.stripe_balance_txs.c.id == bt["id"])
                 .values(synced=sa.func.coalesce(t.stripe_balance_txs.c.synced, now)))
    return txs


def handle_balance_transaction(db: Database, settings: StripeSettings, bt: Any) -> SyncReport:
    """Track one balance transaction (a ``stripe.StripeObject`` or its plain data); once
    available, sync it as txs and reconcile it."""
    bt = plain(bt)
    report = SyncReport(listed=1)
    now = datetime.now(timezone.utc)
    if bt.get("status") != "available":
        db.run(lambda conn: _track(conn, settings, bt, now))
        report.pending = 1
        return report
    txs = db.run(lambda conn: _sync(conn, settings, bt, now))
    report.synced = 1
    if not settings.ledger_ik:
        return report
    entries, problems = planned_entries(settings, bt)
    for entry in entries:
        problems += _reconcile(db, settings, txs[entry.tx_index], entry.entry_type,
                               entry.parameters, report)
    _set_problem(db, bt["id"], "; ".join(problems) or None)
    source_id = id_of(bt.get("source"))
    for p in problems:
        log.warning("stripe balance transaction %s: %s", bt["id"], p)
        report.problems.append(Problem(bt["id"], source_id, p))
    return report


def _reconcile(db: Database, settings: StripeSettings, tx: Tx, entry_type: str,
               params: dict, report: SyncReport) -> list[str]:
    if tx.reconciled:
        report.already_reconciled += 1
        return []

    def run(conn: Connection):
        ledger = load_ledger(conn, settings.ledger_ik)
        # The mapping reads what a charge offers; each entry type takes only what it uses
        # (the fee's type may need no user), since unused parameters are refused.
        et = load_schema(conn, ledger.id).entry_types.get(entry_type)
        taken = {k: str(v) for k, v in params.items()
                 if et is None or k in et.params or k in et.rules}
        request = EntryRequest(ik="", type=entry_type, parameters=taken)
        return reconcile_in(conn, ledger, request, False, tx.external_id)
    try:
        result = db.run(run)
    except LedgerError as exc:
        if exc.retryable:
            raise
        return [f"tx {tx.external_id}: {exc.code}: {exc.message}"]
    if result.is_ik_replay:
        report.already_reconciled += 1
    else:
        report.reconciled += 1
    return []


def _set_problem(db: Database, txn_id: str, problem: str | None) -> None:
    with db.transaction() as conn:
        conn.execute(t.stripe_balance_txs.update().where(t.stripe_balance_txs.c.id == txn_id)
                     .values(problem=problem))


def map_parameters(mapping: dict[str, str], bt: dict, charge: dict) -> tuple[dict[str, str], list[str]]:
    """Entry parameters from the charge: ``{"user_id": "metadata.user_id"}`` reads the
    charge's metadata; a path may also start with ``charge.`` or ``balance_transaction.``.
    Returns (parameters found, names missing); a missing value is never filled in."""
    found, missing = {}, []
    for name, path in mapping.items():
        head, _, rest = path.partition(".")
        if head == "balance_transaction":
            value: Any = bt
        elif head in ("charge", "source"):
            value = charge
        else:
            value, rest = charge, path
        for part in rest.split(".") if rest else []:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            missing.append(name)
        else:
            found[name] = str(value)
    return found, missing


def recheck_pending(db: Database, settings: StripeSettings, client: Any = None,
                    due_only: bool = True, limit: int = 500) -> SyncReport:
    """Fetch pending balance transactions again; sync the ones that became available.
    ``client``: a ``StripeApi`` or ``stripe.StripeClient`` (None: one from the settings)."""
    api = stripe_api(settings, client)
    now = datetime.now(timezone.utc)
    with db.transaction() as conn:
        q = sa.select(t.stripe_balance_txs.c.id).join(t.links).where(
            t.links.c.public_id == settings.link_id, t.stripe_balance_txs.c.status == "pending")
        if due_only:
            q = q.where(sa.or_(t.stripe_balance_txs.c.available_on <= now,
                               t.stripe_balance_txs.c.checked < now - RECHECK_EVERY))
        ids = conn.execute(q.order_by(t.stripe_balance_txs.c.available_on).limit(limit)).scalars().all()
    report = SyncReport()
    for txn_id in ids:
        report.add(handle_balance_transaction(db, settings, api.balance_transaction(txn_id)))
    return report
