"""``POST /webhooks/stripe``: verify, store in the inbox, enqueue, answer.

The route does no ledger work: Stripe waits for the answer and retries slow ones, so the
event is stored (deduplicated by its id) and a task processes it after the commit. The
signature is checked on the raw body before anything is stored; a bad or missing one is a
400 and leaves no trace. Once the event is stored the answer is 2xx even if the broker is
down: the inbox is swept by beat, so an accepted event is never lost.

No token is required here (Stripe cannot present one); the signature is the authentication.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledger import stripe_sync
from ledger.db import Database
from ledger.errors import BadRequestError, LedgerError

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

# The task name and queue the workers consume (workers/stripe_tasks.py, and the maintenance
# queue of workers/app.py); named here so the API does not import the worker code.
STRIPE_EVENT_TASK = "ledger.stripe.event"


def _queue() -> str:
    return os.environ.get("LEDGER_QUEUE_PREFIX", "ledger.post") + ".maintenance"


def _db(request: Request) -> Database:
    state = request.app.state
    db = getattr(state, "db", None)
    return db if db is not None else state.tokens.db


def _broker_url(request: Request) -> str | None:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    keepalive = getattr(request.app.state, "keepalive", None)
    redis = getattr(keepalive, "redis", None)
    return redis.redis_url if redis is not None else None


class _Publisher:
    """One Celery client per broker URL, created on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def send(self, url: str | None, event_id: str) -> None:
        if not url:
            log.warning("no broker URL: stripe event %s waits for the inbox sweep", event_id)
            return
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                from celery import Celery

                client = Celery("ledger-webhooks", broker=url)
                client.conf.update(broker_transport_options={"socket_timeout": 5,
                                                             "socket_connect_timeout": 2},
                                   broker_connection_timeout=2)
                self._clients[url] = client
        try:
            client.send_task(STRIPE_EVENT_TASK, args=[event_id], queue=_queue(), retry=True,
                             retry_policy={"max_retries": 2, "interval_start": 0,
                                           "interval_step": 0.2, "interval_max": 0.5})
        except Exception:
            # Stored already: the inbox sweep will process it.
            log.warning("could not enqueue stripe event %s; the inbox sweep will process it",
                        event_id, exc_info=True)


publisher = _Publisher()


@router.post("/webhooks/stripe", summary="Stripe webhook (signature-verified, no token)",
             status_code=200)
async def stripe_webhook(request: Request, background: BackgroundTasks):
    payload = await request.body()
    db = _db(request)
    try:
        settings = await run_in_threadpool(stripe_sync.load_settings, db)
        event = stripe_sync.verify_event(payload, request.headers.get("Stripe-Signature"),
                                         settings.webhook_secret)
    except BadRequestError as exc:
        return JSONResponse(exc.to_dict(), status_code=400)
    except LedgerError as exc:
        # Not configured, or the database is away: Stripe retries on a 5xx.
        return JSONResponse(exc.to_dict(), status_code=503, headers={"Retry-After": "30"})
    new = await run_in_threadpool(stripe_sync.store_event, db, event)
    if new:
        # Sent after the answer, so a slow broker never delays Stripe's 2xx.
        background.add_task(publisher.send, _broker_url(request), event["id"])
    return {"received": True, "id": event["id"], "duplicate": not new}
