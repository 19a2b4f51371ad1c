"""Fixtures of the asynchronous pipeline tests: real `celery worker` processes on this run's
database and Redis, the real API (uvicorn, in a thread) to submit through, and a wallet
schema whose every entry guards the user account it touches, so the outcome of every job
can be predicted by replaying each account's jobs in submission order.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from api.app import create_app
from ledger import clients, service
from ledger.settings import Settings
from tests.keys import SECRET_KEY
from tests.serving import serve

REPO = Path(__file__).resolve().parents[2]

# Deposits may not take a user past CAP, withdrawals not below zero: both conditions sit
# on the user's own account, so all of a user's jobs share one partition (the guarded
# account is the partition key) and their outcomes depend only on their order. The bank is
# eventually consistent: every job touches it, and it must not serialize them.
CAP = 1000
PIPELINE_SCHEMA = {
    "key": "pipeline",
    "chartOfAccounts": {
        "assets": {"bank": {"consistencyConfig": {"ownBalanceUpdates": "eventual"}}},
        "liabilities": {"users": {"template": True, "available": {}}},
    },
    "ledgerEntries": {"types": [
        {"type": "deposit",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "{{amount}}"}],
         "conditions": [
             {"account": {"path": "liabilities/users:{{user}}/available"},
              "postcondition": {"ownBalance": {"lte": str(CAP)}}}]},
        {"type": "withdraw",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "-{{amount}}"}],
         "conditions": [
             {"account": {"path": "liabilities/users:{{user}}/available"},
              "postcondition": {"ownBalance": {"gte": "0"}}}]},
    ]},
}


def user_path(user: str) -> str:
    return f"liabilities/users:{user}/available"


def expected_outcomes(entries: list[dict]) -> tuple[dict[str, str], dict[str, int]]:
    """Replay ``entries`` in order, one user at a time: which are posted, which fail, and
    each user's final balance. Only true if each user's jobs posted in submission order."""
    balance: dict[str, int] = {}
    status: dict[str, str] = {}
    for e in entries:
        user, amount = e["parameters"]["user"], int(e["parameters"]["amount"])
        after = balance.get(user, 0) + (amount if e["type"] == "deposit" else -amount)
        if 0 <= after <= CAP:
            balance[user] = after
            status[e["ik"]] = service.POSTED
        else:
            balance.setdefault(user, 0)
            status[e["ik"]] = service.FAILED
    return status, balance


# ---------------------------------------------------------------------------- workers

@dataclass
class Worker:
    """One `celery -A workers.app worker` process tree, started in its own session so the
    test can kill exactly it (and its pool children) whatever state it is in."""

    env: dict
    log_path: Path
    queues: list[str]
    concurrency: int = 1
    beat: bool = False
    name: str = "w"
    proc: subprocess.Popen | None = None
    _log: object | None = field(default=None, repr=False)

    def start(self, timeout: float = 60) -> "Worker":
        args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                "--loglevel", "INFO", "--concurrency", str(self.concurrency),
                "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle",
                "--without-heartbeat"]
        # No queues: the worker consumes what its settings name (LEDGER_WORKER_PARTITIONS).
        if self.queues:
            args += ["-Q", ",".join(self.queues)]
        if self.beat:
            args += ["--beat", "--schedule", str(self.log_path.with_suffix(".schedule"))]
        self._log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill_main(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM); whatever is left of the tree after ``timeout`` is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_session()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _kill_session(self) -> None:
        # Orphans of a killed main process stay in its session: end them too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class Api:
    url: str
    token: str
    app: object = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, ledger_ik: str, entries, *, wait: float | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if wait is not None:
            headers["Prefer"] = f"wait={wait:g}"
        return httpx.post(f"{self.url}/v1/ledgers/{ledger_ik}/entries", json=entries,
                          headers=headers, timeout=120)


@dataclass
class Pipeline:
    """What a pipeline test works with: its environment, its workers, the API, the db."""

    db: object
    api: Api
    env: dict
    tmp: Path
    unique: object
    workers: list[Worker] = field(default_factory=list)

    def worker(self, *, partitions: list[int] | None = None, concurrency: int = 1,
               beat: bool = False, maintenance: bool = True, start: bool = True,
               **extra_env) -> Worker:
        settings = Settings.from_env()
        queues = [settings.queue_name(p) for p in (range(settings.partitions) if partitions is None
                                                else partitions)]
        if maintenance:
            queues += [self.env["LEDGER_QUEUE_PREFIX"] + ".maintenance",
                       self.env["LEDGER_QUEUE_PREFIX"] + ".webhooks"]
        name = f"w{len(self.workers)}"
        w = Worker(env={**self.env, **{k: str(v) for k, v in extra_env.items()}},
                   log_path=self.tmp / f"{name}.log", queues=queues,
                   concurrency=concurrency, beat=beat, name=name)
        self.workers.append(w)
        return w.start() if start else w

    def new_ledger(self) -> str:
        doc = dict(PIPELINE_SCHEMA, key=self.unique("pipeline"))
        service.store_schema(self.db, doc)
        ik = self.unique("ledger")
        service.create_ledger(self.db, ik, "Pipeline test", doc["key"])
        return ik

    def submit_all(self, ledger_ik: str, entries: list[dict], batch: int = 500) -> list[dict]:
        out = []
        for start in range(0, len(entries), batch):
            r = self.api.submit(ledger_ik, entries[start:start + batch])
            assert r.status_code == 202, r.text
            out += r.json()["jobs"]
        return out

    def statuses(self, ledger_ik: str) -> dict[str, str]:
        with self.db.transaction() as conn:
            return dict(conn.execute(sa.text(
                "SELECT ik, status FROM posting_jobs WHERE ledger_ik = :l"),
                {"l": ledger_ik}).all())

    def wait_finished(self, ledger_ik: str, count: int, timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses(ledger_ik)
            done = sum(1 for s in statuses.values() if s != service.PENDING)
            if len(statuses) == count and done == count:
                return statuses
            if time.monotonic() > deadline:
                logs = "\n\n".join(f"--- {w.name}\n{w.log_tail()}" for w in self.workers)
                raise AssertionError(f"{count - done} of {count} jobs still pending after "
                                     f"{timeout}s\n{logs}")
            time.sleep(0.2)

    def entry_counts(self, ledger_ik: str) -> dict[str, int]:
        """How many entries each ik has in the books (every posted job must have one)."""
        with self.db.transaction() as conn:
            return dict(conn.execute(sa.text(
                "SELECT e.ik, count(*) FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
                "WHERE l.ik = :l GROUP BY e.ik"), {"l": ledger_ik}).all())

    def roll_up(self, ledger_ik: str, timeout: float = 30) -> None:
        """Fold every delta of the ledger into its balances. A worker's own rollup may hold
        some of them (they are taken with SKIP LOCKED) when ours finds nothing left to
        take: the eventual balances are whole once none of the ledger's deltas is left."""
        deadline = time.monotonic() + timeout
        while True:
            while service.rollup(self.db):
                pass
            with self.db.transaction() as conn:
                left = conn.execute(sa.text(
                    "SELECT count(*) FROM balance_deltas d JOIN ledgers l "
                    "ON l.id = d.ledger_id WHERE l.ik = :l"), {"l": ledger_ik}).scalar()
            if not left:
                return
            assert time.monotonic() < deadline, f"{left} deltas never rolled up"
            time.sleep(0.05)

    def assert_books(self, ledger_ik: str, entries: list[dict]) -> None:
        """Every job finished as replaying its user's jobs in submission order predicts,
        each posted job has exactly one entry, no failed job has any, balances (users
        strong, bank eventual after a rollup) are the sums of the posted lines, and the
        audit finds nothing wrong."""
        expected_status, expected_balance = expected_outcomes(entries)
        actual = self.statuses(ledger_ik)
        wrong = {ik: (actual.get(ik), s) for ik, s in expected_status.items()
                 if actual.get(ik) != s}
        assert not wrong, f"{len(wrong)} jobs finished out of order, e.g. " \
                          f"{list(wrong.items())[:5]} (actual, expected)"
        counts = self.entry_counts(ledger_ik)
        posted = {ik for ik, s in expected_status.items() if s == service.POSTED}
        assert {ik for ik, n in counts.items() if n} == posted
        assert set(counts.values()) <= {1}, "an entry was posted twice"
        for user, amount in expected_balance.items():
            assert service.account_balances(self.db, ledger_ik, user_path(user)).own \
                .get("USD", 0) == amount, user
        self.roll_up(ledger_ik)
        bank = sum(int(e["parameters"]["amount"]) * (1 if e["type"] == "deposit" else -1)
                   for e in entries if e["ik"] in posted)
        assert service.account_balances(self.db, ledger_ik, "assets/bank").own \
            .get("USD", 0) == bank
        assert service.audit(self.db, ledger_ik) == []

    def ring(self, partition: int, times: int = 1) -> None:
        """Send doorbells the way the API does (by task name, to the partition's queue),
        without its coalescing: every one of them is delivered."""
        from api.broker import Broker

        settings = Settings.from_env(self.env)
        doorbell = service.Doorbell(settings, Broker().send(settings.redis_url), None)
        for _ in range(times):
            doorbell.ring([partition], coalesce=False)


