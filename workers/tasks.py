"""Celery tasks. Each is a thin wrapper around one `ledger.service` call: the rules (order,
single consumer per partition, what fails and what is retried) live there, so the
synchronous API and these workers cannot disagree about them.
"""
from __future__ import annotations

import logging
import os
import random
import time
from datetime import timedelta

from celery import signals

from ledger import service
from ledger.db import Database
from workers.app import MAX_COUNTDOWN_SECONDS, app, settings
from workers.metrics import observe_batch

log = logging.getLogger(__name__)

# A doorbell drains its partition for at most this long, then hands over to a fresh
# message, so one task never runs anywhere near the visibility timeout and other
# partitions' doorbells get a turn on a shared worker.
DRAIN_SECONDS = 20.0
# A doorbell that finds its partition busy checks again after 0.2, 0.4, ... 6.4 s (12.6 s in
# all): the worker holding it may have claimed its last batch just before our jobs
# committed. If it is still busy after that, it is draining a long backlog that includes
# our jobs, and the relay remains as a backstop.
BUSY_RETRIES = 6


class _PerProcess:
    """One value per process: a forked pool child must not reuse its parent's sockets."""

    def __init__(self, make):
        self.make = make
        self.value = None
        self.pid: int | None = None

    def get(self):
        if self.value is None or self.pid != os.getpid():
            self.value = self.make()
            self.pid = os.getpid()
        return self.value


def _make_database() -> Database:
    return Database(settings().database_url, pool_size=2, max_overflow=2)


def _make_doorbell():
    import redis

    config = settings()
    keys = redis.Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
    return service.Doorbell(config, _send, keys)


def _send(task: str, args: list, queue: str) -> None:
    """`ledger.service.Send` through this worker's own Celery app."""
    app.send_task(task, args=list(args), queue=queue)


_database = _PerProcess(_make_database)
_doorbell = _PerProcess(_make_doorbell)


def database() -> Database:
    return _database.get()


def doorbell():
    """The one doorbell publisher (`ledger.service.Doorbell`) of this process."""
    return _doorbell.get()


def _backoff(retries: int) -> float:
    # Exponential with jitter, so workers retrying after one outage do not return together.
    return min(MAX_COUNTDOWN_SECONDS, 0.5 * 2 ** min(retries, 10)) * (0.5 + random.random() / 2)


@app.task(bind=True, name=service.POST_TASK, max_retries=None)
def post_partition(self, partition: int) -> str:
    """Post the pending jobs of one partition, a batch per transaction, until none is left
    (or the drain budget runs out)."""
    config = settings()
    queue = config.queue_name(partition)
    deadline = time.monotonic() + DRAIN_SECONDS
    done = []
    # This doorbell is no longer waiting: from now on a new submission must ring again,
    # since our claim may come before its jobs commit. Done before claiming, so any job a
    # sender saw covered by this doorbell is visible to our claim.
    doorbell().clear(partition)
    while True:
        try:
            started = time.perf_counter()
            result = service.work_partition(database(), partition, limit=config.batch)
            observe_batch(result, time.perf_counter() - started, config)
        except Exception as exc:
            # The batch rolled back and its jobs stay pending: retry until the fault is
            # gone. A fault that is not transient (code deployed before its migration, a
            # bug) stops this partition, loudly, rather than fail jobs that did nothing
            # wrong.
            if service.is_transient(exc):
                log.warning("partition %s: transient failure, retrying: %s", partition, exc)
            else:
                log.error("partition %s: posting failed; its jobs stay pending and are "
                          "retried", partition, exc_info=exc)
            raise self.retry(exc=exc, countdown=_backoff(self.request.retries), queue=queue)
        if result.busy:
            if self.request.retries < BUSY_RETRIES:
                raise self.retry(countdown=0.2 * 2 ** self.request.retries, queue=queue)
            return str(result)
        done.append(result)
        if not result.more:
            break
        if time.monotonic() > deadline:
            doorbell().ring([partition])
            break
    posted = sum(r.posted for r in done)
    failed = sum(r.failed for r in done)
    return f"partition {partition}: {posted} posted, {failed} failed"


@signals.worker_ready.connect
def ring_own_partitions(sender, **_kwargs) -> None:
    """A worker (re)starting rings each of its partitions that has jobs pending, bypassing
    the waiting keys: a worker killed after taking a doorbell leaves that message
    unacknowledged in Redis until the visibility timeout, and its waiting key stops every
    sender and the relay from ringing again until the key expires, so without this its
    partitions would stay idle for up to a minute after it came back."""
    config = settings()
    consumed = set(sender.app.amqp.queues.consume_from)
    mine = [p for p in range(config.partitions) if config.queue_name(p) in consumed]
    if not mine:
        return
    db = Database(config.database_url, pool_size=1, max_overflow=0)
    try:
        pending = set(service.stale_partitions(db, timedelta(0)))
        rung = doorbell().ring([p for p in mine if p in pending], coalesce=False)
    except Exception:  # noqa: BLE001 - the relay rings them once their waiting keys expire
        log.warning("could not ring this worker's partitions at start", exc_info=True)
        return
    finally:
        db.dispose()
    if rung:
        log.info("rang partitions %s with jobs pending at start", rung)


@app.task(name="ledger.relay")
def relay() -> list[int]:
    """Ring the doorbell of every partition with a job pending too long: its message was
    lost (crash between commit and send, flushed Redis, a worker killed mid-batch)."""
    after = timedelta(seconds=settings().relay_after_seconds)
    stale = service.stale_partitions(database(), after)
    # A partition whose doorbell is still waiting (a long backlog) is not rung again; one
    # whose doorbell was lost has no waiting key left once it expires.
    rung = doorbell().ring(stale)
    if rung:
        log.info("relay rang partitions %s", rung)
    return rung


def _sweep(step, limit: int, budget_seconds: float) -> int:
    """Run ``step(db, limit=limit)`` until it does less than ``limit`` or the budget is
    spent; returns how much it did in all."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        done = step(database(), limit=limit)
        total += done
        if done < limit or time.monotonic() > deadline:
            return total


@app.task(name="ledger.rollup")
def rollup(limit: int = 50_000, budget_seconds: float = 5.0) -> int:
    """Fold pending balance deltas of eventually consistent accounts into their balances."""
    return _sweep(service.rollup, limit, budget_seconds)


@app.task(name="ledger.holds.expire")
def expire_holds(limit: int = 1000, budget_seconds: float = 5.0) -> int:
    """Expire pending holds past their expiresAt, in sweeps of ``limit``."""
    return _sweep(service.expire_holds, limit, budget_seconds)


@app.task(name="ledger.prune")
def prune() -> int:
    days = settings().job_retention_days
    return service.prune_finished(database(), timedelta(days=days))
