"""Hostile input to the Stripe link (issue 12): signed webhook bodies that are not events,
timestamps outside the tolerance either way, what an unauthenticated caller learns, events
processed with the real `stripe` package's objects, and secrets at rest."""
from __future__ import annotations

import json
import time

import jwt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import service
from ledger.settings import Settings
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import stripe_config, stripe_wallet
from tests.keys import KEYRING, SECRET_KEY


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def wallet(db, unique):
    return stripe_wallet(db, unique)


def app_for(database_url: str, link: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=database_url, stripe_link_id=link,
                                          secret_key=SECRET_KEY)))


def stored_events(db) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM stripe_events")).scalar()


def accepted(db, client: TestClient, event: dict) -> None:
    """A good event is still accepted; then it leaves the inbox, which the run shares (a
    worker's sweep in a later test would try it against another fake)."""
    assert post(client, *sign(json.dumps(event))).status_code == 200
    with db.transaction() as conn:
        conn.execute(sa.text("DELETE FROM stripe_events WHERE id = :i"), {"i": event["id"]})


def post(client: TestClient, body: bytes, header: str | None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return client.post("/webhooks/stripe", content=body, headers=headers)


def sign(payload: str | bytes, timestamp: int | None = None) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
    return body, FakeStripe.sign_raw(body, WEBHOOK_SECRET, timestamp)


def good_event(fake: FakeStripe, **changes) -> dict:
    made = fake.add_charge(100, metadata={"user_id": "h"})
    return {**fake.event("charge.succeeded", made["charge"]), **changes}


def test_timestamps_outside_the_tolerance_either_way_are_refused(db, database_url, fake, wallet):
    _, link = wallet
    event = good_event(fake)
    payload = json.dumps(event)
    before = stored_events(db)
    with app_for(database_url, link) as client:
        # 310, not 301: a second may pass between signing and the check.
        for offset in (3600, 310, -3600):
            r = post(client, *sign(payload, int(time.time()) + offset))
            assert r.status_code == 400, (offset, r.text)
            assert r.json()["code"] == "invalid_signature"
        assert stored_events(db) == before
        assert post(client, *sign(payload, int(time.time()) + 30)).status_code == 200
        accepted(db, client, event)  # a redelivery; then out of the inbox


HOSTILE_BODIES = {
    "a list": "[1,2]",
    "a number": "7",
    "deeply nested lists": "[" * 100_000 + "]" * 100_000,
    "deeply nested objects": '{"a":' * 3000 + "1" + "}" * 3000,
    # Deeper than the webhook's own bound, within the API's (LEDGER_MAX_JSON_DEPTH).
    "nested past the webhook's bound": '{"id": "evt_n", "type": "charge.succeeded", '
                                       '"data": {"object": {"x": ' + "[" * 40 + "]" * 40 + "}}}",
    "no id": '{"object": "event", "type": "charge.succeeded", "data": {"object": {}}}',
    "no type": '{"id": "evt_x", "object": "event", "data": {"object": {}}}',
    "NUL in the id": '{"id": "evt_\\u0000", "type": "charge.succeeded", "data": {"object": {}}}',
    "a lone surrogate in the id":
        '{"id": "evt_\\ud800", "type": "charge.succeeded", "data": {"object": {}}}',
    "NUL deep inside": '{"id": "evt_y", "type": "charge.succeeded", "data": {"object": '
                       '{"metadata": {"user_id": "a\\u0000b"}}}}',
    "data not an object": '{"id": "evt_z", "type": "charge.succeeded", "data": [1]}',
    "not UTF-8": b'{"id": "evt_\xff", "type": "charge.succeeded", "data": {"object": {}}}',
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_signed_body_that_is_not_an_event_is_a_typed_400_and_stores_nothing(
        db, database_url, fake, wallet, name):
    _, link = wallet
    before = stored_events(db)
    with app_for(database_url, link) as client:
        r = post(client, *sign(HOSTILE_BODIES[name]))
        assert r.status_code == 400, r.text
        body = r.json()
        # Past LEDGER_MAX_JSON_DEPTH the API refuses the body before the webhook reads it.
        code = "json_too_deep" if name.startswith("deeply nested") else "invalid_event"
        assert (body["__typename"], body["code"], body["field"]) == (
            "BadRequestError", code, "body")
        assert stored_events(db) == before
        # The connection and the service carry on.
        accepted(db, client, good_event(fake))


def test_an_unconfigured_stripe_answers_as_a_bad_signature(db, database_url, fake, unique):
    link = unique("stripe-unset")
    service.configure_stripe(db, stripe_config(link))  # a link with no webhook secret
    payload = json.dumps(good_event(fake))
    with app_for(database_url, link) as client:
        unconfigured = post(client, *sign(payload))
    _, configured = stripe_wallet(db, unique)
    with app_for(database_url, configured) as client:
        wrong = post(client, payload.encode(), fake.sign(payload, "whsec_not_it"))
    assert unconfigured.status_code == wrong.status_code == 400
    assert unconfigured.json() == wrong.json()
    assert "Retry-After" not in unconfigured.headers


def test_a_payment_intent_event_posts_its_charge_through_the_real_package(db, database_url,
                                                                         fake, wallet):
    ledger, link = wallet
    made = fake.add_payment_intent(4200, metadata={"user_id": "ivy"})
    event = fake.event("payment_intent.succeeded", made["payment_intent"])
    with app_for(database_url, link) as client:
        assert post(client, *sign(json.dumps(event))).status_code == 200
    report = service.process_stripe_event(db, stripe_config(link), event["id"], fake.client())
    assert report.reconciled == 1
    assert own(db, ledger, "liabilities/users:ivy/available") == 4200


def test_an_unsettled_charge_is_retried_not_dropped(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_unsettled_charge(310, metadata={"user_id": "jo"})
    event = fake.event("charge.pending", made["charge"])
    payload = json.dumps(event)
    verified = service.verify_stripe_event(payload.encode(), fake.sign(payload), WEBHOOK_SECRET)
    service.store_stripe_event(db, verified)
    assert service.process_stripe_event(db, stripe_config(link), event["id"],
                                        fake.client()).waiting == 1
    fake.settle_charge(made["charge"]["id"])
    assert service.process_stripe_event(db, stripe_config(link), event["id"],
                                        fake.client()).reconciled == 1
    assert own(db, ledger, "liabilities/users:jo/available") == 310


def test_stored_stripe_credentials_hold_no_plain_text(db, wallet):
    _, link = wallet
    with db.transaction() as conn:
        row = conn.execute(sa.text(
            "SELECT s.api_key, s.webhook_secret FROM stripe_links s JOIN links l "
            "ON l.id = s.link_id WHERE l.public_id = :l"), {"l": link}).one()
    for stored, plain in ((row.api_key, API_KEY), (row.webhook_secret, WEBHOOK_SECRET)):
        assert plain not in stored and plain[:8] not in stored and stored.startswith("enc:")
    settings = service.stripe_settings(db, stripe_config(link))
    assert settings.api_key.reveal() == API_KEY
    assert settings.webhook_secret.reveal() == WEBHOOK_SECRET


def test_the_stored_token_signing_key_is_encrypted(db, token):
    with db.transaction() as conn:
        stored = conn.execute(sa.text("SELECT secret FROM api_signing_keys")).scalar_one()
    key = service.signing_key(db, KEYRING)
    assert key not in stored and stored.startswith("enc:")
    # The stored value does not sign tokens; the key it encrypts does.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, stored, algorithms=["HS256"], options={"verify_exp": False})
    assert jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False,
                                                                 "verify_iss": False})["sub"]
