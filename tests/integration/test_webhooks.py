"""Webhook endpoints and their delivery, to a real HTTP receiver in the test: signed
(Standard Webhooks, checked with the receiver's own copy of the secret), in feed order, at
least once, with backoff, a log per attempt, manual redelivery and disabling."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.app import create_app
from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest
from ledger.settings import Settings
from tests.integration.helpers import new_ledger, scoped_tokens, seed000_schema
from tests.integration.webhook_receiver import Receiver, start_receiver
from tests.keys import SECRET_KEY


@pytest.fixture
def config(database_url):
    return Settings(database_url=database_url, secret_key=SECRET_KEY,
                    webhook_allow_private=True, webhook_backoff_seconds=0.05,
                    webhook_disable_after=50)


@pytest.fixture
def receiver():
    found = Receiver()
    server = start_receiver(found)
    yield found
    server.shutdown()


@pytest.fixture
def wallet(db, unique):
    return new_ledger(db, unique, seed000_schema(unique("hooks")))


def deposit(db, ledger, ik, amount="10"):
    return service.add_ledger_entry(db, ledger, EntryRequest(
        ik=ik, type="deposit", parameters={"user_id": "ann", "amount": amount}))


def endpoint_for(db, config, receiver, events=("entry.posted",), ledger=None):
    # One ledger's events: other tests' ledgers post in this database meanwhile.
    made = service.create_webhook_endpoint(db, config, url=receiver.url, events=list(events),
                                           description="test receiver", ledger_ik=ledger)
    receiver.secret = made.secret
    return made.endpoint.id


def deliver_until(db, config, endpoint, receiver, count, seconds=30.0):
    deadline = time.monotonic() + seconds
    while len(receiver.delivered()) < count and time.monotonic() < deadline:
        service.deliver_webhook_endpoint(db, config, endpoint, budget_seconds=5)
        time.sleep(0.02)
    return receiver.delivered()


def feed_ids(db, ledger, count, types=("entry.posted",)):
    deadline = time.monotonic() + 10
    while True:
        page = service.list_events(db, ledger_ik=ledger, types=list(types), first=500)
        if len(page.events) >= count or time.monotonic() > deadline:
            return [e.id for e in page.events]
        time.sleep(0.02)


def test_deliveries_are_signed_and_in_feed_order(db, config, receiver, wallet):
    deposit(db, wallet, "before")
    endpoint = endpoint_for(db, config, receiver, ledger=wallet)
    posted = [deposit(db, wallet, f"w{i}") for i in range(5)]
    service.reverse_ledger_entry(db, id=posted[0].entry.id)  # not subscribed
    got = deliver_until(db, config, endpoint, receiver, 5)
    before, *ids = feed_ids(db, wallet, 6)
    # The endpoint starts where the feed is final: an event of a transaction that ended
    # while an older one (of any database of the server) still ran may come too.
    assert [r.webhook_id for r in got] in (ids, [before] + ids)
    got = [r for r in got if r.webhook_id != before]
    assert all(r.verified for r in receiver.requests)
    assert [r.body["data"]["ik"] for r in got] == [f"w{i}" for i in range(5)]
    assert got[0].body["type"] == "entry.posted" and got[0].body["data"]["ledger"] == wallet
    assert got[0].body["id"] == got[0].webhook_id
    assert got[0].body["data"]["id"] == posted[0].entry.id
    assert got[0].headers["webhook-signature"].startswith("v1,")
    # The signature binds the secret, the id, the time and the body.
    Webhook(receiver.secret).verify(got[0].raw, got[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43).verify(got[0].raw, got[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(got[0].raw.replace(b"w0", b"w9"), got[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(got[0].raw, {**got[0].headers,
                                                     "webhook-id": got[1].webhook_id})
    # Nothing more to send: the next run delivers nothing again.
    again = service.deliver_webhook_endpoint(db, config, endpoint)
    assert again.delivered == 0 and len(receiver.requests) == len(got) + (
        receiver.requests[0].webhook_id == before)


def test_a_failing_receiver_that_recovers_gets_every_event_once_more_in_order(
        db, config, receiver, wallet):
    endpoint = endpoint_for(db, config, receiver, ledger=wallet)
    receiver.fail_next = 3
    for i in range(4):
        deposit(db, wallet, f"r{i}")
    got = deliver_until(db, config, endpoint, receiver, 4)
    ids = feed_ids(db, wallet, 4)
    assert [r.webhook_id for r in got] == ids          # each once, in order
    failed = [r for r in receiver.requests if r.answered == 500]
    assert [r.webhook_id for r in failed] == [ids[0]] * 3  # later events waited behind it
    log = service.list_webhook_deliveries(db, endpoint, first=50)[::-1]
    assert [(d.event_id, d.attempt, d.ok, d.status) for d in log] == [
        (ids[0], 1, False, 500), (ids[0], 2, False, 500), (ids[0], 3, False, 500),
        (ids[0], 4, True, 200), (ids[1], 1, True, 200), (ids[2], 1, True, 200),
        (ids[3], 1, True, 200)]
    assert log[0].response == "no" and log[0].error == "HTTP 500"
    assert all(d.latency_ms >= 0 for d in log)


def test_backoff_waits_between_attempts(db, config, receiver, wallet):
    slow = Settings(**{**config.__dict__, "webhook_backoff_seconds": 3600.0})
    endpoint = endpoint_for(db, slow, receiver, ledger=wallet)
    receiver.always_fail = True
    deposit(db, wallet, "b1")
    feed_ids(db, wallet, 1)
    first = service.deliver_webhook_endpoint(db, slow, endpoint)
    assert first.failed == 1
    # Within the backoff nothing is attempted, however often delivery runs.
    assert service.deliver_webhook_endpoint(db, slow, endpoint).failed == 0
    assert endpoint not in service.due_webhook_endpoints(db)
    assert len(receiver.requests) == 1
    assert [service.backoff_seconds(n, 5) for n in (1, 2, 3, 8, 20)] == [
        5, 20, 80, 43200, 43200]


def test_an_endpoint_is_disabled_after_a_run_of_failures_and_can_be_redelivered_to(
        db, config, receiver, wallet):
    three = Settings(**{**config.__dict__, "webhook_disable_after": 3,
                        "webhook_backoff_seconds": 0.01})
    endpoint = endpoint_for(db, three, receiver, ledger=wallet)
    receiver.always_fail = True
    deposit(db, wallet, "x1")
    (event_id,) = feed_ids(db, wallet, 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if service.deliver_webhook_endpoint(db, three, endpoint).disabled:
            break
        time.sleep(0.02)
    (found,) = [e for e in service.list_webhook_endpoints(db) if e.id == endpoint]
    assert not found.enabled and "3 deliveries failed in a row" in found.disabled_reason
    assert len(receiver.requests) == 3
    # Disabled: delivery stops; the event says so.
    assert service.deliver_webhook_endpoint(db, three, endpoint).failed == 0
    deadline = time.monotonic() + 10
    while True:
        page = service.list_events(db, types=["webhook_endpoint.disabled"], first=500)
        mine = [e for e in page.events if e.payload["id"] == endpoint]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1 and mine[0].payload["url"] == receiver.url

    # Manual redelivery, out of band: logged as manual, the cursor does not move.
    receiver.always_fail = False
    manual = service.redeliver_webhook_event(db, three, endpoint, event_id)
    assert manual.ok and manual.manual and manual.status == 200
    # Enabled again, delivery resumes at the event that failed (at least once).
    service.enable_webhook_endpoint(db, endpoint)
    got = deliver_until(db, three, endpoint, receiver, 2)
    assert [r.webhook_id for r in got] == [event_id, event_id]
    with pytest.raises(NotFoundError):
        service.redeliver_webhook_event(db, three, endpoint, "evt_999999999999")


def test_deleted_endpoints_receive_nothing(db, config, receiver, wallet):
    endpoint = endpoint_for(db, config, receiver, ledger=wallet)
    service.delete_webhook_endpoint(db, endpoint)
    deposit(db, wallet, "d1")
    assert service.deliver_webhook_endpoint(db, config, endpoint).delivered == 0
    assert endpoint not in [e.id for e in service.list_webhook_endpoints(db)]
    with pytest.raises(NotFoundError):
        service.delete_webhook_endpoint(db, endpoint)
    assert receiver.requests == []


def test_an_endpoint_delivers_every_type_with_a_star(db, config, receiver, wallet):
    endpoint = endpoint_for(db, config, receiver, events=["*"], ledger=wallet)
    posted = deposit(db, wallet, "s1")
    service.reverse_ledger_entry(db, id=posted.entry.id)
    got = deliver_until(db, config, endpoint, receiver, 2)
    assert [r.body["type"] for r in got] == ["entry.posted", "entry.reversed"]


def test_an_endpoint_of_one_ledger_gets_only_its_events(db, config, receiver, wallet,
                                                        unique):
    other = new_ledger(db, unique, seed000_schema(unique("hooks2")))
    everything = Receiver()
    server = start_receiver(everything)
    try:
        endpoint = endpoint_for(db, config, receiver, ledger=wallet)
        (found,) = [e for e in service.list_webhook_endpoints(db) if e.id == endpoint]
        assert found.ledger_ik == wallet
        all_of_them = endpoint_for(db, config, everything)
        deposit(db, other, "o1")
        deposit(db, wallet, "m1")
        deposit(db, other, "o2")
        got = deliver_until(db, config, endpoint, receiver, 1)
        service.deliver_webhook_endpoint(db, config, endpoint)
        assert [r.body["data"]["ik"] for r in receiver.delivered()] == ["m1"]
        # Without a ledger: every ledger's events (other tests' too), in feed order.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            service.deliver_webhook_endpoint(db, config, all_of_them)
            seen = [(r.body["data"].get("ledger"), r.body["data"].get("ik"))
                    for r in everything.delivered()]
            if (other, "o2") in seen:
                break
            time.sleep(0.05)
        mine = [x for x in seen if x[0] in (wallet, other)]
        assert mine == [(other, "o1"), (wallet, "m1"), (other, "o2")]
        assert got[0].verified
    finally:
        server.shutdown()
    with pytest.raises(NotFoundError):
        service.create_webhook_endpoint(db, config, url=receiver.url, events=["*"],
                                        ledger_ik=unique("no-such-ledger"))


@pytest.mark.parametrize("url, allow_private, field", [
    ("ftp://example.com/x", True, "url"),
    ("example.com/hook", True, "url"),
    ("http://user:pw@93.184.216.34/x", True, "url"),
    ("http://127.0.0.1:9/x", False, "url"),
    ("http://10.1.2.3/x", False, "url"),
    ("http://169.254.169.254/latest", False, "url"),
    ("http://[::1]/x", False, "url"),
    ("", True, "url"),
    (None, True, "url"),
])
def test_urls_are_validated(db, database_url, url, allow_private, field):
    cfg = Settings(database_url=database_url, secret_key=SECRET_KEY,
                   webhook_allow_private=allow_private)
    with pytest.raises(BadRequestError) as caught:
        service.create_webhook_endpoint(db, cfg, url=url, events=["entry.posted"])
    assert caught.value.field == field


def test_public_addresses_pass_and_bad_event_lists_name_their_field(db, database_url):
    cfg = Settings(database_url=database_url, secret_key=SECRET_KEY)
    made = service.create_webhook_endpoint(db, cfg, url="https://93.184.216.34/hook",
                                           events=["entry.posted"])
    assert made.secret.startswith("whsec_") and made.endpoint.enabled
    service.delete_webhook_endpoint(db, made.endpoint.id)
    for events in ([], ["entry.nope"], "entry.posted", [1]):
        with pytest.raises(BadRequestError) as caught:
            service.create_webhook_endpoint(db, cfg, url="https://93.184.216.34/h",
                                            events=events)
        assert caught.value.field == "events"


def test_the_secret_is_stored_encrypted(db, config, receiver):
    endpoint = endpoint_for(db, config, receiver)
    with db.transaction() as conn:
        stored = conn.execute(sa.text("SELECT secret FROM webhook_endpoints WHERE id = :i"),
                              {"i": int(endpoint[3:])}).scalar_one()
    assert stored.startswith("enc:v1:") and receiver.secret not in stored


def test_graphql_creates_endpoints_with_write_scope_and_shows_the_secret_once(
        db, database_url, receiver):
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY,
                              webhook_allow_private=True))
    with TestClient(app) as client:
        tokens = scoped_tokens(client, db, "hooks")
        create = """mutation($u: String!) { createWebhookEndpoint(url: $u,
            events: ["entry.posted", "job.failed"], description: "mine") {
            __typename ... on CreateWebhookEndpointResult { secret
              webhookEndpoint { id url events enabled } }
            ... on BadRequestError { code message } } }"""
        refused = client.post("/graphql", json={"query": create, "variables": {"u": receiver.url}},
                              headers=tokens["read"])
        assert refused.status_code == 403 or "errors" in refused.json()
        r = client.post("/graphql", json={"query": create, "variables": {"u": receiver.url}},
                        headers=tokens["write"])
        made = r.json()["data"]["createWebhookEndpoint"]
        assert made["__typename"] == "CreateWebhookEndpointResult", r.text
        assert made["secret"].startswith("whsec_")
        assert made["webhookEndpoint"]["events"] == ["entry.posted", "job.failed"]
        bad = client.post("/graphql", json={"query": create, "variables": {"u": "gopher://x"}},
                          headers=tokens["write"]).json()["data"]["createWebhookEndpoint"]
        assert bad == {"__typename": "BadRequestError", "code": "invalid_url",
                       "message": bad["message"]} and "url" in bad["message"]
        listed = client.post("/graphql", json={"query": "{ webhookEndpoints { id url } }"},
                             headers=tokens["read"]).json()["data"]["webhookEndpoints"]
        assert made["webhookEndpoint"]["id"] in [e["id"] for e in listed]
        deleted = client.post("/graphql", json={"query": """mutation($i: ID!) {
            deleteWebhookEndpoint(id: $i) { __typename } }""", "variables": {
            "i": made["webhookEndpoint"]["id"]}}, headers=tokens["write"]).json()
        assert deleted["data"]["deleteWebhookEndpoint"]["__typename"] == \
            "DeleteWebhookEndpointResult"
