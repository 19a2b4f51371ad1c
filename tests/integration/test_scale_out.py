"""Scale-out on one machine (issue 14): two API processes and four Celery worker processes,
each worker consuming four of the sixteen partition queues through its settings
(``LEDGER_WORKER_PARTITIONS``), the first one also the maintenance queue and beat.

Submission order within a partition, no double posting and nothing lost are checked by
replaying each user's jobs (see conftest: a user's jobs share a partition). Then one worker
is killed with SIGKILL while it posts: its partitions wait, pending, while the others keep
posting, until it comes back and posts them, even when its doorbells were lost with it.
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from ledger import service
from ledger.jobs import model as jobs
from ledger.settings import Settings
from tests.integration.conftest import REPO, Worker, user_path
from tests.serving import free_port

pytestmark = pytest.mark.slow

PARTITIONS = 16
# Worker i consumes GROUPS[i]; the first also the maintenance queue (relay, rollup) and beat.
GROUPS = [range(0, 4), range(4, 8), range(8, 12), range(12, 16)]
KILLED = 2
USERS_PER_PARTITION = 4
SUBMITTERS = 4
REQUEST_SIZE = 250


class ApiProcess:
    """One `uvicorn api.app:app_from_env` process of its own, as on a separate machine."""

    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_healthy(self, timeout: float = 60) -> "ApiProcess":
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log.close()


def partition_of_user(user: str) -> int:
    return jobs.partition_of(user_path(user), PARTITIONS)


def users_by_partition() -> dict[int, list[str]]:
    """USERS_PER_PARTITION user names for every partition, so every worker has work."""
    found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    i = 0
    while any(len(u) < USERS_PER_PARTITION for u in found.values()):
        user = f"u{i}"
        i += 1
        users = found[partition_of_user(user)]
        if len(users) < USERS_PER_PARTITION:
            users.append(user)
    return found


def mixed(prefix: str, users: list[str], count: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [{"ik": f"{prefix}-{i}", "type": "deposit" if rnd.random() < 0.55 else "withdraw",
             "parameters": {"user": rnd.choice(users), "amount": str(rnd.randint(1, 150))}}
            for i in range(count)]


def submit_concurrently(apis: list[ApiProcess], headers: dict, ledger: str,
                        entries: list[dict]) -> None:
    """SUBMITTERS threads, alternating between the API processes, each submitting the
    entries of its own users in list order: a user's jobs are accepted in the order the
    replay assumes, whichever thread or API process accepts the others."""
    users = sorted({e["parameters"]["user"] for e in entries})
    owner = {u: i % SUBMITTERS for i, u in enumerate(users)}
    shares = [[e for e in entries if owner[e["parameters"]["user"]] == c]
              for c in range(SUBMITTERS)]
    errors: list[str] = []

    def submitter(c: int) -> None:
        api = apis[c % len(apis)]
        with httpx.Client(headers=headers, timeout=120) as http:
            for start in range(0, len(shares[c]), REQUEST_SIZE):
                r = http.post(f"{api.url}/v1/ledgers/{ledger}/entries",
                              json=shares[c][start:start + REQUEST_SIZE])
                if r.status_code != 202:
                    errors.append(f"{api.url}: {r.status_code} {r.text[:300]}")
                    return

    threads = [threading.Thread(target=submitter, args=(c,)) for c in range(SUBMITTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def jobs_by_partition(pipeline, ledger: str) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    with pipeline.db.transaction() as conn:
        for partition, status, n in conn.execute(sa.text(
                "SELECT partition, status, count(*) FROM posting_jobs WHERE ledger_ik = :l "
                "GROUP BY partition, status"), {"l": ledger}):
            out.setdefault(partition, {})[status] = n
    return out


def assert_posted_partitions(worker: Worker, expected: set[int], timeout: float = 10) -> None:
    """The worker drained exactly ``expected``. Polled: a task logs its result after its
    jobs are committed, so the log may trail the database by a moment."""
    deadline = time.monotonic() + timeout
    while (found := posted_partitions(worker)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found == expected, (worker.name, found, expected)


def wait_settled_but(pipeline, ledger: str, orphaned: set[int], timeout: float = 60) -> None:
    """Until no job of a partition outside ``orphaned`` is pending."""
    deadline = time.monotonic() + timeout
    while True:
        counts = jobs_by_partition(pipeline, ledger)
        if all(not c.get(service.PENDING) for p, c in counts.items() if p not in orphaned):
            return
        assert time.monotonic() < deadline, counts
        time.sleep(0.2)


def posted_partitions(worker: Worker) -> set[int]:
    """The partitions whose doorbells this worker's tasks drained (from its log)."""
    text = worker.log_path.read_text(errors="replace")
    return {int(p) for p in re.findall(r"succeeded in [0-9.e-]+s: 'partition (\d+):", text)}


def start_worker(pipeline, index: int, name: str) -> Worker:
    group = GROUPS[index]
    env = {**pipeline.env, "LEDGER_WORKER_PARTITIONS": f"{group[0]}-{group[-1]}",
           "LEDGER_WORKER_MAINTENANCE": "true" if index == 0 else "false"}
    worker = Worker(env=env, log_path=pipeline.tmp / f"{name}.log", queues=[],
                    beat=index == 0, name=name)
    pipeline.workers.append(worker)
    return worker.start()


