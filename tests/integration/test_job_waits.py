"""A request that waits for its jobs (REST ``Prefer: wait``) is woken by the notification of
the transaction that finishes them (ledger/jobs/waiting.py), not by looking every few
milliseconds; a missed notification only costs it the fallback's look."""
from __future__ import annotations

import threading
import time
import weakref

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.jobs import model as jobs
from ledger.jobs import waiting
from ledger.jobs.claims import work_partition
from ledger.jobs.outbox import _jobs_by_id
from tests.integration.helpers import new_ledger, seed000_schema

PARTITIONS = 4


def _deposit(ik: str, user: str) -> dict:
    return {"ik": ik, "type": "deposit", "parameters": {"user_id": user, "amount": "5"}}


@pytest.fixture
def no_fallback(monkeypatch):
    """A wait that relies on notifications alone: its fallback look comes after the test."""
    monkeypatch.setattr(waiting, "LISTENING_LOOK", 60.0)


def _accepted(db, unique, n: int = 3) -> tuple[str, list[jobs.Job]]:
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    submission = service.submit_entries(db, ledger, [_deposit(unique("ik"), unique("u"))
                                                     for _ in range(n)],
                                        partitions=PARTITIONS)
    assert {j.status for j in submission.jobs} == {jobs.PENDING}
    return ledger, submission.jobs


def _wait_in_thread(db, pending, seconds=30.0):
    out: dict = {}

    def run():
        started = time.monotonic()
        out["jobs"] = service.wait_for_jobs(db, pending, seconds)
        out["seconds"] = time.monotonic() - started
    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _listener_backends(db) -> list[int]:
    with db.transaction() as conn:
        return list(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = :q"), {"q": "LISTEN " + jobs.FINISHED_CHANNEL}).scalars())


def test_a_wait_is_woken_when_its_jobs_are_posted(db, unique, no_fallback):
    _, pending = _accepted(db, unique)
    listener = waiting.listener_of(db)
    thread, out = _wait_in_thread(db, pending)
    _until(lambda: listener.listening)
    time.sleep(0.1)  # the wait is asleep now, until a notification or its 60 s look
    for partition in sorted({j.partition for j in pending}):
        work_partition(db, partition)
    thread.join(20)
    assert not thread.is_alive() and out["seconds"] < 10, out
    assert {j.status for j in out["jobs"]} == {jobs.POSTED}


def _notify(db, partition: int) -> None:
    with db.transaction() as conn:  # what a transaction finishing jobs there sends
        conn.execute(sa.text("SELECT pg_notify(:c, :p)"),
                     {"c": jobs.FINISHED_CHANNEL, "p": str(partition)})


def test_only_a_notification_of_its_own_partition_wakes_a_wait(db, unique, no_fallback):
    _, pending = _accepted(db, unique, n=1)
    mine = pending[0].partition
    listener = waiting.listener_of(db)
    reads: list = []

    def read(ids):
        reads.append(ids)
        return _jobs_by_id(db, ids)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(
        jobs=listener.wait_for(read, pending, 30)))
    thread.start()
    _until(lambda: listener.listening)
    time.sleep(0.3)  # past any look it made before: asleep until a notification
    seen = len(reads)
    _notify(db, (mine + 1) % PARTITIONS)
    time.sleep(0.5)
    assert len(reads) == seen, "woken by another partition's notification"
    _notify(db, mine)
    _until(lambda: len(reads) > seen, 5)
    work_partition(db, mine)  # its job posted: the next notification ends the wait
    thread.join(20)
    assert not thread.is_alive() and {j.status for j in out["jobs"]} == {jobs.POSTED}


def test_a_wait_outlives_its_listener_losing_the_connection(db, unique, no_fallback):
    """The listener's backend is killed and the jobs are posted while nobody listens: the
    listener reconnects, every wait looks again, and the wait ends with its jobs posted."""
    _, pending = _accepted(db, unique)
    listener = waiting.listener_of(db)
    thread, out = _wait_in_thread(db, pending)
    _until(lambda: listener.listening)
    opened = listener.connections
    with db.transaction() as conn:
        for pid in _listener_backends(db):
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    _until(lambda: not listener.listening)
    for partition in sorted({j.partition for j in pending}):
        work_partition(db, partition)
    thread.join(20)
    assert not thread.is_alive() and out["seconds"] < 15, out
    assert {j.status for j in out["jobs"]} == {jobs.POSTED}
    assert listener.connections > opened and listener.listening


def test_the_listener_lets_go_of_its_connection_once_nobody_waits(db, unique):
    _, pending = _accepted(db, unique, n=1)
    for partition in {j.partition for j in pending}:
        work_partition(db, partition)
    listener = waiting.Listener(lambda: waiting._listen_connection(weakref.ref(db)),
                                idle_seconds=0.3)
    # ``pending`` is what the request saw when it accepted the jobs: one look finds them
    # posted.
    [job] = listener.wait_for(lambda ids: _jobs_by_id(db, ids), pending, 5)
    assert job.status == jobs.POSTED
    _until(lambda: listener._thread is None and not listener.listening)
    assert listener.connections == 1


def test_a_wait_of_no_time_answers_at_once(db, unique):
    _, pending = _accepted(db, unique, n=1)
    listener = waiting.Listener(lambda: waiting._listen_connection(weakref.ref(db)))
    reads: list = []
    assert listener.wait_for(lambda ids: reads.append(ids) or [], pending, 0) == pending
    assert reads == [] and listener._thread is None and listener.connections == 0
