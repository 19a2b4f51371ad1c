"""The asynchronous posting pipeline end to end: the REST API accepts jobs, real Celery
worker processes post them through the engine, PostgreSQL and Redis are real.

Correctness is checked against a replay: every entry guards the user account it touches,
so a user's jobs share a partition and, if they post in submission order, exactly the jobs
the replay predicts post and the others fail with ``condition_failed``.
"""
from __future__ import annotations

import json
import random
import time

import httpx
import pytest
import sqlalchemy as sa

from ledger import service
from ledger.jobs import model as jobs
from ledger.settings import Settings
from ledger.service import EntryRequest
from tests.integration.conftest import user_path

pytestmark = pytest.mark.slow


def workload(prefix: str, count: int, users: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [{"ik": f"{prefix}-{i}",
             "type": "deposit" if rnd.random() < 0.55 else "withdraw",
             "parameters": {"user": f"u{rnd.randrange(users)}",
                            "amount": str(rnd.randint(1, 150))}}
            for i in range(count)]


def partition_of_user(user: str) -> int:
    return jobs.partition_of(user_path(user), Settings.from_env().partitions)


def test_5000_jobs_over_50_accounts(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("big", 5000, 50, seed=5)
    pipeline.worker(concurrency=2)

    started = time.monotonic()
    accepted = pipeline.submit_all(ledger, entries, batch=500)
    assert [j["ik"] for j in accepted] == [e["ik"] for e in entries]
    assert {j["status"] for j in accepted} <= {jobs.PENDING, jobs.POSTED, jobs.FAILED}

    statuses = pipeline.wait_finished(ledger, 5000, timeout=150)
    elapsed = time.monotonic() - started
    failed = [ik for ik, s in statuses.items() if s == jobs.FAILED]
    assert 0 < len(failed) < 5000
    pipeline.assert_books(ledger, entries)

    # Every failure is the engine's typed refusal, never a crash of the pipeline.
    page = service.list_jobs(pipeline.db, ledger, jobs.FAILED, first=500)
    assert {j.error["code"] for j in page.jobs} == {"condition_failed"}
    assert all(j.error["__typename"] == "BadRequestError" for j in page.jobs)
    print(f"5000 jobs, {len(failed)} refused by conditions, in {elapsed:.1f}s")


def test_submission_is_validated_and_idempotent(pipeline):
    ledger = pipeline.new_ledger()
    good = {"ik": "ok-1", "type": "deposit", "parameters": {"user": "a", "amount": "10"}}
    bad = {"ik": "bad-1", "type": "deposit", "parameters": {"user": "a"}}

    r = pipeline.api.submit(ledger, [good, bad])
    assert r.status_code == 422
    error = r.json()
    assert error["code"] == "missing_parameter"
    assert error["field"] == "entries[1].parameters.amount" and error["index"] == 1
    assert pipeline.statuses(ledger) == {}, "nothing of a refused request is accepted"

    r = pipeline.api.submit(ledger, [good, {**good, "ik": "ok-2", "parameters": {
        "user": "a", "amount": "1.5"}}])
    assert r.status_code == 422 and r.json()["field"] == "entries[1].parameters.amount"

    # Text PostgreSQL cannot store is refused here: accepted, it would fail its worker's
    # whole batch on every retry. (JSON escapes, sent as raw text.)
    for field, value in (("note", "a\\u0000b"), ("note", "\\ud800")):
        raw = ('[' + json.dumps(good) + ', {"ik": "ok-2", "type": "deposit", "parameters": '
               '{"user": "a", "amount": "1", "' + field + '": "' + value + '"}}]')
        r = httpx.post(f"{pipeline.api.url}/v1/ledgers/{ledger}/entries", content=raw,
                       headers={**pipeline.api.headers, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == f"entries[1].parameters.{field}"
        assert "cannot be stored" in r.json()["message"]
    assert pipeline.statuses(ledger) == {}
    # An account path too long to index would fail the worker's batch on every retry.
    r = pipeline.api.submit(ledger, [good, {**good, "ik": "ok-2", "parameters": {
        "user": "u" * 2000, "amount": "1"}}])
    assert r.status_code == 422 and r.json()["field"] == "entries[1].parameters.user"
    assert pipeline.statuses(ledger) == {}

    first = pipeline.api.submit(ledger, good)
    assert first.status_code == 202
    [job] = first.json()["jobs"]
    again = pipeline.api.submit(ledger, [good])
    assert again.json()["jobs"][0]["id"] == job["id"]
    conflict = pipeline.api.submit(ledger, [{**good, "parameters": {"user": "a",
                                                                    "amount": "11"}}])
    assert conflict.status_code == 422 and conflict.json()["code"] == "ik_conflict"

    # Jobs wait for a worker; with one running, Prefer: wait answers once they are posted.
    pipeline.worker()
    waited = pipeline.api.submit(ledger, [{**good, "ik": "ok-3"}], wait=20)
    assert waited.status_code == 200, waited.text
    assert waited.headers["preference-applied"] == "wait=20"
    [done] = waited.json()["jobs"]
    assert done["status"] == jobs.POSTED and done["entry"]["id"]

    h = pipeline.api.headers
    got = httpx.get(f"{pipeline.api.url}/v1/jobs/{job['id']}", headers=h).json()
    assert got["status"] == jobs.POSTED and got["ledger"]["ik"] == ledger
    listed = httpx.get(f"{pipeline.api.url}/v1/ledgers/{ledger}/jobs",
                       params={"status": "posted", "first": 1}, headers=h).json()
    assert len(listed["jobs"]) == 1 and listed["pageInfo"]["hasNextPage"]
    rest = httpx.get(f"{pipeline.api.url}/v1/ledgers/{ledger}/jobs",
                     params={"status": "posted", "after": listed["pageInfo"]["endCursor"]},
                     headers=h).json()
    assert {j["ik"] for j in listed["jobs"] + rest["jobs"]} == {"ok-1", "ok-3"}
    assert httpx.get(f"{pipeline.api.url}/v1/jobs/{job['id']}").status_code == 401


def test_duplicate_doorbells_and_two_workers_on_one_partition(pipeline):
    ledger = pipeline.new_ledger()
    # Every job on the users of one partition, so both workers fight over it.
    target = partition_of_user("u0")
    users = [u for u in (f"u{i}" for i in range(400)) if partition_of_user(u) == target][:6]
    rnd = random.Random(11)
    entries = [{"ik": f"dup-{i}", "type": "deposit" if rnd.random() < 0.55 else "withdraw",
                "parameters": {"user": rnd.choice(users), "amount": str(rnd.randint(1, 150))}}
               for i in range(1200)]
    # Small batches: many transactions, many chances for the two workers to collide.
    a = pipeline.worker(partitions=[target], LEDGER_BATCH=25)
    b = pipeline.worker(partitions=[target], LEDGER_BATCH=25)
    pipeline.submit_all(ledger, entries, batch=200)
    pipeline.ring(target, times=200)

    pipeline.wait_finished(ledger, len(entries), timeout=120)
    pipeline.assert_books(ledger, entries)
    # Both really consumed the queue (the database lock, not luck, kept them apart).
    for w in (a, b):
        assert "ledger.post" in w.log_path.read_text()


def test_poison_job_fails_alone(pipeline):
    ledger = pipeline.new_ledger()
    # Passes submission (no job has this ik yet) but can never post: the ik was already
    # used, synchronously, for a different request.
    service.add_ledger_entry(pipeline.db, ledger, EntryRequest(
        ik="poison", type="deposit", parameters={"user": "p", "amount": "7"}))
    entries = [{"ik": f"ok-{i}", "type": "deposit", "parameters": {"user": "p", "amount": "5"}}
               for i in range(40)]
    entries.insert(20, {"ik": "poison", "type": "deposit",
                        "parameters": {"user": "p", "amount": "8"}})
    accepted = pipeline.submit_all(ledger, entries)
    assert {j["status"] for j in accepted} == {jobs.PENDING}  # no worker yet: one batch

    pipeline.worker()
    statuses = pipeline.wait_finished(ledger, len(entries), timeout=60)
    assert statuses.pop("poison") == jobs.FAILED
    assert set(statuses.values()) == {jobs.POSTED}
    poison = next(j for j in service.list_jobs(pipeline.db, ledger, jobs.FAILED).jobs)
    assert poison.error["code"] == "ik_conflict"
    assert not poison.error["message"].startswith("entries[")
    assert service.account_balances(pipeline.db, ledger, user_path("p")).own["USD"] == 7 + 40 * 5
    with pipeline.db.transaction() as conn:
        batches = conn.execute(sa.text(
            "SELECT count(DISTINCT finished) FROM posting_jobs WHERE ledger_ik = :l"),
            {"l": ledger}).scalar()
    assert batches <= 2, "the poison job should have been claimed with the rest"
