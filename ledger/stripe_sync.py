"""The Stripe link: Stripe balance transactions synced as txs and charges reconciled.

Stripe moves money in *balance transactions* (``txn_...``): a charge's gross amount and its
fee arrive in one of them, pending at first and available on ``available_on``. We sync each
available one as txs of the Stripe link's external account for its currency: the gross
amount as one tx (named by the charge id for a charge, else by the balance transaction id)
and the fee as a separate negative tx ``<id>:fee``, so fees can be booked to an expense
account. We reconcile a charge's gross tx into the
configured entry type with parameters read from the charge (``user_id`` from
``metadata.user_id``). A charge whose metadata lacks a parameter stays unreconciled and is
reported, never guessed.

Two paths deliver the same balance transactions: webhooks (stored in an inbox, then
processed) and backfills that list a ``created`` window. Both end in ``sync_txs`` (a tx
synced twice is a no-op) and ``reconcile_in`` (the tx row is locked and the ik is the tx id),
so a charge is posted once whichever path comes first, or both at once.

The API key and webhook signing secret come from ``STRIPE_API_KEY`` /
``STRIPE_WEBHOOK_SECRET`` or from the database (``configure_stripe``); they are held in
``Secret`` so that no repr, log line or error message shows them.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
import stripe
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import posting, reconcile
from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError, InternalError, LedgerError, NotFoundError
from ledger.model import EntryRequest
from ledger.ledgers import load_ledger

log = logging.getLogger(__name__)

DEFAULT_LINK_ID = "stripe"
PAGE_LIMIT = 100  # Stripe's maximum page size
WEBHOOK_TOLERANCE_SECONDS = 300
TRAILING_WINDOW = timedelta(days=3)
# A trailing backfill starts this far before the end of the last complete one, so objects
# created while it ran (and committed late at Stripe) are listed again.
OVERLAP = timedelta(hours=1)
# Pending balance transactions are re-checked when due, and at least this often.
RECHECK_EVERY = timedelta(hours=6)
CHARGE_TYPES = ("charge", "payment")
FEE_SUFFIX = ":fee"
DEFAULT_PARAMETERS = {"user_id": "metadata.user_id"}


class Secret:
    """A credential that never shows itself: ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass
class StripeSettings:
    link_id: str
    ledger_ik: str | None
    charge_entry_type: str | None
    fee_entry_type: str | None
    parameters: dict[str, str]
    api_key: Secret | None
    webhook_secret: Secret | None
    done_until: datetime | None = None
    api_base: str | None = None


@dataclass
class Problem:
    balance_transaction: str
    source: str | None
    reason: str


@dataclass
class SyncReport:
    """What a sync did: balance transactions seen, still pending, synced as txs, charges
    reconciled (or found reconciled already), and the ones left unreconciled, with why."""

    listed: int = 0
    pending: int = 0
    synced: int = 0
    reconciled: int = 0
    already_reconciled: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, other: "SyncReport") -> "SyncReport":
        self.listed += other.listed
        self.pending += other.pending
        self.synced += other.synced
        self.reconciled += other.reconciled
        self.already_reconciled += other.already_reconciled
        self.problems += other.problems
        return self


def default_link_id() -> str:
    return os.environ.get("STRIPE_LINK_ID") or DEFAULT_LINK_ID


# ---------------------------------------------------------------------------- settings

def _ensure_link(conn: Connection, link_id: str):
    link = conn.execute(sa.select(t.links).where(t.links.c.public_id == link_id)).first()
    if link is None:
        reconcile._create_link(conn, link_id, "Stripe", link_id, "stripe")
        link = conn.execute(sa.select(t.links).where(t.links.c.public_id == link_id)).first()
    if link.kind != "stripe":
        raise BadRequestError("invalid_input", f"link {link_id!r} is a {link.kind} link, not a Stripe link", field="link")
    conn.execute(pg_insert(t.stripe_links).values(
        link_id=link.id, parameters=DEFAULT_PARAMETERS, updated=datetime.now(timezone.utc))
        .on_conflict_do_nothing())
    return link


