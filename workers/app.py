"""The Celery application: partitioned posting workers, the outbox relay, balance rollup and
job pruning, on a Redis broker.

Without ``-Q`` a worker consumes the queues its settings name: the partitions of
``LEDGER_WORKER_PARTITIONS`` (default: every one) and, unless ``LEDGER_WORKER_MAINTENANCE``
is false, the maintenance queue:

    celery -A workers.app worker --concurrency 2

To spread partitions over machines, give every partition to exactly one worker and run
exactly one beat, for example:

    LEDGER_WORKER_PARTITIONS=0-7 celery -A workers.app worker
    LEDGER_WORKER_PARTITIONS=8-15 LEDGER_WORKER_MAINTENANCE=false celery -A workers.app worker
    celery -A workers.app beat

An explicit ``-Q`` wins over the settings.

Settings come from the environment (`ledger.settings`), read once when Celery first needs
its configuration (a worker or beat starting, a task applied in-process), not at import:
``REDIS_URL`` and ``DATABASE_URL`` (when either is unset, the embedded servers under
``LEDGER_DATA_DIR``, started then), ``LEDGER_PARTITIONS``, ``LEDGER_BATCH``, the relay,
rollup, retention and Stripe schedules.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu import Queue

from ledger import service
from ledger.db import Database
from ledger.embedded import resolve_servers
from ledger.settings import Settings

# The longest countdown we ever schedule (retry backoff cap). Redis redelivers a message
# that stays unacknowledged longer than the visibility timeout, and a message waiting for
# its countdown is unacknowledged all that time; so the timeout must exceed every countdown
# by a wide margin, or a retry would be delivered twice.
MAX_COUNTDOWN_SECONDS = 60
VISIBILITY_TIMEOUT_SECONDS = 3600


class Runtime:
    """What the tasks of this process share: the settings on resolved servers, and the
    embedded servers when this process had to start them (held so they keep running).
    Set once, when Celery configures the app; forked pool children inherit it."""

    settings: Settings | None = None
    keepalive: Any = None


runtime = Runtime()
log = logging.getLogger(__name__)

app = Celery("ledger", include=["workers.tasks", "workers.stripe_tasks",
                                    "workers.webhook_tasks"])


def settings() -> Settings:
    """The settings of this process, configuring the app first if nothing has yet."""
    if runtime.settings is None:
        app.conf.broker_url  # noqa: B018 - reading the configuration runs configure()
    assert runtime.settings is not None
    return runtime.settings


def _every(task: str, seconds: float) -> dict:
    # A beat message older than its period is dropped: the next one does the same work.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


def celery_config(settings: Settings) -> dict:
    maintenance = settings.maintenance_queue
    return dict(
        broker_url=settings.redis_url,
        # At-least-once: a message is acknowledged only after its task ran, and a task whose
        # worker process died is given back to the broker instead of being dropped.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per process: a worker never sits on doorbells it cannot
        # ring yet while another worker idles.
        worker_prefetch_multiplier=1,
        # On a lost broker connection, unacknowledged messages are redelivered anyway; stop
        # the tasks holding them rather than let them finish twice.
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
        task_default_queue=maintenance,
        task_queues=[Queue(q) for q in settings.partition_queues()] + [
            Queue(maintenance), Queue(settings.webhook_queue)],
        task_routes={**{name: {"queue": maintenance}
                        for name in ("ledger.relay", "ledger.rollup", "ledger.prune",
                                     "ledger.webhooks.dispatch", "ledger.events.unreconciled",
                                     "ledger.holds.expire")},
                     # Deliveries wait on receivers: their own queue, so a hanging one
                     # never delays relay, rollup or expiry behind it.
                     "ledger.webhooks.deliver": {"queue": settings.webhook_queue}},
        # Bounds a worker process's memory: a child is replaced after it grows past this.
        worker_max_memory_per_child=settings.worker_max_memory_kb,
        worker_hijack_root_logger=False,
        beat_schedule={
            "relay": _every("ledger.relay", settings.relay_every_seconds),
            "rollup": _every("ledger.rollup", settings.rollup_every_seconds),
            "prune": _every("ledger.prune", 3600.0),
            "holds-expire": _every("ledger.holds.expire", settings.hold_expiry_every_seconds),
            # Stripe: the trailing-window backfill (a no-op until an API key is configured)
            # and the sweep of webhook events whose task never ran.
            "stripe-backfill": _every("ledger.stripe.backfill",
                                      settings.stripe_backfill_every_seconds),
            "stripe-inbox": _every("ledger.stripe.inbox", settings.stripe_inbox_every_seconds),
            # Events: webhook delivery (workers/webhook_tasks.py) and the unreconciled sweep.
            "webhooks": _every("ledger.webhooks.dispatch", settings.webhook_every_seconds),
            "unreconciled": _every("ledger.events.unreconciled",
                                   settings.unreconciled_every_seconds),
        },
    )


@app.on_configure.connect
def configure(sender: Celery, **_kwargs) -> None:
    """Celery asks for its configuration (a worker or beat starting, a task applied
    in-process): read the settings, start the embedded servers if the environment names
    none, and configure the app for them. Runs once per process tree."""
    if runtime.settings is None:
        runtime.settings, runtime.keepalive = resolve_servers(Settings.from_env())
        service.configure_events(runtime.settings.events)
    sender.config_from_object(celery_config(runtime.settings))


@signals.celeryd_init.connect
def select_queues(instance, **_kwargs) -> None:
    """Consume the queues the settings name. The worker applies ``-Q`` right after this
    signal and only when it was given, so the command line still wins."""
    instance.app.amqp.queues.select(settings().worker_queues())


@signals.worker_init.connect
def check_stored_secrets(**_kwargs) -> None:
    """A worker refuses to start when the database keeps secrets it could not decrypt
    (LEDGER_SECRET_KEY missing or wrong); without a key it starts if nothing needs one.
    SystemExit, because Celery logs and ignores ordinary exceptions of signal handlers."""
    db = Database(settings().database_url, pool_size=1, max_overflow=0)
    try:
        service.check_secrets(db, service.Keyring.of(settings()))
    except service.SecretKeyError as exc:
        log.critical("worker not started: %s: %s", exc.code, exc.message)
        raise SystemExit(f"{exc.code}: {exc.message}") from None
    finally:
        db.dispose()


# ------------------------------------------------------------------ observability
# Metrics, JSON logs and tracing (README, "Observability"): hooks on Celery's signals, so
# the tasks themselves only report what a batch did (workers.metrics.observe_batch).

@signals.worker_init.connect
def start_observability(**_kwargs) -> None:
    """In the worker's main process, before the pool forks: serve the metrics port, and
    start tracing (the pool children inherit it; see start_child_tracing)."""
    from workers import metrics, telemetry

    metrics.serve(settings())
    telemetry.start(settings())


@signals.worker_process_init.connect
def start_child_tracing(**_kwargs) -> None:
    from workers import telemetry

    telemetry.start(settings())


@signals.worker_process_init.connect
def freeze_child_heap(**_kwargs) -> None:
    """A pool process lives for many batches: what it holds once started is left out of
    the full collections that each batch's thousands of objects trigger (ledger.heap), a
    third of a worker's CPU per entry in bench/pipeline.py."""
    service.freeze_startup_heap()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def json_logs(logger=None, **_kwargs) -> None:
    if settings().log_format == "json":
        service.use_json_logs(*([logger] if logger is not None else []))


_task_fields: dict[str, Any] = {}


@signals.task_prerun.connect
def bind_task_fields(task_id=None, task=None, args=None, **_kwargs) -> None:
    """Every line a task logs carries its task id and name, and a posting task's
    partition."""
    fields = {"task_id": task_id, "task": getattr(task, "name", None)}
    if getattr(task, "name", None) == service.POST_TASK and args:
        fields["partition"] = args[0]
    context = service.log_fields(**fields)
    context.__enter__()
    _task_fields[task_id] = context


@signals.task_postrun.connect
def unbind_task_fields(task_id=None, **_kwargs) -> None:
    context = _task_fields.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)
