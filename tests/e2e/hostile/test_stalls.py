"""Requests that stalled the API (issue 12): documents that cost exponential or huge work,
statements that never end, and a flood of secret guesses at the token endpoint.

No timing assertions beyond "does not hang": /healthz answers within 2 s while the hostile
request runs, and every hostile request gets its answer within a generous bound.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.app import create_app
from api.graphql.execution import GRACE_SECONDS
from ledger import clients, service
from ledger.db import Database
from ledger.settings import Settings
from tests.e2e import seed002
from tests.e2e.conftest import Api, fetch_token
from tests.keys import SECRET_KEY
from tests.serving import serve

HEALTHZ_BOUND = 2.0  # seconds: "keeps answering", not a performance figure
HANG_BOUND = 60.0


def fragment_chain(levels: int = 23) -> str:
    """The ~1.2 KB document whose depth check took 19 s: each fragment spreads the next
    one twice."""
    frags = " ".join(f"fragment F{i} on Query {{ __typename ...F{i + 1} ...F{i + 1} }}"
                     for i in range(levels))
    return f"query {{ ...F0 }} {frags} fragment F{levels} on Query {{ __typename }}"


def healthz_while(api_url: str, hostile) -> tuple[httpx.Response, list[httpx.Response]]:
    """Run ``hostile()`` in a thread; meanwhile /healthz must answer within the bound."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", hostile()), daemon=True)
    worker.start()
    checks = []
    try:
        for _ in range(3):
            worker.join(timeout=0.3)
            checks.append(httpx.get(f"{api_url}/healthz", timeout=HEALTHZ_BOUND))
    finally:
        worker.join(timeout=HANG_BOUND)
    assert not worker.is_alive(), "the hostile request did not finish"
    return out["r"], checks


def code_of(response: httpx.Response) -> str | None:
    errors = response.json().get("errors") or [{}]
    return (errors[0].get("extensions") or {}).get("code")


@pytest.fixture(scope="module")
def wallet(db, unique):
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = unique("stalls-schema")
    service.store_schema(db, doc)
    ik = unique("stalls-ledger")
    service.create_ledger(db, ik, "stalls ledger", doc["key"])
    return ik


# ------------------------------------------------------------------ GraphQL documents

def test_fragment_chain_is_refused_while_healthz_answers(api, token):
    def hostile():
        return httpx.post(api.graphql_url, json={"query": fragment_chain()},
                          headers={"Authorization": f"Bearer {token}"}, timeout=HANG_BOUND)

    r, checks = healthz_while(api.url, hostile)
    assert all(c.status_code == 200 for c in checks)
    assert r.status_code == 400, r.text
    assert code_of(r) == "query_too_complex"
    assert "limit" in r.json()["errors"][0]["message"]


def test_fragment_cycle_is_refused(gql):
    r = gql("query { ...A } fragment A on Query { __typename ...B } "
            "fragment B on Query { __typename ...A }")
    assert r.status_code == 400, r.text
    assert "A" in r.json()["errors"][0]["message"]


