"""Events raised in the transaction of the change they report: entry.posted (engine, one
statement per batch), entry.reversed, job.failed, tx.synced, tx.unreconciled_for; and the
feed over REST and GraphQL."""
from __future__ import annotations

import time
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import service
from ledger.errors import BadRequestError
from ledger.service import EntryRequest
from ledger.settings import Settings
from tests.integration.helpers import new_ledger, scoped_tokens, seed000_schema
from tests.integration.test_reconcile import bank, bank_schema, funding, tx  # noqa: F401
from tests.keys import SECRET_KEY


def _events(db, ledger_ik, count=None, types=None, seconds=10.0):
    """The ledger's events once there are ``count`` (a transaction of the server still
    running, another test's, holds back later ones for a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        page = service.list_events(db, ledger_ik=ledger_ik, types=types, first=500)
        if count is None or len(page.events) >= count or time.monotonic() > deadline:
            return page.events
        time.sleep(0.02)


@pytest.fixture
def wallet(db, unique):
    return new_ledger(db, unique, seed000_schema(unique("evw")))


def deposit(ik, user="alice", amount="100"):
    return EntryRequest(ik=ik, type="deposit", parameters={"user_id": user, "amount": amount})


def transfer(ik, amount, src="alice", dst="bob"):
    return EntryRequest(ik=ik, type="transfer",
                        parameters={"from_id": src, "to_id": dst, "amount": amount})


def test_posting_raises_entry_posted_once_per_new_entry_in_order(db, wallet):
    one = service.add_ledger_entry(db, wallet, deposit("d1"))
    batch = service.add_ledger_entries(db, wallet, [deposit("d2"), deposit("d3", "bob")])
    service.add_ledger_entry(db, wallet, deposit("d1"))  # a replay: nothing new
    with pytest.raises(BadRequestError):
        service.add_ledger_entry(db, wallet, transfer("t-too-much", "100000"))
    events = _events(db, wallet, 3)
    assert [e.type for e in events] == ["entry.posted"] * 3
    assert [e.payload["ik"] for e in events] == ["d1", "d2", "d3"]
    assert events[0].payload["id"] == one.entry.id
    assert [e.payload["id"] for e in events[1:]] == [r.entry.id for r in batch]
    assert {e.payload["type"] for e in events} == {"deposit"}
    assert all(e.ledger_ik == wallet for e in events)


def test_the_async_path_reports_refusals_and_posts_in_one_statement(db, wallet):
    """refusals="report" (the workers' engine call): the refused entry raises nothing."""
    from ledger.ledgers import get_ledger
    from ledger.posting.engine import post_entries

    ledger = get_ledger(db, wallet)
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.transaction() as conn:
            results = post_entries(conn, ledger, [deposit("a1"), transfer("a2", "999999"),
                                                  deposit("a3")], refusals="report",
                                   detail=False)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert isinstance(results[1], BadRequestError)
    assert len(statements) == 1
    assert [e.payload["ik"] for e in _events(db, wallet, 2)] == ["a1", "a3"]


def test_events_off_raises_no_entry_posted(db, wallet):
    service.configure_events(False)
    try:
        service.add_ledger_entry(db, wallet, deposit("quiet"))
    finally:
        service.configure_events(True)
    service.add_ledger_entry(db, wallet, deposit("loud"))
    assert [e.payload["ik"] for e in _events(db, wallet, 1)] == ["loud"]


def test_reversal_raises_entry_reversed_once(db, wallet):
    posted = service.add_ledger_entry(db, wallet, deposit("r1"))
    first = service.reverse_ledger_entry(db, id=posted.entry.id)
    service.reverse_ledger_entry(db, id=posted.entry.id)  # a replay
    reversed_ = _events(db, wallet, 1, types=["entry.reversed"])
    assert len(reversed_) == 1
    assert reversed_[0].payload["id"] == posted.entry.id
    assert reversed_[0].payload["reversedBy"] == first.reversing_entry.id
    assert reversed_[0].payload["ik"] == "r1"


def test_a_failed_job_raises_job_failed(db, wallet):
    accepted = service.submit_entries(db, wallet, [
        {"ik": "j1", "type": "deposit", "parameters": {"user_id": "jo", "amount": "5"}},
        {"ik": "j2", "type": "transfer",
         "parameters": {"from_id": "jo", "to_id": "bob", "amount": "5000"}}], partitions=16)
    for p in accepted.pending_partitions:
        service.work_partition(db, p)
    failed = _events(db, wallet, 1, types=["job.failed"])
    assert len(failed) == 1
    job = next(j for j in accepted.jobs if j.ik == "j2")
    assert failed[0].payload["id"] == str(job.id) and failed[0].payload["ik"] == "j2"
    assert failed[0].payload["error"]["code"] == "condition_failed"
    assert [e.payload["ik"] for e in _events(db, wallet, 1, types=["entry.posted"])] == ["j1"]


def _of_link(db, link, type_, count, seconds=10.0):
    """Events of ``type_`` about txs of ``link``: a tx belongs to no ledger until one
    reconciles it, so these are read from the whole feed."""
    deadline = time.monotonic() + seconds
    while True:
        found, cursor = [], None
        while True:
            page = service.list_events(db, types=[type_], after=cursor, first=500)
            found += [e for e in page.events if e.payload.get("link") == link]
            if not page.events:
                break
            cursor = page.end_cursor
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_tx_synced_once_and_unreconciled_alert_once(db, bank):  # noqa: F811
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "x1", 700),
                                               tx(link, "bank-account-1", "x2", 800)])
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "x1", 700,
                                                  description="renamed")])
    synced = _of_link(db, link, "tx.synced", 2)
    assert [(e.payload["externalId"], e.payload["amount"]) for e in synced] == [
        ("x1", "700"), ("x2", "800")]
    # No ledger has reconciled a tx of this account yet: the events name none.
    assert {e.ledger_ik for e in synced} == {None}

    service.reconcile_tx(db, ledger, funding(ledger, "x1"))
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "x3", 900)])
    (x3,) = _events(db, ledger, 1, types=["tx.synced"])  # now the ledger is known
    assert x3.payload["externalId"] == "x3" and x3.payload["path"] == "assets-root/operating"

    hour = Settings(unreconciled_alert_seconds=3600.0)
    with db.transaction() as conn:  # as if x1 and x2 were synced two hours ago
        conn.execute(sa.text(
            "UPDATE external_txs x SET created = x.created - interval '2 hours' FROM links k "
            "WHERE k.id = x.link_id AND k.public_id = :l AND x.external_id IN ('x1', 'x2')"),
            {"l": link})
    assert service.raise_unreconciled_alerts(db, hour) >= 1
    service.raise_unreconciled_alerts(db, hour)
    alerts = _events(db, ledger, 1, types=["tx.unreconciled_for"])
    # x1 was reconciled, x3 is too recent; x2 is reported once however often beat looks.
    assert [e.payload["externalId"] for e in alerts] == ["x2"]