def configure_stripe(db: Database, *, link_id: str | None = None, ledger_ik: str | None = None,
                     charge_entry_type: str | None = None, fee_entry_type: str | None = None,
                     parameters: dict[str, str] | None = None, api_key: str | None = None,
                     webhook_secret: str | None = None) -> StripeSettings:
    """Create or update the Stripe link's settings; arguments left None stay as they are
    (an empty entry type clears it)."""
    link_id = link_id or default_link_id()
    if parameters is not None:
        if not isinstance(parameters, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in parameters.items()):
            raise BadRequestError("invalid_input", "parameters: expected {\"user_id\": \"metadata.user_id\", ...}", field="parameters")
    for name, value in (("api_key", api_key), ("webhook_secret", webhook_secret)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadRequestError("invalid_input", f"{name}: expected a non-empty string", field=name)

    def run(conn: Connection) -> None:
        link = _ensure_link(conn, link_id)
        row = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)
                           .with_for_update()).first()
        ledger = ledger_ik if ledger_ik is not None else row.ledger_ik
        for etype in (charge_entry_type, fee_entry_type):
            if etype and ledger is not None:
                schema = posting.load_schema(conn, load_ledger(conn, ledger).id)
                if etype not in schema.entry_types:
                    raise BadRequestError("entry_type_not_found", f"no entry type {etype!r} in the schema of ledger {ledger!r}", field="entry_type")
        values = {k: v for k, v in {
            "ledger_ik": ledger_ik, "charge_entry_type": charge_entry_type,
            "fee_entry_type": fee_entry_type, "parameters": parameters, "api_key": api_key,
            "webhook_secret": webhook_secret}.items() if v is not None}
        # An empty entry type turns that reconciliation off (txs are still synced).
        for name in ("charge_entry_type", "fee_entry_type"):
            if values.get(name) == "":
                values[name] = None
        conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link.id)
                     .values(updated=datetime.now(timezone.utc), **values))

    db.run(run)
    return load_settings(db, link_id)


def load_settings(db: Database, link_id: str | None = None) -> StripeSettings:
    """The Stripe link's settings; the environment's key and secret win over stored ones."""
    link_id = link_id or default_link_id()
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.stripe_links).join(t.links).where(
            t.links.c.public_id == link_id)).first()
    env_key, env_secret = os.environ.get("STRIPE_API_KEY"), os.environ.get("STRIPE_WEBHOOK_SECRET")
    api_key = env_key or (row.api_key if row is not None else None)
    secret = env_secret or (row.webhook_secret if row is not None else None)
    return StripeSettings(
        link_id=link_id,
        ledger_ik=row.ledger_ik if row is not None else None,
        charge_entry_type=row.charge_entry_type if row is not None else None,
        fee_entry_type=row.fee_entry_type if row is not None else None,
        parameters=dict(row.parameters) if row is not None else dict(DEFAULT_PARAMETERS),
        api_key=Secret(api_key) if api_key else None,
        webhook_secret=Secret(secret) if secret else None,
        done_until=row.backfill_done_until if row is not None else None,
        api_base=os.environ.get("STRIPE_API_BASE") or None)


def client_for(settings: StripeSettings, api_base: str | None = None) -> stripe.StripeClient:
    if not settings.api_key:
        raise InternalError("stripe_not_configured", "no Stripe API key: set STRIPE_API_KEY or run `ledger stripe configure --api-key`", retryable=False)
    base = api_base or settings.api_base
    return stripe.StripeClient(settings.api_key.reveal(), max_network_retries=2,
                               **({"base_addresses": {"api": base}} if base else {}))


# ---------------------------------------------------------------------------- webhooks

def verify_event(payload: bytes, signature: str | None, secret: Secret | str | None,
                 tolerance: int = WEBHOOK_TOLERANCE_SECONDS) -> dict:
    """The event of a webhook whose signature verifies on the raw body, else BadRequestError."""
    if not secret:
        raise InternalError("stripe_not_configured", "no Stripe webhook signing secret: set STRIPE_WEBHOOK_SECRET or run `ledger stripe configure --webhook-secret`")
    value = secret.reveal() if isinstance(secret, Secret) else secret
    try:
        stripe.Webhook.construct_event(payload, signature, value, tolerance=tolerance)
    except stripe.SignatureVerificationError:
        raise BadRequestError("invalid_signature", "the Stripe-Signature header does not verify for this body (wrong secret, altered body, or older than the tolerance)", field="Stripe-Signature") from None
    except ValueError:
        raise BadRequestError("invalid_input", "the webhook body is not JSON", field="body") from None
    event = json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) \
            or not isinstance(event.get("type"), str):
        raise BadRequestError("invalid_input", "the webhook body is not a Stripe event", field="body")
    return event


