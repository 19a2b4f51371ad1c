"""Celery tasks. Each is a thin wrapper around one `ledger.jobs` / `ledger.posting` call:
the rules (order, single consumer per partition, what fails and what is retried) live
there, so the synchronous API and these workers cannot disagree about them.
"""
from __future__ import annotations

import logging
import os
import random
import time
from datetime import timedelta

from ledger import jobs, posting
from ledger.db import Database
from workers.app import DATABASE_URL, MAX_COUNTDOWN_SECONDS, REDIS_URL, app

log = logging.getLogger(__name__)

BATCH = int(os.environ.get("LEDGER_BATCH", jobs.DEFAULT_BATCH))
# A doorbell drains its partition for at most this long, then hands over to a fresh
# message, so one task never runs anywhere near the visibility timeout and other
# partitions' doorbells get a turn on a shared worker.
DRAIN_SECONDS = 20.0
# A doorbell that finds its partition busy checks again after 0.2, 0.4, ... 6.4 s (12.6 s in
# all): the worker holding it may have claimed its last batch just before our jobs
# committed. If it is still busy after that, it is draining a long backlog that includes
# our jobs, and the relay remains as a backstop.
BUSY_RETRIES = 6

_db: Database | None = None
_db_pid: int | None = None


def database() -> Database:
    """One engine per process: a forked pool child must not reuse its parent's sockets."""
    global _db, _db_pid
    if _db is None or _db_pid != os.getpid():
        _db = Database(DATABASE_URL, pool_size=2, max_overflow=2)
        _db_pid = os.getpid()
    return _db


_keys = None
_keys_pid: int | None = None


def _redis():
    global _keys, _keys_pid
    if _keys is None or _keys_pid != os.getpid():
        import redis

        _keys = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
        _keys_pid = os.getpid()
    return _keys


def _clear_waiting(partition: int) -> None:
    """This doorbell is no longer waiting: from now on a new submission must ring again,
    since our claim may come before its jobs commit. Done before claiming, so any job that
    a sender saw covered by this doorbell is visible to our claim."""
    try:
        _redis().delete(jobs.doorbell_key(partition))
    except Exception:  # noqa: BLE001 - the key expires anyway; the relay covers the gap
        log.warning("partition %s: could not clear its doorbell key", partition,
                    exc_info=True)


def _backoff(retries: int) -> float:
    # Exponential with jitter, so workers retrying after one outage do not return together.
    return min(MAX_COUNTDOWN_SECONDS, 0.5 * 2 ** min(retries, 10)) * (0.5 + random.random() / 2)


def ring(partition: int) -> bool:
    """Send the doorbell of ``partition`` unless one is already waiting in its queue (the
    API coalesces the same way). Returns whether one was sent."""
    try:
        fresh = _redis().set(jobs.doorbell_key(partition), 1, nx=True,
                             ex=jobs.DOORBELL_KEY_SECONDS)
    except Exception:  # noqa: BLE001 - ringing without the key only costs a duplicate
        fresh = True
    if fresh:
        post_partition.apply_async((partition,), queue=jobs.queue_name(partition))
    return bool(fresh)


@app.task(bind=True, name="ledger.post", max_retries=None)
def post_partition(self, partition: int) -> str:
    """Post the pending jobs of one partition, a batch per transaction, until none is left
    (or the drain budget runs out)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    done = []
    _clear_waiting(partition)
    while True:
        try:
            result = jobs.work_partition(database(), partition, limit=BATCH)
        except Exception as exc:
            # The batch rolled back and its jobs stay pending: retry until the fault is
            # gone. A fault that is not transient (code deployed before its migration, a
            # bug) stops this partition, loudly, rather than fail jobs that did nothing
            # wrong.
            if jobs.is_transient(exc):
                log.warning("partition %s: transient failure, retrying: %s", partition, exc)
            else:
                log.error("partition %s: posting failed; its jobs stay pending and are "
                          "retried", partition, exc_info=exc)
            raise self.retry(exc=exc, countdown=_backoff(self.request.retries),
                             queue=jobs.queue_name(partition))
        if result.busy:
            if self.request.retries < BUSY_RETRIES:
                raise self.retry(countdown=0.2 * 2 ** self.request.retries,
                                 queue=jobs.queue_name(partition))
            return str(result)
        done.append(result)
        if not result.more:
            break
        if time.monotonic() > deadline:
            ring(partition)
            break
    posted = sum(r.posted for r in done)
    failed = sum(r.failed for r in done)
    return f"partition {partition}: {posted} posted, {failed} failed"


@app.task(name="ledger.relay")
def relay() -> list[int]:
    """Ring the doorbell of every partition with a job pending too long: its message was
    lost (crash between commit and send, flushed Redis, a worker killed mid-batch)."""
    after = float(os.environ.get("LEDGER_RELAY_AFTER_SECONDS", 30))
    stale = jobs.stale_partitions(database(), timedelta(seconds=after))
    # A partition whose doorbell is still waiting (a long backlog) is not rung again; one
    # whose doorbell was lost has no key left after at most DOORBELL_KEY_SECONDS.
    rung = [p for p in stale if ring(p)]
    if rung:
        log.info("relay rang partitions %s", rung)
    return rung


@app.task(name="ledger.rollup")
def rollup(limit: int = 50_000, budget_seconds: float = 5.0) -> int:
    """Fold pending balance deltas of eventually consistent accounts into their balances."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        folded = database().run(lambda conn: posting.rollup(conn, limit=limit))
        total += folded
        if folded < limit or time.monotonic() > deadline:
            return total


@app.task(name="ledger.prune")
def prune() -> int:
    days = float(os.environ.get("LEDGER_JOB_RETENTION_DAYS", 7))
    return jobs.prune_finished(database(), timedelta(days=days))

