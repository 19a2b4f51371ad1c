"""`POST /webhooks/stripe` on the real app, the Stripe tasks in a real Celery worker (and
its beat), and `ledger stripe backfill` as a subprocess, all against the fake Stripe API."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.settings import Settings
from tests.fakes.stripe_server import WEBHOOK_SECRET, FakeStripe
from tests.integration.conftest import REPO
from tests.integration.helpers import own
from tests.integration.stripe_helpers import entry_count, stripe_wallet
from tests.keys import SECRET_KEY


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


def stored_events(db, event_id: str) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM stripe_events WHERE id = :i"),
                            {"i": event_id}).scalar()


def processed(db, event_id: str) -> bool:
    with db.transaction() as conn:
        return conn.execute(sa.text("SELECT processed IS NOT NULL FROM stripe_events "
                                    "WHERE id = :i"), {"i": event_id}).scalar() is True


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_signature_is_checked_on_the_raw_body_and_bad_ones_store_nothing(
        db, database_url, unique, fake, monkeypatch):
    _, link = stripe_wallet(db, unique)
    monkeypatch.setenv("STRIPE_LINK_ID", link)
    monkeypatch.delenv("REDIS_URL", raising=False)  # no broker: the inbox sweep's job
    made = fake.add_charge(100, metadata={"user_id": "a"})
    event = fake.event("charge.succeeded", made["charge"])
    payload = json.dumps(event)
    app = create_app(Settings(database_url=database_url, stripe_link_id=link,
                                  secret_key=SECRET_KEY))
    with TestClient(app) as client:
        for headers in ({"Stripe-Signature": fake.sign(payload, "whsec_other")}, {},
                        {"Stripe-Signature": fake.sign(payload, WEBHOOK_SECRET,
                                                       timestamp=int(time.time()) - 3600)}):
            r = client.post("/webhooks/stripe", content=payload,
                            headers={"Content-Type": "application/json", **headers})
            assert r.status_code == 400, r.text
            assert r.json()["code"] == "invalid_signature"
        assert stored_events(db, event["id"]) == 0
        # Re-serialized JSON is not the signed body.
        signed = fake.sign(payload, WEBHOOK_SECRET)
        r = client.post("/webhooks/stripe", content=json.dumps(event, indent=1),
                        headers={"Stripe-Signature": signed, "Content-Type": "application/json"})
        assert r.status_code == 400 and stored_events(db, event["id"]) == 0
        # No bearer token needed: the signature is the authentication.
        r = client.post("/webhooks/stripe", content=payload,
                        headers={"Stripe-Signature": signed, "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json() == {"received": True, "id": event["id"],
                                                     "duplicate": False}
        r = client.post("/webhooks/stripe", content=payload,
                        headers={"Stripe-Signature": signed, "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["duplicate"] is True
    assert stored_events(db, event["id"]) == 1


@pytest.mark.slow
def test_webhook_worker_beat_and_cli_post_each_charge_once(pipeline, db, database_url, fake,
                                                           unique, monkeypatch):
    ledger, link = stripe_wallet(db, unique)
    state = pipeline.api.app.state
    # The pipeline fixture puts the original settings back.
    state.settings = dataclasses.replace(state.settings, stripe_link_id=link)
    pipeline.worker(beat=True, STRIPE_LINK_ID=link, STRIPE_API_BASE=fake.url,
                    LEDGER_STRIPE_BACKFILL_EVERY_SECONDS=2, LEDGER_STRIPE_INBOX_EVERY_SECONDS=2)

    # 1. A webhook: stored, enqueued after the answer, posted by the worker.
    made = fake.add_charge(1500, fee=75, metadata={"user_id": "wendy"})
    event = fake.event("charge.succeeded", made["charge"])
    payload = json.dumps(event)
    r = httpx.post(f"{pipeline.api.url}/webhooks/stripe", content=payload,
                   headers={"Stripe-Signature": fake.sign(payload),
                            "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: entry_count(db, ledger, "deposit") == 1, what="the webhook's deposit")
    wait_for(lambda: processed(db, event["id"]), what="the event processed")

    # 2. A charge whose webhook never came: beat's trailing backfill posts it.
    fake.add_charge(800, metadata={"user_id": "wendy"})
    wait_for(lambda: entry_count(db, ledger, "deposit") == 2, what="the backfilled deposit")

    # 3. The hand backfill finds both posted already.
    since = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    env = {**pipeline.env, "STRIPE_LINK_ID": link, "STRIPE_API_BASE": fake.url}
    done = subprocess.run([sys.executable, "-m", "api.cli", "stripe", "backfill",
                           "--since", since, "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["listed"] == 2 and report["reconciled"] == 0 and report["problems"] == []
    assert entry_count(db, ledger, "deposit") == 2
    assert own(db, ledger, "liabilities/users:wendy/available") == 2300
    assert own(db, ledger, "expense/stripe-fees") == 75
    # Nothing in the worker's log shows the secrets.
    logs = "\n".join(w.log_path.read_text(errors="replace") for w in pipeline.workers)
    assert "rk_test_fake" not in logs and "whsec_fake" not in logs
    assert "Traceback" not in logs, logs[-3000:]
    assert "ledger.stripe.event" in logs and "ledger.stripe.backfill" in logs