def store_event(db: Database, event: dict) -> bool:
    """Put an event in the inbox; False when its id is there already (a redelivery)."""
    def run(conn: Connection) -> bool:
        return conn.execute(pg_insert(t.stripe_events).values(
            id=event["id"], type=event["type"], payload=event,
            received=datetime.now(timezone.utc)).on_conflict_do_nothing()
            .returning(t.stripe_events.c.id)).first() is not None
    return db.run(run)


def process_event(db: Database, event_id: str, client: stripe.StripeClient | None = None,
                  link_id: str | None = None) -> SyncReport:
    """Act on one inbox event: fetch the balance transaction it concerns from the API (the
    event may be stale or reordered) and sync it. Processing twice is harmless."""
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.stripe_events).where(t.stripe_events.c.id == event_id)).first()
    if row is None:
        raise NotFoundError("event_not_found", f"no Stripe event {event_id!r} in the inbox")
    report = SyncReport()
    if row.processed is not None:
        return report
    settings = load_settings(db, link_id)
    try:
        client = client or client_for(settings)
        obj = (row.payload.get("data") or {}).get("object") or {}
        kind = obj.get("object")
        txn_id = None
        if kind == "charge":
            txn_id = _id_of(obj.get("balance_transaction"))
            if txn_id is None and obj.get("id"):
                txn_id = _id_of(client.v1.charges.retrieve(obj["id"]).get("balance_transaction"))
        elif kind == "payment_intent" and obj.get("latest_charge"):
            charge = client.v1.charges.retrieve(_id_of(obj["latest_charge"]))
            txn_id = _id_of(charge.get("balance_transaction"))
        elif kind == "balance_transaction":
            txn_id = obj.get("id")
        elif row.type == "balance.available":
            report.add(recheck_pending(db, client, settings, due_only=False))
        if txn_id:
            bt = client.v1.balance_transactions.retrieve(txn_id, params={"expand": ["source"]})
            report.add(handle_balance_transaction(db, settings, bt.to_dict()))
    except Exception as exc:
        message = exc.message if isinstance(exc, LedgerError) else type(exc).__name__
        with db.transaction() as conn:
            conn.execute(t.stripe_events.update().where(t.stripe_events.c.id == event_id)
                         .values(error=message[:500]))
        raise
    with db.transaction() as conn:
        conn.execute(t.stripe_events.update().where(t.stripe_events.c.id == event_id)
                     .values(processed=datetime.now(timezone.utc), error=None))
    return report


def process_inbox(db: Database, client: stripe.StripeClient | None = None,
                  older_than: timedelta = timedelta(seconds=60), limit: int = 100,
                  link_id: str | None = None) -> SyncReport:
    """Process events whose task never ran (broker down when the webhook came, lost
    message): the inbox, not the queue, is what guarantees an accepted event is acted on."""
    with db.transaction() as conn:
        ids = conn.execute(sa.select(t.stripe_events.c.id).where(
            t.stripe_events.c.processed.is_(None),
            t.stripe_events.c.received < datetime.now(timezone.utc) - older_than)
            .order_by(t.stripe_events.c.received).limit(limit)).scalars().all()
    report = SyncReport()
    for event_id in ids:
        try:
            report.add(process_event(db, event_id, client, link_id))
        except Exception:
            log.warning("stripe event %s failed; it stays in the inbox", event_id, exc_info=True)
    return report


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------- syncing

def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=timezone.utc) if value is not None else None


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
        reconcile._sync_accounts(conn, link, [(f"balance-{code.lower()}", f"Stripe balance ({code})", code)])
        row = conn.execute(query).first()
    return row


def tx_external_id(bt: dict) -> str:
    """A charge's tx is named by the charge id (one charge, one balance transaction), so
    seed 000's ``reconcile_tx(..., external_ref=charge_id)`` and a webhook's charge find it;
    other balance transactions by their own id (a payout and its failure share a source)."""
    source_id = _id_of(bt.get("source"))
    if bt.get("type") in CHARGE_TYPES and source_id:
        return source_id
    return bt["id"]


