"""Stripe webhooks: verified, stored in the inbox, then processed."""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError, LedgerError, NotFoundError
from ledger.settings import Settings
from ledger.stripe.api import StripeApi, stripe_api
from ledger.stripe.config import load_settings
from ledger.stripe.model import (
    SETTLE_WAIT,
    WEBHOOK_TOLERANCE_SECONDS,
    Secret,
    SyncReport,
    id_of,
    plain,
)
from ledger.stripe.sync import handle_balance_transaction, recheck_pending

log = logging.getLogger(__name__)


# Stripe's events nest a handful of levels; anything far deeper is not one of them, and a
# depth bound keeps parsing and the checks below linear and free of recursion limits.
MAX_EVENT_DEPTH = 32
# Event ids are ``evt_`` and letters and digits; types are dotted lower-case words.
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
# What PostgreSQL cannot store in text or jsonb: NUL, and UTF-16 halves without their pair.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BAD_SIGNATURE = ("the Stripe-Signature header does not verify for this body (wrong secret, "
                  "altered body, or a timestamp outside the tolerance)")


class NotSettled(Exception):
    """The event's charge (or payment intent) has no balance transaction yet."""

    def __init__(self, object_id: str):
        super().__init__(object_id)
        self.object_id = object_id


def _invalid_event(why: str) -> BadRequestError:
    return BadRequestError("invalid_event", f"the webhook body is not a Stripe event: {why}",
                           field="body")


def _check_signature(text: str, signature: str | None, secret: Secret | str | None,
                     tolerance: int) -> None:
    bad = BadRequestError("invalid_signature", _BAD_SIGNATURE, field="Stripe-Signature")
    if not secret:
        # Answered as a bad signature: an unauthenticated caller learns nothing of the
        # configuration. The operator learns it from the log.
        log.warning("stripe webhook refused: no webhook signing secret is configured "
                    "(STRIPE_WEBHOOK_SECRET or `ledger stripe configure --webhook-secret`)")
        raise bad
    value = secret.reveal() if isinstance(secret, Secret) else secret
    try:
        stripe.WebhookSignature.verify_header(text, signature or "", value, tolerance)
    except stripe.SignatureVerificationError:
        raise bad from None
    # The package refuses timestamps too old only; one too far ahead is refused as well,
    # or a signature leaked today would be replayable for as long as it is in the future.
    stamps = [v.strip() for k, _, v in (p.partition("=") for p in signature.split(","))
              if k.strip() == "t"]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + tolerance:
        raise bad


def _parse_event(text: str) -> dict:
    """The event in ``text``, checked to be one we can store and act on."""
    depth = 0
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_EVENT_DEPTH:
            raise _invalid_event(f"nested deeper than {MAX_EVENT_DEPTH} levels")
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid_event("not JSON") from None
    if not isinstance(event, dict):
        raise _invalid_event("not a JSON object")
    if not isinstance(event.get("id"), str) or not _EVENT_ID.fullmatch(event["id"]):
        raise _invalid_event("id: expected an event id (letters, digits, _ . : -; at most 255)")
    if not isinstance(event.get("type"), str) or len(event["type"]) > 255 \
            or not _EVENT_TYPE.fullmatch(event["type"]):
        raise _invalid_event("type: expected an event type such as charge.succeeded")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise _invalid_event("data.object: expected an object")
    stack: list = [event]
    while stack:  # depth is bounded above; a loop, not recursion, all the same
        value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            for text_ in (key, item):
                if isinstance(text_, str) and _UNSTORABLE.search(text_):
                    raise _invalid_event("a string holds NUL or an unpaired surrogate")
            if isinstance(item, (dict, list)):
                stack.append(item)
    return event


def verify_event(payload: bytes, signature: str | None, secret: Secret | str | None,
                 tolerance: int = WEBHOOK_TOLERANCE_SECONDS) -> dict:
    """The event of a webhook whose signature verifies on the raw body, within ``tolerance``
    seconds of now either way; else ``BadRequestError`` (``invalid_signature``, or
    ``invalid_event`` for a signed body that is not an event we can store)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_event("not UTF-8") from None
    _check_signature(text, signature, secret, tolerance)
    return _parse_event(text)


def store_event(db: Database, event: dict) -> bool:
    """Put an event in the inbox; False when its id is there already (a redelivery)."""
    def run(conn: Connection) -> bool:
        return conn.execute(pg_insert(t.stripe_events).values(
            id=event["id"], type=event["type"], payload=event,
            received=datetime.now(timezone.utc)).on_conflict_do_nothing()
            .returning(t.stripe_events.c.id)).first() is not None
    return db.run(run)


def _charge_balance_transaction(charge: dict, api: StripeApi) -> str | None:
    txn_id = id_of(charge.get("balance_transaction"))
    if txn_id is None and charge.get("id"):
        # The event may predate settlement: ask for the charge as it is now.
        charge = plain(api.charge(charge["id"]))
        txn_id = id_of(charge.get("balance_transaction"))
    if txn_id is None and charge.get("id") and charge.get("status") != "failed":
        raise NotSettled(charge["id"])
    return txn_id


def event_balance_transaction(event_type: str, obj: dict, api: StripeApi) -> str | None:
    """The id of the balance transaction an event concerns, looked up through the API when
    the event names only a charge or payment intent (a payment intent leads to its latest
    charge); None when it names none. ``NotSettled`` when the charge has no balance
    transaction yet but may still get one (pending, processing): try again later."""
    kind = obj.get("object")
    if kind == "charge":
        return _charge_balance_transaction(obj, api)
    if kind == "payment_intent":
        latest, status = obj.get("latest_charge"), obj.get("status")
        if id_of(latest) is None and obj.get("id"):
            intent = plain(api.payment_intent(obj["id"]))
            latest, status = intent.get("latest_charge"), intent.get("status")
        if id_of(latest) is None:
            if status in ("processing", "succeeded"):
                raise NotSettled(obj.get("id") or "?")
            return None
        return _charge_balance_transaction(
            latest if isinstance(latest, dict) else {"id": id_of(latest)}, api)
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
        try:
            txn_id = event_balance_transaction(row.type, obj, api)
        except NotSettled as wait:
            return _wait(db, row, wait.object_id, report)
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


def _wait(db: Database, row, object_id: str, report: SyncReport) -> SyncReport:
    """Leave the event in the inbox for the sweep to try again, until ``SETTLE_WAIT`` has
    passed (then the trailing backfill is what finds the settled charge)."""
    now = datetime.now(timezone.utc)
    values: dict[str, Any] = {"error": f"waiting: {object_id} is not settled yet (no balance "
                                       "transaction); the inbox sweep tries again"}
    if row.received < now - SETTLE_WAIT:
        values = {"processed": now, "error": f"gave up waiting for {object_id} to settle; "
                                             "the backfill syncs it once settled"}
    else:
        report.waiting += 1
    with db.transaction() as conn:
        conn.execute(t.stripe_events.update().where(t.stripe_events.c.id == row.id)
                     .values(**values))
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
