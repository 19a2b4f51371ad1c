"""Celery tasks of events: webhook delivery and the unreconciled-tx sweep. Each is a thin
wrapper around `ledger.service`; the rules (order, locking, backoff) live there.

Beat runs ``ledger.webhooks.dispatch`` every ``LEDGER_WEBHOOK_EVERY_SECONDS``: it sends a
``ledger.webhooks.deliver`` per endpoint that is due. Posting never waits for any of this:
it only writes the events, in its own transaction.
"""
from __future__ import annotations

import logging

from ledger import service
from workers.app import app, settings
from workers.tasks import database

log = logging.getLogger(__name__)


@app.task(name="ledger.webhooks.dispatch")
def dispatch() -> list[str]:
    """One delivery task per endpoint whose backoff has run out; an endpoint already being
    delivered to answers busy at once (its lock), so a slow receiver never piles them up."""
    due = service.due_webhook_endpoints(database())
    every = settings().webhook_every_seconds
    for endpoint in due:
        app.send_task("ledger.webhooks.deliver", args=[endpoint],
                      queue=settings().webhook_queue, expires=max(5.0, 5 * every))
    return due


@app.task(name="ledger.webhooks.deliver")
def deliver(endpoint: str) -> str:
    run = service.deliver_webhook_endpoint(database(), settings(), endpoint)
    if run.failed:
        log.warning("webhook endpoint %s: delivery failed: %s%s", endpoint, run.errors[-1],
                    " (endpoint disabled)" if run.disabled else "")
    return (f"{endpoint}: busy" if run.busy else
            f"{endpoint}: {run.delivered} delivered, {run.failed} failed, {run.skipped} skipped")


@app.task(name="ledger.events.unreconciled")
def unreconciled() -> int:
    return service.raise_unreconciled_alerts(database(), settings())
