"""`Prefer: wait`: the waiting request posts its jobs' partitions itself (the workers' own
`work_in`, in the transaction that accepts the jobs), so a lone job does not wait for a
broker hop and a worker's turn; order, the single consumer per partition and nothing-lost
hold as for the workers."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import BadRequestError, InternalError
from ledger.jobs import model as jobs
from ledger.settings import Settings
from tests.integration.test_pipeline import partition_of_user

LOCK_NAMESPACE = 0x4C4A  # ledger.jobs.claims._LOCK_NAMESPACE


def _deposit(ik: str, user: str, amount: int) -> dict:
    return {"ik": ik, "type": "deposit", "parameters": {"user": user, "amount": str(amount)}}


def _withdraw(ik: str, user: str, amount: int) -> dict:
    return {"ik": ik, "type": "withdraw", "parameters": {"user": user, "amount": str(amount)}}


def test_a_waiting_request_posts_its_partition_in_order_without_a_worker(pipeline):
    ledger = pipeline.new_ledger()
    # Accepted earlier, no worker running: pending ahead of the waiting request's job.
    first = pipeline.api.submit(ledger, [_deposit("w-dep", "wu", 5)])
    assert first.status_code == 202 and first.json()["jobs"][0]["status"] == jobs.PENDING

    # The withdrawal passes its gte 0 condition only if the deposit posts first.
    waited = pipeline.api.submit(ledger, [_withdraw("w-out", "wu", 5)], wait=10)
    assert waited.status_code == 200, waited.text
    [job] = waited.json()["jobs"]
    assert job["status"] == jobs.POSTED and job["entry"]["id"]
    assert pipeline.statuses(ledger) == {"w-dep": jobs.POSTED, "w-out": jobs.POSTED}

    refused = pipeline.api.submit(ledger, [_withdraw("w-over", "wu", 1)], wait=10)
    assert refused.status_code == 200, refused.text
    [job] = refused.json()["jobs"]
    assert job["status"] == jobs.FAILED and job["error"]["code"] == "condition_failed"
    assert service.audit(pipeline.db, ledger) == []


def test_a_partition_a_worker_holds_is_left_to_it(pipeline):
    ledger = pipeline.new_ledger()
    partition = partition_of_user("busy-u")
    holder = pipeline.db.engine.connect()
    try:
        with holder.begin():
            # What a worker's batch holds while it posts the partition.
            assert holder.execute(sa.text("SELECT pg_try_advisory_xact_lock(:ns, :p)"),
                                  {"ns": LOCK_NAMESPACE, "p": partition}).scalar()
            started = time.monotonic()
            r = pipeline.api.submit(ledger, [_deposit("b-1", "busy-u", 3)], wait=1)
            assert r.status_code == 202, r.text
            assert time.monotonic() - started >= 0.9  # it waited, and posted nothing
            assert pipeline.statuses(ledger) == {"b-1": jobs.PENDING}
    finally:
        holder.close()
    pipeline.worker()
    pipeline.wait_finished(ledger, 1, timeout=60)
    assert pipeline.statuses(ledger) == {"b-1": jobs.POSTED}
    assert service.audit(pipeline.db, ledger) == []


@pytest.mark.parametrize("fault", [
    InternalError("database_unavailable", "the database went away"),
    RuntimeError("a bug in posting"),
])
def test_a_failing_drain_leaves_the_jobs_to_the_workers(pipeline, monkeypatch, fault):
    from ledger.jobs import outbox

    ledger = pipeline.new_ledger()
    calls = []

    def broken(conn, db, partition, **kw):
        calls.append(partition)
        raise fault

    monkeypatch.setattr(outbox, "work_in", broken)
    rung = []
    submission = service.submit_entries(pipeline.db, ledger, [_deposit("f-1", "fu", 2)],
                                        partitions=Settings.from_env().partitions, wait=0.3,
                                        after_commit=rung.append)
    assert calls, "the waiting caller never tried to post"
    # Accepted all the same (the posting's fault is not the submission's), and rung.
    assert [j.status for j in submission.jobs] == [jobs.PENDING]
    assert pipeline.statuses(ledger) == {"f-1": jobs.PENDING}
    assert rung == [submission.pending_partitions]


def test_a_bad_submission_is_refused_whole_while_waiting(pipeline):
    ledger = pipeline.new_ledger()
    with pytest.raises(BadRequestError) as refused:
        service.submit_entries(pipeline.db, ledger,
                               [_deposit("g-1", "gu", 2), {"ik": "g-2", "type": "nope"}],
                               partitions=Settings.from_env().partitions, wait=1)
    assert refused.value.field.startswith("entries[1]")
    assert pipeline.statuses(ledger) == {}


def test_a_lone_waiting_job_is_accepted_and_posted_in_one_transaction(pipeline):
    ledger = pipeline.new_ledger()
    service.submit_entries(pipeline.db, ledger, [_deposit("c-0", "cu", 1)],
                           partitions=Settings.from_env().partitions, wait=10)
    commits = []
    listener = lambda conn: commits.append(conn)  # noqa: E731
    sa.event.listen(pipeline.db.engine, "commit", listener)
    try:
        submission = service.submit_entries(pipeline.db, ledger, [_deposit("c-1", "cu", 2)],
                                            partitions=Settings.from_env().partitions,
                                            wait=10)
    finally:
        sa.event.remove(pipeline.db.engine, "commit", listener)
    assert [j.status for j in submission.jobs] == [jobs.POSTED]
    assert len(commits) == 1
    assert service.audit(pipeline.db, ledger) == []


def test_what_a_waiting_caller_posts_is_observed(pipeline):
    ledger = pipeline.new_ledger()
    seen = []
    submission = service.submit_entries(
        pipeline.db, ledger, [_deposit("o-1", "ou", 2), _withdraw("o-2", "ou", 9)],
        partitions=Settings.from_env().partitions, wait=10, observe=seen.append)
    assert [j.status for j in submission.jobs] == [jobs.POSTED, jobs.FAILED]
    assert sum(r.posted for r in seen) == 1 and sum(r.failed for r in seen) == 1


def test_while_one_caller_posts_the_others_leave_their_jobs_to_the_workers(pipeline,
                                                                             monkeypatch):
    from ledger.jobs import outbox

    ledger = pipeline.new_ledger()
    calls = []
    monkeypatch.setattr(outbox, "work_partition", lambda *a, **k: calls.append(a))
    assert outbox._DRAINING.acquire(blocking=False)  # another request of this process posts
    try:
        rung = []
        submission = service.submit_entries(
            pipeline.db, ledger, [_deposit("s-1", "su", 2)],
            partitions=Settings.from_env().partitions, wait=0.3, after_commit=rung.append)
    finally:
        outbox._DRAINING.release()
    assert calls == [] and [j.status for j in submission.jobs] == [jobs.PENDING]
    assert rung == [submission.pending_partitions]  # the workers were woken at once