def test_two_apis_four_workers_sixteen_partitions_and_a_killed_worker(pipeline):
    pipeline.env["LEDGER_PARTITIONS"] = str(PARTITIONS)
    by_partition = users_by_partition()
    users = [u for p in range(PARTITIONS) for u in by_partition[p]]
    ledger = pipeline.new_ledger()
    api_env = {**pipeline.env, "LEDGER_API_PROCESSES": "2"}
    apis = [ApiProcess(api_env, pipeline.tmp / f"api{i}.log") for i in range(2)]
    try:
        with ThreadPoolExecutor(6) as pool:
            workers = list(pool.map(lambda i: start_worker(pipeline, i, f"w{i}"), range(4)))
            for api in apis:
                api.wait_healthy()
        headers = pipeline.api.headers

        # Every worker consumes exactly its four partition queues, the first also the
        # maintenance queue (the settings, not -Q, chose them: the banner lists them).
        prefix = pipeline.env["LEDGER_QUEUE_PREFIX"]
        for i, w in enumerate(workers):
            banner = banner_queues(w, prefix)
            expected = {f"{prefix}.{p}" for p in GROUPS[i]} | (
                {f"{prefix}.maintenance", f"{prefix}.webhooks"} if i == 0 else set())
            assert banner == expected, (w.name, banner)

        # 1. Throughput: everyone busy, order per partition and single posting hold.
        first = mixed("one", users, 4000, seed=14)
        started = time.monotonic()
        submit_concurrently(apis, headers, ledger, first)
        pipeline.wait_finished(ledger, len(first), timeout=90)
        elapsed = time.monotonic() - started
        pipeline.assert_books(ledger, first)
        for i, w in enumerate(workers):
            assert_posted_partitions(w, set(GROUPS[i]))
        print(f"\n4000 jobs accepted by 2 API processes and posted by 4 workers in "
              f"{elapsed:.1f}s ({len(first) / elapsed:.0f} entries/s)")

        # A retried request, sent to the other API process, returns the same jobs.
        again = httpx.post(f"{apis[1].url}/v1/ledgers/{ledger}/entries", json=first[:100],
                           headers=headers, timeout=60)
        assert again.status_code == 202, again.text
        assert [j["ik"] for j in again.json()["jobs"]] == [e["ik"] for e in first[:100]]
        assert len(pipeline.statuses(ledger)) == len(first)

        # 2. SIGKILL one worker, main process and pool child alike (its machine is gone),
        # while the first half of more jobs is being posted: a batch in flight rolls back.
        orphaned = set(GROUPS[KILLED])
        second = mixed("two", users, 3000, seed=15)
        killed = workers[KILLED]
        submit_concurrently(apis, headers, ledger, second[:1500])
        os.killpg(killed.pid, signal.SIGKILL)
        killed.proc.wait(10)
        submit_concurrently(apis, headers, ledger, second[1500:])
        after_kill = sum(1 for e in second[1500:]
                         if partition_of_user(e["parameters"]["user"]) in orphaned)
        assert after_kill > 0

        wait_settled_but(pipeline, ledger, orphaned)
        held = sum(c.get(service.PENDING, 0) for p, c in
                   jobs_by_partition(pipeline, ledger).items() if p in orphaned)
        assert held >= after_kill
        # Past the relay's threshold (2 s) and a few of its rounds (every 1 s): no other
        # worker takes the orphaned partitions; their jobs and doorbells wait.
        time.sleep(4)
        counts = jobs_by_partition(pipeline, ledger)
        assert sum(counts[p].get(service.PENDING, 0) for p in orphaned) == held
        assert all(not c.get(service.PENDING) for p, c in counts.items() if p not in orphaned)
        for i, w in enumerate(workers):
            if i != KILLED:
                assert_posted_partitions(w, set(GROUPS[i]))
        # Its doorbells wait in its queues, or the killed process had taken one: then that
        # message stays unacknowledged in Redis for the visibility timeout (an hour) and its
        # waiting key stops senders and the relay for a minute. Make that the case for every
        # orphaned partition.
        doorbell = service.Doorbell(Settings.from_env(pipeline.env), None, None)
        broker = redis.Redis.from_url(pipeline.env["REDIS_URL"])
        try:
            for p in orphaned:
                broker.delete(f"{prefix}.{p}")
                broker.set(doorbell.waiting_key(p), 1, ex=60)
        finally:
            broker.close()

        # 3. It comes back (same settings), rings its own partitions: everything posts,
        # nothing lost or doubled, long before the waiting keys expire.
        back = start_worker(pipeline, KILLED, "w2-again")
        pipeline.wait_finished(ledger, len(first) + len(second), timeout=30)
        pipeline.assert_books(ledger, first + second)
        assert_posted_partitions(back, orphaned)
    finally:
        for api in apis:
            api.stop()


def banner_queues(worker: Worker, prefix: str) -> set[str]:
    """The queues the worker's startup banner says it consumes."""
    return set(re.findall(rf"\.> ({re.escape(prefix)}\.\S+)", worker.log_path.read_text()))


def test_an_explicit_queue_list_wins_over_the_settings(pipeline):
    prefix = pipeline.env["LEDGER_QUEUE_PREFIX"]
    worker = Worker(env={**pipeline.env, "LEDGER_WORKER_PARTITIONS": "0-3"},
                    log_path=pipeline.tmp / "explicit.log", queues=[f"{prefix}.9"],
                    name="explicit")
    pipeline.workers.append(worker)
    worker.start()
    assert banner_queues(worker, prefix) == {f"{prefix}.9"}
