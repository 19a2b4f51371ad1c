"""Group commit through the real HTTP API: GraphQL addLedgerEntry answers as posting one by
one would, a client that hangs up mid-batch leaves its entry posted once or not at all, and
the core's race tests hold across two API processes on one database."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.graphql.context import committer_for
from api.graphql.http import runner_for
from ledger import clients, service
from ledger.errors import LedgerError
from ledger.settings import Settings
from tests.integration.helpers import new_ledger, own, seed000_schema
from tests.integration.test_group_commit import (USERS, Recorder, deposit, fund, mixed_requests,
                                                 one_by_one, transfer)
from tests.integration.test_races import race
from tests.keys import SECRET_KEY
from tests.serving import free_port, serve, wait_healthy

REPO = Path(__file__).resolve().parents[2]

ADD = """mutation ($ik: SafeString!, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) {
    __typename
    ... on AddLedgerEntryResult { isIkReplay entry { id ik type } lines { key amount } }
    ... on Error { code message } } }"""


def token(url: str, db) -> str:
    created = clients.create_client(db, "group commit tests", "write")
    r = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                   auth=(created.client_id, created.client_secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def served(database_url, db):
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY))
    with serve(app, "group-commit-uvicorn") as url:
        yield app, url, token(url, db)


def variables(ledger_ik: str, request: service.EntryRequest) -> dict:
    return {"ik": request.ik, "entry": {"ledger": {"ik": ledger_ik}, "type": request.type,
                                        "parameters": dict(request.parameters)}}


def add(url: str, bearer: str, ledger_ik: str, request) -> dict:
    r = httpx.post(f"{url}/graphql", json={"query": ADD, "variables": variables(ledger_ik, request)},
                   headers={"Authorization": f"Bearer {bearer}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"]["addLedgerEntry"]


def wire(outcome) -> tuple:
    """A service outcome as the GraphQL answer shows it, or that answer, comparable."""
    if isinstance(outcome, LedgerError):
        return ("BadRequestError", outcome.code, outcome.message)
    if isinstance(outcome, dict):
        if outcome["__typename"] != "AddLedgerEntryResult":
            return (outcome["__typename"], outcome["code"], outcome["message"])
        return (outcome["isIkReplay"], outcome["entry"]["ik"], outcome["entry"]["type"],
                tuple((x["key"], str(x["amount"])) for x in outcome["lines"]))
    return (outcome.is_ik_replay, outcome.entry.ik, outcome.entry.type,
            tuple((x.key, str(x.amount)) for x in outcome.lines))


def request_key(request) -> tuple:
    return (request.ik, request.type, tuple(sorted(request.parameters.items())))


def test_graphql_posts_share_batches_and_answer_as_one_by_one(served, db, unique):
    app, url, bearer = served
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    committer = committer_for(app)
    recorder = Recorder(pause=0.05)
    committer.on_batch, committer.before_commit = recorder.on_batch, recorder.before_commit
    before = committer.stats.shared
    try:
        requests = mixed_requests(48)
        answers = race(len(requests), lambda i: add(url, bearer, ledger_ik, requests[i]))
    finally:
        committer.on_batch = committer.before_commit = None
    assert committer.stats.shared > before
    assert len(recorder.order) == len(requests)
    # Same requests cannot be told apart over the wire: compare the answers each kind of
    # request got, as a multiset, with those posting the server's order one by one gives.
    fresh = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, fresh, hot=100)
    expected: dict[tuple, Counter] = {}
    for request, outcome in zip(recorder.order, one_by_one(db, fresh, recorder.order)):
        expected.setdefault(request_key(request), Counter())[wire(outcome)] += 1
    got: dict[tuple, Counter] = {}
    for request, answer in zip(requests, answers):
        got.setdefault(request_key(request), Counter())[wire(answer)] += 1
    assert got == expected
    for user in USERS:
        path = f"liabilities/users:{user}/available"
        assert own(db, ledger_ik, path) == own(db, fresh, path), user
    assert service.audit(db, ledger_ik) == []


def entry_count(db, ledger_ik: str, ik: str) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :l AND e.ik = :ik"), {"l": ledger_ik, "ik": ik}).scalar()


def test_a_client_that_hangs_up_mid_batch_posts_once_or_not_at_all(served, db, unique):
    app, url, bearer = served
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    committer = committer_for(app)
    in_flight = []

    def slow(conn, ledger, requests):
        in_flight.append(requests[0].ik)
        time.sleep(0.5)
    committer.before_commit = slow
    request = deposit("hung-up", "h", 9)
    body = httpx.Request("POST", f"{url}/graphql", json={
        "query": ADD, "variables": variables(ledger_ik, request)},
        headers={"Authorization": f"Bearer {bearer}"})
    address = urlsplit(url)
    try:
        with socket.create_connection((address.hostname, address.port)) as sock:
            head = "".join(f"{k}: {v}\r\n" for k, v in body.headers.items())
            sock.sendall(f"POST /graphql HTTP/1.1\r\n{head}\r\n".encode() + body.read())
            deadline = time.monotonic() + 30
            while not in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
            assert in_flight == ["hung-up"], "the post never reached its batch"
        # Closed while its batch is in flight. Retrying with the same ik either replays the
        # entry (it committed) or posts it now (it did not): never a second entry.
    finally:
        committer.before_commit = None
    retried = add(url, bearer, ledger_ik, request)
    assert retried["__typename"] == "AddLedgerEntryResult", retried
    assert entry_count(db, ledger_ik, "hung-up") == 1
    assert own(db, ledger_ik, "liabilities/users:h/available") == 9
    assert service.audit(db, ledger_ik) == []


@pytest.fixture(scope="module")
def two_apis(database_url, db, tmp_path_factory):
    """Two API processes of the app factory on the same database, as `ledger up` runs one
    per core."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "LEDGER_SECRET_KEY": SECRET_KEY.reveal()}
    logs = tmp_path_factory.mktemp("apis")
    procs, urls = [], []
    try:
        for n in range(2):
            port = free_port()
            out = open(logs / f"api{n}.log", "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(procs, urls):
            wait_healthy(proc, url, logs)
        yield urls, token(urls[0], db)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_fifty_transfers_race_for_one_hundred_across_processes(two_apis, db, unique):
    urls, bearer = two_apis
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, payer=100)
    answers = race(50, lambda i: add(urls[i % 2], bearer, ledger_ik,
                                     transfer(f"t{i}", "payer", f"payee{i}", 10)))
    ok = [a for a in answers if a["__typename"] == "AddLedgerEntryResult"]
    assert len(ok) == 10, answers
    assert {a["code"] for a in answers if a not in ok} == {"condition_failed"}
    assert own(db, ledger_ik, "liabilities/users:payer/available") == 0
    assert service.account_balances(db, ledger_ik, "liabilities/users").total == {"USD": 100}
    assert service.audit(db, ledger_ik) == []