@pytest.fixture(scope="session")
def pipeline_api(database_url, db, redis_url):
    """The API in a uvicorn thread; each pipeline test points it at its own queues."""
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY))
    with serve(app, "pipeline-uvicorn") as url:
        created = clients.create_client(db, "pipeline tests", "write")
        r = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                       auth=(created.client_id, created.client_secret))
        assert r.status_code == 200, r.text
        yield Api(url=url, token=r.json()["access_token"], app=app)


@pytest.fixture
def pipeline(db, database_url, redis_url, pipeline_api, unique, tmp_path, monkeypatch):
    """A private set of queues (their own prefix) on this run's Redis database, so no test
    consumes another's doorbells; workers started through it are stopped at the end."""
    prefix = unique("q")
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "LEDGER_QUEUE_PREFIX": prefix, "LEDGER_PARTITIONS": str(Settings.from_env().partitions),
           "LEDGER_RELAY_AFTER_SECONDS": "2", "LEDGER_RELAY_EVERY_SECONDS": "1",
           "PYTHONPATH": str(REPO)}
    # `Settings.from_env()` in the helpers above reads these; the API thread reads its
    # app's settings.
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEDGER_QUEUE_PREFIX", prefix)
    # Swapped by hand, not with monkeypatch: Starlette's State keeps attributes in a dict
    # behind __getattr__, which newer pytest's monkeypatch cannot see. A test may swap them
    # again; the original comes back at the end either way.
    state = pipeline_api.app.state
    original = state.settings
    state.settings = dataclasses.replace(original, redis_url=redis_url, queue_prefix=prefix)
    p = Pipeline(db=db, api=pipeline_api, env=env, tmp=tmp_path, unique=unique)
    try:
        yield p
    finally:
        state.settings = original
        for w in p.workers:
            w.stop(timeout=15)
