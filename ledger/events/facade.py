"""The façade's part for events, webhook endpoints and their delivery, and the
unreconciled-tx alerts; ``ledger.service`` re-exports them."""
from __future__ import annotations

from datetime import timedelta as _timedelta

from ledger.db import Database
from ledger.ledgers import load_ledger
from ledger.secrets import Keyring
from ledger.settings import Settings
from ledger.events.store import TYPES as EVENT_TYPES
from ledger.events.store import Event, EventPage, read_events


def list_events(db: Database, *, after: str | None = None, types: list[str] | None = None,
                ledger_ik: str | None = None, first: int = 100) -> EventPage:
    """``list_events(db, *, after, types, ledger_ik, first) -> EventPage``: the events after
    the cursor ``after``, oldest first, gap-free (ledger/events/store.py); of one ledger when
    ``ledger_ik`` is given. A bad cursor, type or page size is ``invalid_input`` naming it."""
    with db.transaction() as conn:
        ledger_id = load_ledger(conn, ledger_ik).id if ledger_ik is not None else None
        return read_events(conn, after=after, types=types, ledger_id=ledger_id, first=first)


# ------------------------------------------------------------ webhooks and alerts


from ledger.events.delivery import DeliveryRun, backoff_seconds, body_of
from ledger.events.delivery import deliver_endpoint as _deliver_endpoint
from ledger.events.delivery import due_endpoints as due_webhook_endpoints
from ledger.events.delivery import redeliver as _redeliver
from ledger.events.delivery import signed_headers
from ledger.events.store import configure_events
from ledger.events.webhooks import CreatedEndpoint, Delivery, WebhookEndpoint
from ledger.events.webhooks import create_endpoint as _create_endpoint
from ledger.events.webhooks import delete_endpoint as delete_webhook_endpoint
from ledger.events.webhooks import enable_endpoint as enable_webhook_endpoint
from ledger.events.webhooks import list_deliveries as list_webhook_deliveries
from ledger.events.webhooks import list_endpoints as list_webhook_endpoints
from ledger.reconcile.alerts import raise_unreconciled_alerts as _unreconciled


def create_webhook_endpoint(db: Database, config: Settings, *, url, events,
                            description=None, ledger_ik=None) -> CreatedEndpoint:
    """``create_webhook_endpoint(db, config, *, url, events, description, ledger_ik)
    -> CreatedEndpoint``: a new endpoint receiving the events of the types ``events``
    (``["*"]``: all) raised from now on, of the ledger ``ledger_ik`` only when given;
    ``.secret`` (``whsec_...``) is shown this once and stored encrypted with
    ``LEDGER_SECRET_KEY``. A bad URL (not http/https; private or loopback unless
    ``LEDGER_WEBHOOK_ALLOW_PRIVATE``) is ``invalid_url`` naming ``url``."""
    return _create_endpoint(db, Keyring.of(config), url=url, events=events,
                            description=description, ledger_ik=ledger_ik,
                            allow_private=config.webhook_allow_private)


def deliver_webhook_endpoint(db: Database, config: Settings, endpoint, *,
                             budget_seconds: float = 20.0) -> DeliveryRun:
    """Deliver the endpoint's pending events, in order (ledger/events/delivery.py)."""
    return _deliver_endpoint(db, Keyring.of(config), config, endpoint,
                             budget_seconds=budget_seconds)


def redeliver_webhook_event(db: Database, config: Settings, endpoint, event) -> Delivery:
    """Send one event to the endpoint again now, logged as a manual attempt."""
    return _redeliver(db, Keyring.of(config), config, endpoint, event)


def raise_unreconciled_alerts(db: Database, config: Settings) -> int:
    """tx.unreconciled_for for synced txs unreconciled longer than
    ``LEDGER_UNRECONCILED_ALERT_SECONDS``, once each; returns how many."""
    return _unreconciled(db, _timedelta(seconds=config.unreconciled_alert_seconds))


__all__ = [
    "EVENT_TYPES", "Event", "EventPage", "list_events", "CreatedEndpoint", "Delivery",
    "DeliveryRun", "WebhookEndpoint", "backoff_seconds", "body_of", "configure_events",
    "create_webhook_endpoint", "delete_webhook_endpoint", "deliver_webhook_endpoint",
    "due_webhook_endpoints", "enable_webhook_endpoint", "list_webhook_deliveries",
    "list_webhook_endpoints", "raise_unreconciled_alerts", "redeliver_webhook_event",
    "signed_headers"
]