def test_identical_first_requests_post_once_across_processes(two_apis, db, unique):
    urls, bearer = two_apis
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    answers = race(20, lambda i: add(urls[i % 2], bearer, ledger_ik, deposit("only-once", "a", 7)))
    assert all(a["__typename"] == "AddLedgerEntryResult" for a in answers), answers
    assert sum(not a["isIkReplay"] for a in answers) == 1
    assert len({a["entry"]["id"] for a in answers}) == 1
    assert entry_count(db, ledger_ik, "only-once") == 1
    assert own(db, ledger_ik, "liabilities/users:a/available") == 7


# ------------------------------------------------------------------ documents on the event loop

TWO = """mutation ($a: SafeString!, $b: SafeString!, $ea: LedgerEntryInput!,
                   $eb: LedgerEntryInput!) {
  a: addLedgerEntry(ik: $a, entry: $ea) {
    __typename ... on AddLedgerEntryResult { isIkReplay entry { ik } } }
  b: addLedgerEntry(ik: $b, entry: $eb) {
    __typename ... on AddLedgerEntryResult { isIkReplay entry { ik ledger { ik name } } } } }"""


class Submits:
    """Counts the documents the runner hands to its worker threads."""

    def __init__(self, runner, monkeypatch):
        self.count = 0
        submit = runner._workers.submit

        def counted(*args):
            self.count += 1
            return submit(*args)
        monkeypatch.setattr(runner._workers, "submit", counted)


