"""``POST /webhooks/stripe``: verify, store in the inbox, enqueue, answer.

The route does no ledger work: Stripe waits for the answer and retries slow ones, so the
event is stored (deduplicated by its id) and a task processes it after the commit. The
signature (and its timestamp, within the tolerance either way) is checked on the raw body
before anything is stored; a bad or missing one is a 400 and leaves no trace, and so is a
signed body that is not an event we can store (``invalid_event``). Once the event is stored the answer is 2xx even if the broker is
down: the inbox is swept by beat, so an accepted event is never lost.

No token is required here (Stripe cannot present one); the signature is the authentication.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from starlette.concurrency import run_in_threadpool

from api import deps
from api.errors import WEBHOOK_STATUS_OF, error_response
from ledger import service
from ledger.errors import LedgerError
from ledger.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])


def _enqueue(send: Any, settings: Settings, event_id: str) -> None:
    if send is None:
        log.warning("no broker URL: stripe event %s waits for the inbox sweep", event_id)
        return
    try:
        send(service.STRIPE_EVENT_TASK, [event_id], settings.maintenance_queue)
    except Exception:
        # Stored already: the inbox sweep will process it.
        log.warning("could not enqueue stripe event %s; the inbox sweep will process it",
                    event_id, exc_info=True)


@router.post("/webhooks/stripe", summary="Stripe webhook (signature-verified, no token)",
             status_code=200)
async def stripe_webhook(request: Request, background: BackgroundTasks):
    payload = await request.body()
    db = deps.database(request)
    settings = deps.settings(request)
    try:
        stripe = await run_in_threadpool(service.stripe_settings, db, settings)
        event = service.verify_stripe_event(payload, request.headers.get("Stripe-Signature"),
                                            stripe.webhook_secret)
    except LedgerError as exc:
        # A bad signature, a signed body that is not an event, and a link with no webhook
        # secret (answered as a bad signature: the caller is not authenticated) are 400s;
        # the database away is a 503, which Stripe retries.
        return error_response(exc, statuses=WEBHOOK_STATUS_OF, retry_after=30)
    new = await run_in_threadpool(service.store_stripe_event, db, event)
    if new:
        # Sent after the answer, so a slow broker never delays Stripe's 2xx.
        background.add_task(_enqueue, deps.send(request), settings, event["id"])
    return {"received": True, "id": event["id"], "duplicate": not new}