def handle_balance_transaction(db: Database, settings: StripeSettings, bt: dict) -> SyncReport:
    """Track one balance transaction; once available, sync it as txs and reconcile it."""
    report = SyncReport(listed=1)
    source = bt.get("source")
    source_id = _id_of(source)
    now = datetime.now(timezone.utc)
    available = bt.get("status") == "available"
    amount, fee = int(bt["amount"]), int(bt.get("fee") or 0)

    def track(conn: Connection):
        link = _ensure_link(conn, settings.link_id)
        values = dict(link_id=link.id, type=bt.get("type") or "unknown", status=bt.get("status") or "unknown",
                      source_id=source_id, currency=bt["currency"], amount=amount, fee=fee,
                      created=_ts(bt["created"]), available_on=_ts(bt.get("available_on")),
                      checked=now)
        conn.execute(pg_insert(t.stripe_balance_txs).values(id=bt["id"], **values)
                     .on_conflict_do_update(index_elements=["id"], set_={
                         k: values[k] for k in ("status", "available_on", "checked", "source_id")}))
        return link

    if not available:
        db.run(track)
        report.pending = 1
        return report

    def sync(conn: Connection) -> list[reconcile.Tx]:
        link = track(conn)
        account = _account_for(conn, link, bt["currency"])
        posted = _ts(bt["created"])
        what = bt.get("description") or (f"{bt.get('type')} {source_id}" if source_id else bt.get("type"))
        ext = tx_external_id(bt)
        items = [reconcile.TxInput(account.id, ext, what, amount, posted)]
        if fee:
            items.append(reconcile.TxInput(account.id, ext + FEE_SUFFIX, f"Stripe fee: {what}", -fee, posted))
        txs = reconcile.sync_txs(conn, link, items, field="balance_transaction")
        conn.execute(t.stripe_balance_txs.update().where(t.stripe_balance_txs.c.id == bt["id"])
                     .values(synced=sa.func.coalesce(t.stripe_balance_txs.c.synced, now)))
        return txs

    txs = db.run(sync)
    report.synced = 1
    if not settings.ledger_ik:
        return report
    charge = source if isinstance(source, dict) else {}
    problems: list[str] = []
    if bt.get("type") in CHARGE_TYPES and settings.charge_entry_type:
        params, missing = map_parameters(settings.parameters, bt, charge)
        if missing:
            problems.append(f"charge {source_id or '?'} has no {', '.join(missing)}; "
                            f"left unreconciled (mapping: " +
                            ", ".join(f"{p} <- {settings.parameters[p]}" for p in missing) + ")")
        else:
            problems += _reconcile(db, settings, txs[0], settings.charge_entry_type, params, report)
    if fee and settings.fee_entry_type:
        params, _ = map_parameters(settings.parameters, bt, charge)
        problems += _reconcile(db, settings, txs[1], settings.fee_entry_type, params, report)
    _set_problem(db, bt["id"], "; ".join(problems) or None)
    for p in problems:
        log.warning("stripe balance transaction %s: %s", bt["id"], p)
        report.problems.append(Problem(bt["id"], source_id, p))
    return report


def _reconcile(db: Database, settings: StripeSettings, tx: reconcile.Tx, entry_type: str,
               params: dict, report: SyncReport) -> list[str]:
    if tx.reconciled:
        report.already_reconciled += 1
        return []

    def run(conn: Connection):
        request = EntryRequest(ik="", type=entry_type,
                               parameters={k: str(v) for k, v in params.items()})
        return reconcile.reconcile_in(conn, load_ledger(conn, settings.ledger_ik), request, False,
                                      tx.external_id)
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


def recheck_pending(db: Database, client: stripe.StripeClient | None = None,
                    settings: StripeSettings | None = None, due_only: bool = True,
                    limit: int = 500) -> SyncReport:
    """Fetch pending balance transactions again; sync the ones that became available."""
    settings = settings or load_settings(db)
    client = client or client_for(settings)
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
        bt = client.v1.balance_transactions.retrieve(txn_id, params={"expand": ["source"]})
        report.add(handle_balance_transaction(db, settings, bt.to_dict()))
    return report


# ---------------------------------------------------------------------------- backfill

