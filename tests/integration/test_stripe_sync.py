"""The Stripe sync against a fake Stripe API (the real `stripe` package pointed at it):
each charge counts exactly once, whether a webhook, a backfill, or both deliver it."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.reconcile.txs import find_txs
from ledger.settings import Secret
from ledger.stripe.sync import recheck_pending
from ledger.errors import BadRequestError
from tests.fakes.stripe_server import WEBHOOK_SECRET, FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import entry_count, stripe_config, stripe_wallet

DAY = 86400


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def wallet(db, unique):
    return stripe_wallet(db, unique)


def deliver(db, fake, event: dict, link_id: str, secret: str = WEBHOOK_SECRET):
    """What the webhook route and its task do: verify, store, process."""
    payload = json.dumps(event)
    verified = service.verify_stripe_event(payload.encode(), fake.sign(payload, secret),
                                        Secret(WEBHOOK_SECRET))
    stored = service.store_stripe_event(db, verified)
    report = service.process_stripe_event(db, stripe_config(link_id), verified["id"], fake.client())
    return stored, report


def since_yesterday():
    return datetime.now(timezone.utc) - timedelta(days=1)


def test_webhook_then_backfill_posts_one_entry(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_charge(2500, fee=103, metadata={"user_id": "alice"})
    stored, report = deliver(db, fake, fake.event("charge.succeeded", made["charge"]), link)
    assert stored and report.reconciled == 2 and not report.problems  # deposit and fee
    again = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert again.listed == 1 and again.reconciled == 0 and again.already_reconciled == 2
    assert entry_count(db, ledger, "deposit") == 1 and entry_count(db, ledger, "stripe_fee") == 1
    assert own(db, ledger, "liabilities/users:alice/available") == 2500
    assert own(db, ledger, "assets/banks/user-cash") == 2500 - 103
    assert own(db, ledger, "expense/stripe-fees") == 103
    # The deposit's tx is named by the charge (seed 000 reconciles by charge id) and posted
    # when the charge happened.
    (tx,) = find_txs(db, link, made["charge"]["id"])
    assert tx.amount == 2500 and tx.entry_ids
    assert tx.posted == datetime.fromtimestamp(made["charge"]["created"], tz=timezone.utc)


def test_missed_webhook_backfill_posts_it(db, fake, wallet):
    ledger, link = wallet
    fake.add_charge(700, metadata={"user_id": "bob"})
    report = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert report.reconciled == 1 and report.synced == 1
    assert own(db, ledger, "liabilities/users:bob/available") == 700


def test_two_charges_same_amount_same_day_are_two_entries(db, fake, wallet):
    ledger, link = wallet
    now = int(time.time())
    fake.add_charge(1000, metadata={"user_id": "carol"}, created=now - 60)
    fake.add_charge(1000, metadata={"user_id": "carol"}, created=now - 60)
    report = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert report.reconciled == 2
    assert entry_count(db, ledger, "deposit") == 2
    assert own(db, ledger, "liabilities/users:carol/available") == 2000


def test_replayed_event_is_a_no_op(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_charge(400, metadata={"user_id": "dan"})
    event = fake.event("charge.succeeded", made["charge"])
    assert deliver(db, fake, event, link)[0] is True
    stored, report = deliver(db, fake, event, link)
    assert stored is False and report.listed == 0
    assert entry_count(db, ledger) == 1
    with db.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM stripe_events WHERE id = :i"),
                            {"i": event["id"]}).scalar() == 1


def test_bad_signature_is_refused(db, fake, wallet):
    made = fake.add_charge(400, metadata={"user_id": "eve"})
    payload = json.dumps(fake.event("charge.succeeded", made["charge"]))
    for header in (fake.sign(payload, "whsec_wrong"), None, "garbage",
                   fake.sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)):
        with pytest.raises(BadRequestError) as info:
            service.verify_stripe_event(payload.encode(), header, Secret(WEBHOOK_SECRET))
        assert info.value.code == "invalid_signature"
    # An altered body does not verify either.
    header = fake.sign(payload, WEBHOOK_SECRET)
    with pytest.raises(BadRequestError):
        service.verify_stripe_event(payload.replace("400", "40000").encode(), header,
                                 Secret(WEBHOOK_SECRET))


def test_pending_charge_is_synced_only_once_available(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_charge(900, metadata={"user_id": "fay"}, pending=True)
    txn = made["balance_transaction"]["id"]
    _, report = deliver(db, fake, fake.event("charge.succeeded", made["charge"]), link)
    assert report.pending == 1 and report.synced == 0
    report = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert report.pending == 1 and report.synced == 0
    assert find_txs(db, link, made["charge"]["id"]) == []
    assert entry_count(db, ledger) == 0
    # Not due yet (available_on is two days away): the scheduled re-check leaves it.
    assert recheck_pending(db, service.stripe_settings(db, stripe_config(link)), fake.client()).listed == 0
    fake.settle(txn)
    # Stripe says so with balance.available; the re-check it triggers syncs it.
    _, report = deliver(db, fake, fake.event("balance.available", {"object": "balance"}), link)
    assert report.synced == 1 and report.reconciled == 1
    assert own(db, ledger, "liabilities/users:fay/available") == 900
    # Settled, it is no longer pending: nothing left to re-check.
    assert recheck_pending(db, service.stripe_settings(db, stripe_config(link)), fake.client(),
                                       due_only=False).listed == 0


def test_charge_without_user_id_stays_unreconciled_and_is_listed(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_charge(333, metadata={"order": "o-1"})
    fake.add_charge(444, metadata={"user_id": "gus"})
    report = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert report.reconciled == 1
    (problem,) = report.problems
    txn = made["balance_transaction"]["id"]
    assert problem.balance_transaction == txn and "user_id" in problem.reason
    assert [p.balance_transaction for p in service.stripe_problems(db, stripe_config(link))] == [txn]
    page = service.unreconciled_txs(db, ledger, "assets/banks/user-cash")
    assert [(x.external_id, x.amount) for x in page.txs] == [(made["charge"]["id"], 333)]
    assert entry_count(db, ledger, "deposit") == 1
    # Another delivery does not guess either.
    service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert entry_count(db, ledger, "deposit") == 1


def test_backfill_pages_over_more_than_100_and_resumes_from_its_cursor(db, fake, unique):
    ledger, link = stripe_wallet(db, unique, fee_type=False)
    start = int(time.time()) - 3 * DAY
    for i in range(230):
        fake.add_charge(100 + i, metadata={"user_id": f"u{i % 7}"}, created=start + i * 60)
    # Outside the window: never listed.
    fake.add_charge(5, metadata={"user_id": "old"}, created=start - DAY)
    since = datetime.fromtimestamp(start, tz=timezone.utc)

    class Interrupted(Exception):
        pass

    seen = []

    def progress(fraction, report):
        seen.append(fraction)
        if report.listed == 150:
            raise Interrupted

    with pytest.raises(Interrupted):
        service.stripe_backfill(db, stripe_config(link), since, client=fake.client(), progress=progress)
    assert entry_count(db, ledger) == 150
    # The cursor is in the database: the next run with the same `since` continues after
    # the last complete page (100 objects), not from the start.
    fake.requests.clear()
    report = service.stripe_backfill(db, stripe_config(link), since, client=fake.client())
    assert fake.requests[0][1].get("starting_after")
    assert report.listed == 130 and report.reconciled == 80 and report.already_reconciled == 50
    assert entry_count(db, ledger) == 230
    assert own(db, ledger, "assets/banks/user-cash") == sum(100 + i for i in range(230))
    assert all(int(p[1]["limit"]) == 100 for p in fake.requests)
    assert seen == sorted(seen)  # newest first: progress only grows
    settings = service.stripe_settings(db, stripe_config(link))
    assert settings.done_until is not None


def test_trailing_backfill_starts_where_the_last_one_ended(db, fake, wallet):
    ledger, link = wallet
    fake.add_charge(10, metadata={"user_id": "h"}, created=int(time.time()) - 10 * DAY)
    fake.add_charge(20, metadata={"user_id": "h"})
    report = service.stripe_backfill_trailing(db, stripe_config(link), fake.client())
    assert report.reconciled == 1  # the trailing window is 3 days
    first_end = service.stripe_settings(db, stripe_config(link)).done_until
    fake.add_charge(30, metadata={"user_id": "h"})
    fake.requests.clear()
    report = service.stripe_backfill_trailing(db, stripe_config(link), fake.client())
    assert report.reconciled == 1
    assert own(db, ledger, "liabilities/users:h/available") == 50
    assert service.stripe_settings(db, stripe_config(link)).done_until > first_end


def test_webhook_and_backfill_racing_post_one_entry(db, fake, wallet):
    ledger, link = wallet
    made = [fake.add_charge(50 + i, metadata={"user_id": "race"}) for i in range(10)]
    events = [fake.event("charge.succeeded", m["charge"]) for m in made]
    errors = []
    barrier = threading.Barrier(3)

    def webhooks():
        barrier.wait()
        for event in events:
            deliver(db, fake, event, link)

    def backfill():
        barrier.wait()
        service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())

    def guard(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(f)) for f in (webhooks, backfill, backfill)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert entry_count(db, ledger, "deposit") == 10
    assert own(db, ledger, "liabilities/users:race/available") == sum(50 + i for i in range(10))


def test_secrets_never_show(db, wallet):
    _, link = wallet
    settings = service.stripe_settings(db, stripe_config(link))
    text = repr(settings) + str(settings)
    assert "rk_test" not in text and "whsec_" not in text
    assert settings.api_key.reveal().startswith("rk_test")


def test_other_balance_transactions_are_synced_unreconciled_without_problems(db, fake, wallet):
    ledger, link = wallet
    payout = fake.add_balance_transaction(-5000, type="payout")
    report = service.stripe_backfill(db, stripe_config(link), since_yesterday(), client=fake.client())
    assert report.synced == 1 and report.reconciled == 0 and not report.problems
    page = service.unreconciled_txs(db, ledger, "assets/banks/user-cash")
    assert [(x.external_id, x.amount) for x in page.txs] == [(payout["id"], -5000)]


def event_state(db, event_id: str):
    with db.transaction() as conn:
        return conn.execute(sa.text("SELECT processed, error FROM stripe_events WHERE id = :i"),
                            {"i": event_id}).one()


def test_payment_intent_succeeded_posts_its_latest_charge(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_payment_intent(1200, fee=40, metadata={"user_id": "pia"})
    stored, report = deliver(db, fake, fake.event("payment_intent.succeeded",
                                                  made["payment_intent"]), link)
    assert stored and report.reconciled == 2 and not report.problems
    assert own(db, ledger, "liabilities/users:pia/available") == 1200
    # Its charge's own event, later, finds it posted.
    _, again = deliver(db, fake, fake.event("charge.succeeded", made["charge"]), link)
    assert again.already_reconciled == 2 and entry_count(db, ledger, "deposit") == 1


def test_a_payment_intent_event_without_its_charge_asks_the_api(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_payment_intent(650, metadata={"user_id": "quinn"})
    stale = {**made["payment_intent"], "latest_charge": None}
    _, report = deliver(db, fake, fake.event("payment_intent.succeeded", stale), link)
    assert report.reconciled == 1
    assert own(db, ledger, "liabilities/users:quinn/available") == 650


@pytest.mark.parametrize("kind", ["charge", "payment_intent"])
def test_an_unsettled_charge_waits_in_the_inbox_and_posts_once_settled(db, fake, wallet, kind):
    ledger, link = wallet
    if kind == "charge":
        made = fake.add_unsettled_charge(880, metadata={"user_id": "rita"})
        event = fake.event("charge.pending", made["charge"])
    else:
        made = fake.add_payment_intent(880, metadata={"user_id": "rita"}, unsettled=True)
        event = fake.event("payment_intent.processing", made["payment_intent"])
    stored, report = deliver(db, fake, event, link)
    assert stored and report.waiting == 1 and report.synced == 0
    processed, error = event_state(db, event["id"])
    assert processed is None and "not settled" in error  # stays in the inbox
    # The sweep tries again: still unsettled, still waiting, nothing posted.
    swept = service.process_stripe_inbox(db, stripe_config(link), fake.client(),
                                         older_than=timedelta(0))
    assert swept.waiting >= 1 and entry_count(db, ledger) == 0
    fake.settle_charge(made["charge"]["id"])
    swept = service.process_stripe_inbox(db, stripe_config(link), fake.client(),
                                         older_than=timedelta(0))
    assert swept.reconciled >= 1
    assert own(db, ledger, "liabilities/users:rita/available") == 880
    assert event_state(db, event["id"]).processed is not None


def test_a_failed_charge_without_balance_transaction_is_done_not_waiting(db, fake, wallet):
    ledger, link = wallet
    made = fake.add_unsettled_charge(990, metadata={"user_id": "sam"})
    with fake.lock:
        fake.charges[made["charge"]["id"]]["status"] = "failed"
    event = fake.event("charge.failed", {**made["charge"], "status": "failed"})
    _, report = deliver(db, fake, event, link)
    assert report.waiting == 0 and event_state(db, event["id"]).processed is not None
    assert entry_count(db, ledger) == 0


EVENT_TYPES = ["charge.succeeded", "charge.captured", "charge.updated", "charge.refunded",
               "payment_intent.succeeded", "balance.available", "customer.created"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_runs_on_the_real_stripe_package(db, fake, wallet, event_type):
    """Each kind of event the webhook accepts, processed with the real `stripe` client (its
    objects are StripeObjects, not dicts) against the fake server."""
    ledger, link = wallet
    made = fake.add_payment_intent(321, metadata={"user_id": "tom"})
    obj = {"charge": made["charge"], "payment_intent": made["payment_intent"],
           "balance": {"object": "balance"}, "customer": {"id": "cus_1", "object": "customer"}
           }[event_type.split(".")[0]]
    if event_type == "charge.updated":
        obj = {**obj, "balance_transaction": None}  # the event may predate settlement
    _, report = deliver(db, fake, fake.event(event_type, obj), link)
    expected = 0 if event_type in ("balance.available", "customer.created") else 321
    assert own(db, ledger, "liabilities/users:tom/available") == expected
    assert report.waiting == 0 and not report.problems
