"""Celery tasks of the Stripe link, thin wrappers around the Stripe operations of
`ledger.service`.

``ledger.stripe.event`` processes one webhook event from the inbox (sent by the API after
the event is stored); ``ledger.stripe.inbox`` (beat) processes events whose message was
lost; ``ledger.stripe.backfill`` (beat) lists the trailing window and re-checks pending
balance transactions. All of them may run at once and more than once: syncing a tx twice is
a no-op and a tx is reconciled once (its row lock and ik), so at-least-once is enough.
"""
from __future__ import annotations

import logging
import random

import sqlalchemy.exc
import stripe

from ledger import service
from ledger.errors import LedgerError
from workers.app import MAX_COUNTDOWN_SECONDS, app, settings
from workers.tasks import database

log = logging.getLogger(__name__)

_TRANSIENT_STRIPE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, LedgerError):
        return exc.retryable and exc.code != "stripe_not_configured"
    return isinstance(exc, (_TRANSIENT_STRIPE, sqlalchemy.exc.OperationalError))


def _countdown(retries: int) -> float:
    return min(MAX_COUNTDOWN_SECONDS, 2 ** min(retries, 6)) * (0.5 + random.random() / 2)


def _summary(report: service.StripeSyncReport) -> dict:
    return {"listed": report.listed, "pending": report.pending, "synced": report.synced,
            "reconciled": report.reconciled, "already_reconciled": report.already_reconciled,
            "waiting": report.waiting, "problems": len(report.problems)}


@app.task(bind=True, name=service.STRIPE_EVENT_TASK, max_retries=8)
def stripe_event(self, event_id: str) -> dict:
    try:
        report = service.process_stripe_event(database(), settings(), event_id)
    except Exception as exc:
        if _transient(exc):
            raise self.retry(exc=exc, countdown=_countdown(self.request.retries))
        # Recorded on the inbox row; the sweep tries again later (say, once configured).
        log.error("stripe event %s not processed: %s", event_id,
                  exc.message if isinstance(exc, LedgerError) else type(exc).__name__)
        return {"error": type(exc).__name__}
    return _summary(report)


@app.task(name="ledger.stripe.inbox")
def stripe_inbox() -> dict:
    if not service.stripe_settings(database(), settings()).api_key:
        return {}
    return _summary(service.process_stripe_inbox(database(), settings()))


@app.task(name="ledger.stripe.backfill")
def stripe_backfill() -> dict:
    try:
        return _summary(service.stripe_backfill_trailing(database(), settings()))
    except Exception as exc:
        if not _transient(exc):
            raise
        # The next beat runs it again, resuming from the saved cursor.
        log.warning("stripe backfill interrupted (%s); the next run resumes", type(exc).__name__)
        return {"error": type(exc).__name__}
