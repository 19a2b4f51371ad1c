"""Faults of the asynchronous pipeline: workers killed with SIGKILL mid-batch, a Redis that
loses every message. Nothing accepted may be lost, nothing may post twice, and order holds
(checked by replaying each user's jobs, see conftest)."""
from __future__ import annotations

import re
import signal
import time

import psutil
import pytest
import redis
import sqlalchemy as sa

from ledger.jobs import model as jobs
from tests.conftest import REDIS_CLAIM_KEY
from tests.integration.test_pipeline import workload

pytestmark = pytest.mark.slow

LOCK_NAMESPACE = 0x4C4A  # ledger.jobs.claims._LOCK_NAMESPACE: held while a batch is being posted


def counts(pipeline, ledger: str) -> dict[str, int]:
    out = {jobs.PENDING: 0, jobs.POSTED: 0, jobs.FAILED: 0}
    with pipeline.db.transaction() as conn:
        out.update(conn.execute(sa.text(
            "SELECT status, count(*) FROM posting_jobs WHERE ledger_ik = :l GROUP BY status"),
            {"l": ledger}).all())
    return out


def wait_mid_batch(pipeline, ledger: str, timeout: float = 60) -> None:
    """Return while a batch transaction is open (its partition lock is held) and some, not
    all, jobs are finished: a SIGKILL now lands in the middle of a batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pipeline.db.transaction() as conn:
            locked = conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :ns AND granted"), {"ns": LOCK_NAMESPACE}).scalar()
        c = counts(pipeline, ledger)
        if locked and c[jobs.PENDING] and (c[jobs.POSTED] + c[jobs.FAILED]):
            return
        time.sleep(0.01)
    raise AssertionError(f"never caught the worker mid-batch: {counts(pipeline, ledger)}")


def received_twice(worker) -> set[str]:
    """Ids of tasks the worker received more than once (a message given back to Redis)."""
    seen: dict[str, int] = {}
    for line in worker.log_path.read_text().splitlines():
        m = re.search(r"Task ledger\.post\[([0-9a-f-]+)\] received", line)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
    return {task for task, n in seen.items() if n > 1}


def test_sigkill_of_the_pool_child_mid_batch(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("kchild", 1000, 30, seed=21)
    # One request: one doorbell per partition, so the doorbell the killed child held is
    # the only one its partition gets, and no relay runs in this test.
    pipeline.submit_all(ledger, entries, batch=1000)
    worker = pipeline.worker(LEDGER_BATCH=40)
    wait_mid_batch(pipeline, ledger)
    [child] = worker.children()
    child.send_signal(signal.SIGKILL)
    assert counts(pipeline, ledger)[jobs.PENDING] > 0

    # The main process replaces its child and gives the message back to the broker
    # (acks_late + reject_on_worker_lost); redelivered, it posts the rest.
    pipeline.wait_finished(ledger, len(entries), timeout=120)
    assert worker.proc.poll() is None
    assert "WorkerLostError" in worker.log_path.read_text()
    # The worker's own start-up ring may have drained the partition first; the killed
    # message still comes back, perhaps only after that.
    deadline = time.monotonic() + 60
    while not received_twice(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert received_twice(worker), "the killed task's message was not redelivered"
    pipeline.assert_books(ledger, entries)


def test_sigkill_of_the_main_process_then_restart(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("kmain", 1000, 30, seed=22)
    pipeline.submit_all(ledger, entries, batch=1000)
    worker = pipeline.worker(LEDGER_BATCH=40)
    wait_mid_batch(pipeline, ledger)
    children = worker.children()
    worker.kill_main()
    # Whatever the orphaned pool child does now (finish its batch, or die with its
    # parent's pipe), a batch commits whole or not at all. Then the rest of the machine
    # goes too.
    time.sleep(0.5)
    worker.stop(timeout=0)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert counts(pipeline, ledger)[jobs.PENDING] > 0

    # The doorbell the dead worker held stays unacknowledged in Redis until the visibility
    # timeout (an hour); the relay of the restarted worker's beat re-rings at once.
    pipeline.worker(beat=True)
    pipeline.wait_finished(ledger, len(entries), timeout=120)
    pipeline.assert_books(ledger, entries)


def test_redis_flushed_while_jobs_pending_relay_recovers(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("flush", 1000, 30, seed=23)
    pipeline.submit_all(ledger, entries)
    client = redis.Redis.from_url(pipeline.env["REDIS_URL"])
    try:
        # Every doorbell gone (the run's claim on this Redis database stays, so no other
        # test run takes the database over meanwhile).
        keys = [k for k in client.keys("*") if k != REDIS_CLAIM_KEY.encode()]
        assert keys, "the API should have rung doorbells"
        client.delete(*keys)
        assert set(client.keys("*")) <= {REDIS_CLAIM_KEY.encode()}
    finally:
        client.close()
    assert counts(pipeline, ledger)[jobs.PENDING] == len(entries)

    pipeline.worker(beat=True)
    pipeline.wait_finished(ledger, len(entries), timeout=90)
    pipeline.assert_books(ledger, entries)


def test_database_connection_lost_mid_batch_is_retried(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("conn", 1000, 30, seed=24)
    pipeline.submit_all(ledger, entries, batch=1000)
    worker = pipeline.worker(LEDGER_BATCH=40)
    wait_mid_batch(pipeline, ledger)
    # The server ends the worker's session in the middle of its batch transaction: the
    # batch rolls back and is run again (by the database retry loop, or by the task's
    # retry with backoff once that gives up), the jobs staying pending meanwhile.
    with pipeline.db.transaction() as conn:
        ended = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = :ns AND granted"), {"ns": LOCK_NAMESPACE}).scalar()
    assert ended >= 1
    pipeline.wait_finished(ledger, len(entries), timeout=120)
    assert worker.proc.poll() is None
    pipeline.assert_books(ledger, entries)