def test_800_aliases_of_a_nested_page_query_are_refused(api, token, gql):
    fields = " ".join(
        f"a{i}: ledgers {{ nodes {{ ik ledgerAccounts {{ nodes {{ path "
        f"lines {{ nodes {{ amount }} }} }} }} }} }}" for i in range(800))

    def hostile():
        return httpx.post(api.graphql_url, json={"query": f"query {{ {fields} }}"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=HANG_BOUND)

    r, checks = healthz_while(api.url, hostile)
    assert all(c.status_code == 200 for c in checks)
    assert r.status_code == 400, r.text
    assert code_of(r) == "query_too_complex"
    message = r.json()["errors"][0]["message"]
    assert "costs" in message and "limit is 50000" in message
    assert "data" not in r.json()


def test_300_aliased_mutations_are_refused_and_nothing_is_written(gql, wallet, unique):
    prefix = unique("alias")
    adds = " ".join(
        f'm{i}: addLedgerEntry(ik: "{prefix}-{i}", entry: {{ledger: {{ik: "{wallet}"}}, '
        f'type: "user_funds_account", parameters: {{user_id: "mallory", funding_amount: "1"}}}}) '
        f"{{ __typename }}" for i in range(300))
    r = gql(f"mutation {{ {adds} }}")
    assert r.status_code == 400, r.text[:500]
    assert code_of(r) == "query_too_complex"
    assert "300 mutations" in r.json()["errors"][0]["message"]
    found = gql('query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { id } }',
                {"e": {"ik": f"{prefix}-0", "ledger": {"ik": wallet}}})
    assert (found.json().get("data") or {}).get("ledgerEntry") is None


def test_a_few_aliased_reads_still_run(gql, wallet):
    r = gql(" ".join(["query {"] + [f'l{i}: ledger(ledger: {{ik: "{wallet}"}}) {{ ik }}'
                                     for i in range(10)] + ["}"]))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["l9"] == {"ik": wallet}


# ------------------------------------------------------------------ wall clock

@contextmanager
def locked_ledgers(database_url: str):
    """Holds an ACCESS EXCLUSIVE lock on the ledgers table: every read of it waits."""
    engine = sa.create_engine(Database(database_url).url)
    conn = engine.connect()
    trans = conn.begin()
    conn.exec_driver_sql("LOCK TABLE ledgers IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        trans.rollback()
        conn.close()
        engine.dispose()


def app_with(database_url: str, **overrides) -> object:
    # The run's key: the shared database holds secrets encrypted with it.
    return create_app(Settings(database_url=database_url, secret_key=SECRET_KEY, **overrides))


def test_a_statement_past_its_timeout_is_a_typed_retryable_error(database_url, full_client,
                                                                 wallet, unique):
    app = app_with(database_url, statement_timeout_seconds=0.5)
    with serve(app, "stalls-timeout") as url:
        token = fetch_token(Api(url=url, app=app), full_client)
        headers = {"Authorization": f"Bearer {token}"}
        with locked_ledgers(database_url):
            read = httpx.post(f"{url}/graphql", headers=headers, timeout=HANG_BOUND, json={
                "query": "query($l: LedgerMatchInput!) { ledger(ledger: $l) { ik } }",
                "variables": {"l": {"ik": wallet}}})
            write = httpx.post(f"{url}/graphql", headers=headers, timeout=HANG_BOUND, json={
                "query": FUND, "variables": {"l": wallet, "ik": unique("slow")}})
    assert read.status_code == 200, read.text
    error = read.json()["errors"][0]
    assert error["extensions"] == {"code": "timeout", "typename": "InternalError",
                                   "retryable": True}
    assert write.json().get("data", {}).get("addLedgerEntry") == {
        "__typename": "InternalError", "code": "timeout", "retryable": True}, write.text


FUND = ('mutation($l: SafeString!, $ik: SafeString) { addLedgerEntry(ik: $ik, '
        'entry: {ledger: {ik: $l}, type: "user_funds_account", parameters: '
        '{user_id: "slow", funding_amount: "5"}}) { __typename '
        '... on Error { code retryable } } }')


def test_a_request_past_its_deadline_answers_503_instead_of_hanging(database_url, token,
                                                                    wallet):
    app = app_with(database_url, request_timeout_seconds=1, statement_timeout_seconds=120)
    with serve(app, "stalls-deadline") as url:
        with locked_ledgers(database_url):
            r = httpx.post(f"{url}/graphql", timeout=HANG_BOUND,
                           headers={"Authorization": f"Bearer {token}"}, json={
                               "query": "query($l: LedgerMatchInput!) { ledger(ledger: $l) "
                                        "{ ik } }", "variables": {"l": {"ik": wallet}}})
            health = httpx.get(f"{url}/healthz", timeout=HEALTHZ_BOUND)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"]
    assert code_of(r) == "timeout"
    assert health.status_code == 200


def test_a_post_waiting_on_the_event_loop_answers_503_at_its_deadline(database_url, token,
                                                                      wallet, unique, db):
    """A known document that only posts waits for its batch on the event loop (no thread):
    past the deadline it answers 503 as a thread would, the loop answering meanwhile, and
    its entry is posted once or not at all."""
    app = app_with(database_url, request_timeout_seconds=1, statement_timeout_seconds=120)
    stuck = unique("stuck")
    with serve(app, "stalls-loop-deadline") as url:
        def post(ik):
            return httpx.post(f"{url}/graphql", timeout=HANG_BOUND,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"query": FUND, "variables": {"l": wallet, "ik": ik}})
        first = post(unique("known"))  # kept from now on, and its ledger remembered
        assert first.json()["data"]["addLedgerEntry"]["__typename"] == "AddLedgerEntryResult"
        with locked_ledgers(database_url):
            r, checks = healthz_while(url, lambda: post(stuck))
        retried = post(stuck)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] and code_of(r) == "timeout"
    # At its deadline (1 s, plus the grace a stuck resolver gets), not when the lock went.
    assert r.elapsed.total_seconds() < 1 + GRACE_SECONDS + 10
    assert all(c.status_code == 200 for c in checks)
    assert retried.json()["data"]["addLedgerEntry"]["__typename"] == "AddLedgerEntryResult"
    assert service.get_ledger_entry(db, ledger_ik=wallet, ik=stuck).ik == stuck


# ------------------------------------------------------------------ the token endpoint

@pytest.fixture
def shared_redis(redis_url, unique):
    """Settings of API processes that share this run's Redis under a fresh prefix."""
    prefix = unique("stalls")
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def attempt(url: str, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(client_id, secret), timeout=HANG_BOUND)


def test_wrong_secrets_are_limited_across_processes(database_url, redis_url, db, full_client,
                                                    shared_redis):
    victim = clients.create_client(db, "stalls victim", "write")
    settings = dict(redis_url=redis_url, queue_prefix=shared_redis, token_max_failures=10)
    app_a, app_b = app_with(database_url, **settings), app_with(database_url, **settings)
    with serve(app_a, "stalls-a") as url_a, serve(app_b, "stalls-b") as url_b:
        answers = [attempt(url_a if i % 2 else url_b, victim.client_id, f"guess-{i}")
                   for i in range(200)]
        right_other = attempt(url_a, full_client.client_id, full_client.client_secret)
        right_victim = attempt(url_b, victim.client_id, victim.client_secret)
    statuses = [a.status_code for a in answers]
    # Both processes count into the same Redis: the limit holds across them.
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"] == "too_many_attempts"
    assert right_other.status_code == 200, right_other.text
    # While its id is blocked even the right secret waits: the guesser cannot tell.
    assert right_victim.status_code == 429


def test_concurrent_bad_attempts_do_not_starve_healthz(api, db):
    victims = [clients.create_client(db, f"stalls flood {i}", "read") for i in range(40)]

    def hostile():
        with ThreadPoolExecutor(40) as pool:
            return list(pool.map(lambda c: attempt(api.url, c.client_id, "wrong"), victims))

    answers, checks = healthz_while(api.url, hostile)
    assert all(c.status_code == 200 for c in checks)
    # Refused, or (when too many wait for a hashing slot) told to come back.
    assert {a.status_code for a in answers} <= {401, 503}
