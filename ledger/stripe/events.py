"""Stripe webhooks: verified, stored in the inbox, then processed."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError, InternalError, LedgerError, NotFoundError
from ledger.settings import Settings
from ledger.stripe.api import StripeApi, stripe_api
from ledger.stripe.config import load_settings
from ledger.stripe.model import WEBHOOK_TOLERANCE_SECONDS, Secret, SyncReport, id_of
from ledger.stripe.sync import handle_balance_transaction, recheck_pending

log = logging.getLogger(__name__)


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


def event_balance_transaction(event_type: str, obj: dict, api: StripeApi) -> str | None:
    """The id of the balance transaction an event concerns, looked up through the API when
    the event names only a charge or payment intent; None when it names none."""
    kind = obj.get("object")
    if kind == "charge":
        txn_id = id_of(obj.get("balance_transaction"))
        if txn_id is None and obj.get("id"):
            txn_id = id_of(api.charge(obj["id"]).get("balance_transaction"))
        return txn_id
    if kind == "payment_intent" and obj.get("latest_charge"):
        return id_of(api.charge(id_of(obj["latest_charge"])).get("balance_transaction"))
    if kind == "balance_transaction":
        return obj.get("id")
    return None


def rechecks_pending(event_type: str, obj: dict) -> bool:
    """Whether an event asks for pending balance transactions to be fetched again: funds
    became available, and the event names no balance transaction of its own."""
    kind = obj.get("object")
    names_one = kind in ("charge", "balance_transaction") or (
        kind == "payment_intent" and bool(obj.get("latest_charge")))
    return not names_one and event_type == "balance.available"


def process_event(db: Database, config: Settings, event_id: str, client: Any = None) -> SyncReport:
    """Act on one inbox event: fetch the balance transaction it concerns from the API (the
    event may be stale or reordered) and sync it. Processing twice is harmless. ``client``:
    a ``StripeApi`` or ``stripe.StripeClient`` (None: one made from the settings)."""
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.stripe_events).where(t.stripe_events.c.id == event_id)).first()
    if row is None:
        raise NotFoundError("event_not_found", f"no Stripe event {event_id!r} in the inbox")
    report = SyncReport()
    if row.processed is not None:
        return report
    settings = load_settings(db, config)
    try:
        api = stripe_api(settings, client)
        obj = (row.payload.get("data") or {}).get("object") or {}
        txn_id = event_balance_transaction(row.type, obj, api)
        if txn_id is None and rechecks_pending(row.type, obj):
            report.add(recheck_pending(db, settings, api, due_only=False))
        if txn_id:
            report.add(handle_balance_transaction(db, settings, api.balance_transaction(txn_id)))
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


def process_inbox(db: Database, config: Settings, client: Any = None,
                  older_than: timedelta = timedelta(seconds=60), limit: int = 100) -> SyncReport:
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
            report.add(process_event(db, config, event_id, client))
        except Exception:
            log.warning("stripe event %s failed; it stays in the inbox", event_id, exc_info=True)
    return report
