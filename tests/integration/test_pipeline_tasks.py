"""The doorbell task's retry policy, run in-process (Celery's eager apply) on this run's
database: a transient fault leaves the jobs pending and is retried with growing backoff."""
from __future__ import annotations

import pytest

from ledger import service
from ledger.settings import Settings
from ledger.errors import InternalError


@pytest.fixture
def tasks(monkeypatch, database_url, redis_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    from workers import tasks

    return tasks


def test_transient_failure_is_retried_with_backoff_and_jobs_stay_pending(
        tasks, pipeline, monkeypatch):
    ledger = pipeline.new_ledger()
    entries = [{"ik": f"t-{i}", "type": "deposit", "parameters": {"user": "x", "amount": "3"}}
               for i in range(10)]
    [partition] = {j.partition for j in service.submit_entries(pipeline.db, ledger, entries, partitions=Settings.from_env().partitions).jobs}

    real = service.work_partition
    calls = []

    def flaky(db, p, **kw):
        calls.append(p)
        if len(calls) <= 3:
            assert set(pipeline.statuses(ledger).values()) == {service.PENDING}
            raise InternalError("database_unavailable", "the database went away")
        return real(db, p, **kw)

    countdowns = []
    retry = tasks.post_partition.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        assert kwargs.get("queue") == Settings.from_env().queue_name(partition)
        return retry(*args, **kwargs)

    monkeypatch.setattr(tasks.service, "work_partition", flaky)
    monkeypatch.setattr(tasks.post_partition, "retry", recording_retry)
    result = tasks.post_partition.apply(args=(partition,))
    assert result.successful(), result.traceback
    assert set(pipeline.statuses(ledger).values()) == {service.POSTED}
    assert len(countdowns) == 3
    # Exponential with jitter: each wait's range is above the previous one's floor.
    assert 0.25 <= countdowns[0] <= 0.5 and 0.5 <= countdowns[1] <= 1 \
        and 1 <= countdowns[2] <= 2


def test_relay_finds_old_pending_jobs_and_prune_deletes_old_finished_ones(tasks, pipeline):
    import sqlalchemy as sa
    from datetime import timedelta

    ledger = pipeline.new_ledger()
    entries = [{"ik": f"old-{i}", "type": "deposit",
                "parameters": {"user": f"o{i}", "amount": "1"}} for i in range(20)]
    submitted = service.submit_entries(pipeline.db, ledger, entries, partitions=Settings.from_env().partitions).jobs
    partitions = {j.partition for j in submitted}
    # As if accepted long ago, and never rung (a doorbell lost).
    with pipeline.db.transaction() as conn:
        conn.execute(sa.text("UPDATE posting_jobs SET created = created - interval '30 days' "
                             "WHERE ledger_ik = :l"), {"l": ledger})
    stale = set(service.stale_partitions(pipeline.db, timedelta(seconds=30)))
    assert partitions <= stale

    for partition in partitions:
        tasks.post_partition.apply(args=(partition,))
    assert set(pipeline.statuses(ledger).values()) == {service.POSTED}
    with pipeline.db.transaction() as conn:
        conn.execute(sa.text("UPDATE posting_jobs SET finished = finished - interval '9 days' "
                             "WHERE ledger_ik = :l AND ik <> 'old-0'"), {"l": ledger})
    assert tasks.prune.apply().get() >= 19
    assert list(pipeline.statuses(ledger)) == ["old-0"], "only jobs past retention go"
