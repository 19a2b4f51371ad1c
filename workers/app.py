"""The Celery application: partitioned posting workers, the outbox relay, balance rollup and
job pruning, on a Redis broker.

Without ``-Q`` a worker consumes every partition queue and the maintenance queue (what
`ledger up` runs):

    celery -A workers.app worker --concurrency 2

To spread partitions over machines, give each worker its own queues, every partition queue
to exactly one worker (``-Q ledger.post.0,...,ledger.post.7,ledger.post.maintenance`` on
one, ``-Q ledger.post.8,...`` on the other), and run exactly one beat:

    celery -A workers.app beat

Settings come from the environment: ``REDIS_URL`` and ``DATABASE_URL`` (when either is
unset, the embedded servers under ``LEDGER_DATA_DIR``, default ``./.ledger``),
``LEDGER_PARTITIONS`` (16), ``LEDGER_BATCH`` (jobs per transaction, 1000),
``LEDGER_RELAY_AFTER_SECONDS`` (30), ``LEDGER_RELAY_EVERY_SECONDS`` (10),
``LEDGER_ROLLUP_EVERY_SECONDS`` (2), ``LEDGER_JOB_RETENTION_DAYS`` (7).
"""
from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from kombu import Queue

from ledger import jobs

# The longest countdown we ever schedule (retry backoff cap). Redis redelivers a message
# that stays unacknowledged longer than the visibility timeout, and a message waiting for
# its countdown is unacknowledged all that time; so the timeout must exceed every countdown
# by a wide margin, or a retry would be delivered twice.
MAX_COUNTDOWN_SECONDS = 60
VISIBILITY_TIMEOUT_SECONDS = 3600

_keepalive = None  # the embedded servers, when this process had to start them


def _urls() -> tuple[str, str]:
    global _keepalive
    database_url = os.environ.get("DATABASE_URL") or ""
    redis_url = os.environ.get("REDIS_URL") or ""
    if not (database_url and redis_url):
        from ledger.embedded import resolve_urls

        data_dir = Path(os.environ.get("LEDGER_DATA_DIR", ".ledger"))
        database_url, redis_url, _keepalive = resolve_urls(data_dir)
        # Child processes (the prefork pool) and anything reading the environment later
        # must use the servers this process resolved, not start their own.
        os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url, redis_url
    return database_url, redis_url


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


DATABASE_URL, REDIS_URL = _urls()
MAINTENANCE_QUEUE = os.environ.get("LEDGER_QUEUE_PREFIX", "ledger.post") + ".maintenance"


def partition_queues() -> list[str]:
    return [jobs.queue_name(p) for p in range(jobs.partition_count())]


app = Celery("ledger", broker=REDIS_URL, include=["workers.tasks", "workers.stripe_tasks"])
app.conf.update(
    # At-least-once: a message is acknowledged only after its task ran, and a task whose
    # worker process died is given back to the broker instead of being dropped.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message at a time per process: a worker never sits on doorbells it cannot ring
    # yet while another worker idles.
    worker_prefetch_multiplier=1,
    # On a lost broker connection, unacknowledged messages are redelivered anyway; stop the
    # tasks holding them rather than let them finish twice.
    worker_cancel_long_running_tasks_on_connection_loss=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
        # Notice a dead Redis within seconds, so retries and the relay take over.
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    },
    # A safety net for a task stuck in a blocked statement: its child is replaced, its
    # batch rolls back with the connection, and the relay rings the partition again.
    # Far below the visibility timeout, far above a drain (DRAIN_SECONDS in tasks.py).
    task_time_limit=900,
    # Outcomes live in posting_jobs, not in a result backend.
    task_ignore_result=True,
    task_store_errors_even_if_ignored=False,
    task_default_queue=MAINTENANCE_QUEUE,
    task_queues=[Queue(q) for q in partition_queues()] + [Queue(MAINTENANCE_QUEUE)],
    task_routes={
        "ledger.relay": {"queue": MAINTENANCE_QUEUE},
        "ledger.rollup": {"queue": MAINTENANCE_QUEUE},
        "ledger.prune": {"queue": MAINTENANCE_QUEUE},
    },
    # Bounds a worker process's memory: a child is replaced after it grows past this (KiB).
    worker_max_memory_per_child=int(os.environ.get("LEDGER_WORKER_MAX_MEMORY_KB", 200_000)),
    worker_hijack_root_logger=False,
    beat_schedule={
        "relay": {"task": "ledger.relay",
                  "schedule": _seconds("LEDGER_RELAY_EVERY_SECONDS", 10),
                  "options": {"expires": _seconds("LEDGER_RELAY_EVERY_SECONDS", 10)}},
        "rollup": {"task": "ledger.rollup",
                   "schedule": _seconds("LEDGER_ROLLUP_EVERY_SECONDS", 2),
                   "options": {"expires": _seconds("LEDGER_ROLLUP_EVERY_SECONDS", 2)}},
        "prune": {"task": "ledger.prune", "schedule": 3600.0,
                  "options": {"expires": 3600.0}},
        # Stripe: the trailing-window backfill (a no-op until an API key is configured)
        # and the sweep of webhook events whose task never ran.
        "stripe-backfill": {"task": "ledger.stripe.backfill",
                            "schedule": _seconds("LEDGER_STRIPE_BACKFILL_EVERY_SECONDS", 900),
                            "options": {"expires": _seconds("LEDGER_STRIPE_BACKFILL_EVERY_SECONDS", 900)}},
        "stripe-inbox": {"task": "ledger.stripe.inbox",
                         "schedule": _seconds("LEDGER_STRIPE_INBOX_EVERY_SECONDS", 60),
                         "options": {"expires": _seconds("LEDGER_STRIPE_INBOX_EVERY_SECONDS", 60)}},
    },
)