@pytest.fixture(scope="module")
def api(database_url, db):
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY))
    with TestClient(app) as client:
        tokens = scoped_tokens(client, db, "events")
        yield client, tokens


def test_rest_and_graphql_feeds_agree(db, wallet, api):
    client, tokens = api
    for i in range(5):
        service.add_ledger_entry(db, wallet, deposit(f"f{i}"))
    _events(db, wallet, 5)
    seen, cursor = [], None
    while True:
        params = {"ledger": wallet, "first": 2, "types": "entry.posted,job.failed"}
        if cursor:
            params["after"] = cursor
        r = client.get("/v1/events", params=params, headers=tokens["read"])
        assert r.status_code == 200, r.text
        if not r.json()["events"]:
            break
        seen += r.json()["events"]
        cursor = r.json()["endCursor"]
    assert [e["payload"]["ik"] for e in seen] == [f"f{i}" for i in range(5)]
    assert seen[0]["ledger"] == {"ik": wallet} and seen[0]["id"].startswith("evt_")

    q = """query($l: String, $a: String) { events(ledger: $l, after: $a, first: 3,
             types: ["entry.posted"]) { events { id type ledger { ik } payload cursor }
             endCursor } }"""
    r = client.post("/graphql", json={"query": q, "variables": {"l": wallet}},
                    headers=tokens["read"])
    page = r.json()["data"]["events"]
    assert [e["id"] for e in page["events"]] == [e["id"] for e in seen[:3]]
    r = client.post("/graphql", json={"query": q, "variables": {
        "l": wallet, "a": page["endCursor"]}}, headers=tokens["read"])
    assert [e["id"] for e in r.json()["data"]["events"]["events"]] == [
        e["id"] for e in seen[3:]]


@pytest.mark.parametrize("params, field", [
    ({"after": "nope"}, "after"), ({"types": "entry.posted,bogus"}, "types"),
    ({"first": "0"}, "first"), ({"first": "501"}, "first")])
def test_rest_feed_refuses_bad_requests_naming_the_field(api, params, field):
    client, tokens = api
    r = client.get("/v1/events", params=params, headers=tokens["read"])
    assert 400 <= r.status_code < 500 and r.json()["field"] == field, r.text


def test_rest_feed_needs_a_token_and_is_documented(api):
    client, tokens = api
    assert client.get("/v1/events").status_code == 401
    doc = client.get("/openapi.json", headers=tokens["read"]).json()
    assert "/v1/events" in doc["paths"]
    assert {p["name"] for p in doc["paths"]["/v1/events"]["get"]["parameters"]} >= {
        "after", "types", "ledger", "first"}