def graphql(url: str, bearer: str, query: str, variables: dict) -> dict:
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables},
                   headers={"Authorization": f"Bearer {bearer}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_known_document_that_only_posts_runs_on_the_event_loop(served, db, unique,
                                                                 monkeypatch):
    app, url, bearer = served
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    add(url, bearer, ledger_ik, deposit("known", "k", 1))  # the document is kept from now on
    runner = runner_for(app)
    submits = Submits(runner, monkeypatch)
    answers = race(12, lambda i: add(url, bearer, ledger_ik, deposit(f"k{i}", "k", 1)))
    assert [a["entry"]["ik"] for a in answers] == [f"k{i}" for i in range(12)]
    assert not any(a["isIkReplay"] for a in answers)
    assert submits.count == 0, "a post took a worker thread"
    assert graphql(url, bearer, "query { __typename }", {}) == {"__typename": "Query"}
    assert submits.count == 1, "a query runs in a thread"
    # As many documents on the loop as the runner lets run at once: the next takes a thread.
    monkeypatch.setattr(runner, "on_loop", runner.concurrency)
    assert add(url, bearer, ledger_ik, deposit("k-full", "k", 1))["entry"]["ik"] == "k-full"
    assert submits.count == 2
    assert own(db, ledger_ik, "liabilities/users:k/available") == 14


def test_a_field_that_reads_the_database_sends_the_document_to_a_thread_posted_once(
        served, db, unique, monkeypatch):
    """``ledger { name }`` is read from the database: on the loop it stops the run after
    both entries were posted, and the thread answers them as posted, not as replays."""
    app, url, bearer = served
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    submits = Submits(runner_for(app), monkeypatch)
    for n in range(2):  # the first run keeps the document; the second starts on the loop
        a, b = deposit(f"a{n}", "m", 1), deposit(f"b{n}", "m", 2)
        data = graphql(url, bearer, TWO, {"a": a.ik, "b": b.ik,
                                          "ea": variables(ledger_ik, a)["entry"],
                                          "eb": variables(ledger_ik, b)["entry"]})
        assert data["a"] == {"__typename": "AddLedgerEntryResult", "isIkReplay": False,
                             "entry": {"ik": a.ik}}
        assert data["b"]["isIkReplay"] is False
        assert data["b"]["entry"]["ledger"] == {"ik": ledger_ik, "name": "Test ledger"}
        assert entry_count(db, ledger_ik, a.ik) == entry_count(db, ledger_ik, b.ik) == 1
    assert submits.count == 2
    # Sent to a thread once, the document starts there from now on.
    assert runner_for(app).cache.known(TWO).posts_only == {None: False}
    assert own(db, ledger_ik, "liabilities/users:m/available") == 6
    assert service.audit(db, ledger_ik) == []


# The answer seed 002 selects: lines' ledgerId, accountId and type.
SEED002_ADD = """mutation addLedgerEntry($entry: LedgerEntryInput!, $ik: SafeString!) {
  addLedgerEntry(ik: $ik, entry: $entry) {
    __typename
    ... on AddLedgerEntryResult {
      entry { id posted created date description }
      lines { id date posted created amount type ledgerId accountId ledgerEntryId }
      isIkReplay } } }"""


@pytest.mark.parametrize("document", ["sdk", "seed002"])
def test_the_sdk_and_seed_answers_are_read_on_the_loop_and_match_a_thread(
        served, db, unique, monkeypatch, document):
    """Their ``ledger { ik }`` and ``ledgerId`` come from the ledger the post went to, not
    from the database: no runner thread, and the same answer a thread gives (the first
    request, before the document is kept, runs in one)."""
    from ledger_sdk.documents import ADD_LEDGER_ENTRY
    query = {"sdk": ADD_LEDGER_ENTRY, "seed002": SEED002_ADD}[document]
    app, url, bearer = served
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    ledger_id = service.get_ledger(db, ledger_ik).id
    submits = Submits(runner_for(app), monkeypatch)
    answers = [graphql(url, bearer, query, variables(ledger_ik, deposit(f"d{n}", "s", 5)))
               ["addLedgerEntry"] for n in range(3)]
    assert submits.count == 1, "only the first, unknown document took a thread"

    def same(answer):  # what differs from one post to the next
        text = repr(answer)
        for n in range(3):
            text = text.replace(f"'d{n}'", "'d'")
        for key in ("id", "posted", "created", "date", "ledgerEntryId", "runningBalance"):
            text = re.sub(rf"'{key}': '[^']*'|'{key}': \d+", f"'{key}': _", text)
        return text
    assert same(answers[1]) == same(answers[0]) == same(answers[2])
    lines = answers[2]["lines"]
    if document == "sdk":
        assert answers[2]["entry"]["ledger"] == {"ik": ledger_ik}
        assert [str(x["runningBalance"]) for x in lines] == ["15", "15"]
    else:
        assert {x["ledgerId"] for x in lines} == {str(ledger_id)}
        assert sorted(x["type"] for x in lines) == ["credit", "debit"]