def backfill(db: Database, since: datetime, until: datetime | None = None, *,
             client: stripe.StripeClient | None = None, link_id: str | None = None,
             progress: Callable[[float, SyncReport], None] | None = None) -> SyncReport:
    """List balance transactions created in ``[since, until)`` (newest first, 100 a page)
    and sync each. The cursor is saved after every page: an interrupted backfill with the
    same ``since`` resumes where it stopped. Every object is read whatever its status
    (the API has no status filter): pending ones wait in the tracking table."""
    settings = load_settings(db, link_id)
    client = client or client_for(settings)
    with db.transaction() as conn:
        link = _ensure_link(conn, settings.link_id)
        state = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)).first()
    cursor = None
    if state.backfill_starting_after and state.backfill_since == since and until is None:
        until, cursor = state.backfill_until, state.backfill_starting_after
    until = until or datetime.now(timezone.utc)
    if until <= since:
        raise BadRequestError("invalid_input", f"since: {since.isoformat()} is not before until {until.isoformat()}", field="since")
    _save_cursor(db, link.id, since=since, until=until, starting_after=cursor)
    report = SyncReport()
    span = (until - since).total_seconds()
    while True:
        params: dict[str, Any] = {
            "created": {"gte": int(since.timestamp()), "lt": int(-(-until.timestamp() // 1))},
            "limit": PAGE_LIMIT, "expand": ["data.source"]}
        if cursor:
            params["starting_after"] = cursor
        page = client.v1.balance_transactions.list(params=params)
        for bt in page.data:
            report.add(handle_balance_transaction(db, settings, bt.to_dict()))
            if progress is not None:
                done = (until - _ts(bt["created"])).total_seconds() / span if span else 1.0
                progress(min(max(done, 0.0), 1.0), report)
        if not page.data:
            break
        cursor = page.data[-1]["id"]
        _save_cursor(db, link.id, since=since, until=until, starting_after=cursor)
        if not page.has_more:
            break

    def finish(conn: Connection) -> None:
        row = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)
                           .with_for_update()).first()
        done = row.backfill_done_until
        # Complete up to `until` only if this window joins what was complete before.
        if done is None or since <= done:
            done = max(done or until, until)
        conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link.id).values(
            backfill_starting_after=None, backfill_done_until=done,
            updated=datetime.now(timezone.utc)))

    db.run(finish)
    if progress is not None:
        progress(1.0, report)
    return report


def _save_cursor(db: Database, link_pk: int, **values) -> None:
    with db.transaction() as conn:
        conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link_pk).values(
            backfill_since=values["since"], backfill_until=values["until"],
            backfill_starting_after=values["starting_after"], updated=datetime.now(timezone.utc)))


def backfill_trailing(db: Database, client: stripe.StripeClient | None = None,
                      window: timedelta = TRAILING_WINDOW, link_id: str | None = None) -> SyncReport:
    """What beat runs: finish an interrupted backfill, else list from the end of the last
    complete one (less an overlap) or the trailing window, whichever is earlier; then
    re-check pending balance transactions that are due."""
    settings = load_settings(db, link_id)
    if not settings.api_key:
        log.info("stripe backfill skipped: no API key configured")
        return SyncReport()
    client = client or client_for(settings)
    with db.transaction() as conn:
        link = _ensure_link(conn, settings.link_id)
        state = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)).first()
    if state.backfill_starting_after and state.backfill_since is not None:
        report = backfill(db, state.backfill_since, client=client, link_id=settings.link_id)
    else:
        since = datetime.now(timezone.utc) - window
        if state.backfill_done_until is not None:
            since = min(since, state.backfill_done_until - OVERLAP)
        report = backfill(db, since, client=client, link_id=settings.link_id)
    return report.add(recheck_pending(db, client, settings))


def problems(db: Database, link_id: str | None = None) -> list[Problem]:
    """Settled balance transactions left unreconciled, with the reason (the report)."""
    link_id = link_id or default_link_id()
    with db.transaction() as conn:
        rows = conn.execute(sa.select(t.stripe_balance_txs).join(t.links).where(
            t.links.c.public_id == link_id, t.stripe_balance_txs.c.problem.is_not(None))
            .order_by(t.stripe_balance_txs.c.created)).all()
    return [Problem(r.id, r.source_id, r.problem) for r in rows]
