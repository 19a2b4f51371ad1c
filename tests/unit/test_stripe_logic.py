"""The Stripe link's logic that needs no database and no server, against the fake port."""
from __future__ import annotations

from datetime import datetime, timezone

import json
import time

import pytest
import stripe

from ledger.stripe.api import StripeApi, stripe_api
from ledger.stripe.backfill import backfill_params
from ledger.errors import BadRequestError
from ledger.settings import Secret
from ledger.stripe.events import NotSettled, event_balance_transaction, rechecks_pending, verify_event
from ledger.stripe.model import StripeSettings
from ledger.stripe.sync import map_parameters, planned_entries, planned_txs, tx_external_id
from tests.fakes.stripe_server import FakeStripe
from tests.unit.fakes_stripe import FakeStripeApi


def settings(**changes) -> StripeSettings:
    values = dict(link_id="stripe", ledger_ik="wallet", charge_entry_type="deposit",
                  fee_entry_type="stripe_fee", parameters={"user_id": "metadata.user_id"},
                  api_key=None, webhook_secret=None)
    values.update(changes)
    return StripeSettings(**values)


def test_a_charge_with_a_fee_becomes_its_gross_tx_and_a_negative_fee_tx():
    bt = FakeStripeApi().add_charge("ch_1", 2500, fee=103, metadata={"user_id": "alice"})
    gross, fee = planned_txs(bt)
    assert gross.external_id == "ch_1" and gross.amount == 2500  # named by the charge
    assert fee.external_id == "ch_1:fee" and fee.amount == -103
    assert fee.description == f"Stripe fee: {gross.description}"
    assert gross.posted == datetime.fromtimestamp(bt["created"], tz=timezone.utc) == fee.posted


def test_other_balance_transactions_are_named_by_their_own_id_and_have_no_fee_tx():
    bt = {"id": "txn_po", "type": "payout", "amount": -900, "fee": 0, "currency": "usd",
          "created": 1_700_000_000, "source": "po_1", "description": None}
    assert tx_external_id(bt) == "txn_po"
    (only,) = planned_txs(bt)
    assert only.amount == -900 and only.description == "payout po_1"


def test_a_charge_is_reconciled_with_parameters_from_its_metadata_and_its_fee_too():
    bt = FakeStripeApi().add_charge("ch_2", 900, fee=30, metadata={"user_id": "fay"})
    entries, problems = planned_entries(settings(), bt)
    assert problems == []
    assert [(e.tx_index, e.entry_type, e.parameters) for e in entries] == [
        (0, "deposit", {"user_id": "fay"}), (1, "stripe_fee", {"user_id": "fay"})]


def test_a_charge_lacking_a_parameter_is_reported_never_guessed():
    bt = FakeStripeApi().add_charge("ch_3", 900, fee=30)
    entries, problems = planned_entries(settings(), bt)
    assert [e.entry_type for e in entries] == ["stripe_fee"]
    assert problems == ["charge ch_3 has no user_id; left unreconciled "
                        "(mapping: user_id <- metadata.user_id)"]


def test_no_entry_types_configured_means_nothing_to_reconcile():
    bt = FakeStripeApi().add_charge("ch_4", 900, fee=30, metadata={"user_id": "x"})
    assert planned_entries(settings(charge_entry_type=None, fee_entry_type=None), bt) == ([], [])


def test_parameters_read_the_charge_or_the_balance_transaction_and_refuse_empty_values():
    bt = {"id": "txn_9", "type": "charge", "reporting_category": "charge"}
    charge = {"id": "ch_9", "metadata": {"user_id": "", "flag": True, "n": 7}, "customer": "cus_1"}
    found, missing = map_parameters(
        {"a": "charge.customer", "b": "balance_transaction.reporting_category",
         "c": "metadata.n", "d": "metadata.user_id", "e": "metadata.flag", "f": "metadata.none"},
        bt, charge)
    assert found == {"a": "cus_1", "b": "charge", "c": "7"}
    assert missing == ["d", "e", "f"]


def test_events_name_their_balance_transaction_looking_up_charges_only_when_needed():
    api = FakeStripeApi()
    api.add_charge("ch_5", 100)
    assert event_balance_transaction("charge.succeeded", {"object": "charge", "id": "ch_5",
                                     "balance_transaction": "txn_ch_5"}, api) == "txn_ch_5"
    assert api.calls == []
    assert event_balance_transaction("charge.updated", {"object": "charge", "id": "ch_5",
                                     "balance_transaction": None}, api) == "txn_ch_5"
    assert event_balance_transaction("payment_intent.succeeded", {
        "object": "payment_intent", "latest_charge": {"id": "ch_5"}}, api) == "txn_ch_5"
    assert api.calls == [("charge", "ch_5"), ("charge", "ch_5")]
    assert event_balance_transaction("balance_transaction.created", {
        "object": "balance_transaction", "id": "txn_7"}, api) == "txn_7"
    assert event_balance_transaction("balance.available", {"object": "balance"}, api) is None


def test_a_payment_intent_leads_to_its_latest_charge_asking_the_api_when_the_event_lacks_it():
    api = FakeStripeApi()
    api.add_charge("ch_6", 100)
    api.add_payment_intent("pi_6", "ch_6")
    assert event_balance_transaction("payment_intent.succeeded", {
        "object": "payment_intent", "id": "pi_6", "latest_charge": None}, api) == "txn_ch_6"
    assert api.calls == [("payment_intent", "pi_6"), ("charge", "ch_6")]
    api.add_payment_intent("pi_7", None, status="canceled")
    assert event_balance_transaction("payment_intent.canceled", {
        "object": "payment_intent", "id": "pi_7", "latest_charge": None}, api) is None


def test_a_charge_not_settled_yet_is_waited_for_and_a_failed_one_is_not():
    api = FakeStripeApi()
    api.add_charge("ch_8", 100)
    api.charges["ch_8"].update(balance_transaction=None, status="pending")
    api.add_payment_intent("pi_8", "ch_8", status="processing")
    for event_type, obj in (
            ("charge.pending", {"object": "charge", "id": "ch_8", "balance_transaction": None}),
            ("payment_intent.processing", {"object": "payment_intent", "id": "pi_8",
                                           "latest_charge": "ch_8"})):
        with pytest.raises(NotSettled) as info:
            event_balance_transaction(event_type, obj, api)
        assert info.value.object_id == "ch_8"
    api.charges["ch_8"]["status"] = "failed"
    assert event_balance_transaction("charge.failed", {
        "object": "charge", "id": "ch_8", "balance_transaction": None}, api) is None
    api.add_payment_intent("pi_9", None, status="processing")
    with pytest.raises(NotSettled):
        event_balance_transaction("payment_intent.processing", {
            "object": "payment_intent", "id": "pi_9", "latest_charge": None}, api)


def test_only_balance_available_without_a_transaction_of_its_own_rechecks_pending():
    assert rechecks_pending("balance.available", {"object": "balance"})
    assert rechecks_pending("balance.available", {"object": "payment_intent"})
    assert not rechecks_pending("balance.available", {"object": "charge", "id": "ch_1"})
    assert not rechecks_pending("charge.succeeded", {"object": "balance"})


def test_backfill_pages_cover_the_window_to_its_last_second_and_resume_after_the_cursor():
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    until = datetime(2025, 1, 2, 0, 0, 0, 500_000, tzinfo=timezone.utc)
    params = backfill_params(since, until, None)
    assert params["created"] == {"gte": int(since.timestamp()), "lt": int(until.timestamp()) + 1}
    assert params["limit"] == 100 and params["expand"] == ["data.source"]
    assert "starting_after" not in params
    assert backfill_params(since, until, "txn_1")["starting_after"] == "txn_1"


def test_the_fake_pages_as_stripe_does():
    api = FakeStripeApi()
    for n in range(5):
        api.add_charge(f"ch_{n}", 100 + n, created=1_700_000_000 + n)
    params = {"created": {"gte": 0, "lt": 2**40}, "limit": 2}
    first = api.balance_transactions(params)
    assert [bt["id"] for bt in first.data] == ["txn_ch_4", "txn_ch_3"] and first.has_more
    assert all(isinstance(bt, stripe.StripeObject) for bt in first.data)
    last = api.balance_transactions({**params, "starting_after": "txn_ch_1", "limit": 5})
    assert [bt["id"] for bt in last.data] == ["txn_ch_0"] and not last.has_more


def test_a_port_passes_through_and_needs_no_api_key():
    api: StripeApi = FakeStripeApi()
    assert stripe_api(settings(), api) is api


def test_the_backfill_and_sync_helpers_take_stripe_objects_as_the_package_gives_them():
    api = FakeStripeApi()
    bt = api.balance_transaction(api.add_charge("ch_10", 500, fee=5, metadata={"user_id": "u"})["id"])
    assert isinstance(bt, stripe.StripeObject) and not isinstance(bt, dict)
    assert tx_external_id(bt) == "ch_10"
    assert [p.amount for p in planned_txs(bt)] == [500, -5]
    assert planned_entries(settings(), bt)[0][0].parameters == {"user_id": "u"}


SECRET = "whsec_unit"


def signed(payload: str | bytes, *, timestamp: int | None = None) -> tuple[bytes, str]:
    body = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return body, FakeStripe.sign_raw(body, SECRET, timestamp)


def refused(body: bytes, header: str | None, secret=Secret(SECRET)) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        verify_event(body, header, secret)
    return info.value


def event_json(event_id: str = "evt_1", type_: str = "charge.succeeded") -> str:
    return json.dumps({"id": event_id, "object": "event", "type": type_,
                       "data": {"object": {"object": "charge", "id": "ch_1"}}})


def test_a_timestamp_past_the_tolerance_either_way_is_refused():
    now = int(time.time())
    assert verify_event(*signed(event_json(), timestamp=now - 60), Secret(SECRET))["id"] == "evt_1"
    for when in (now - 3600, now + 3600, now + 301):
        assert refused(*signed(event_json(), timestamp=when)).code == "invalid_signature"


@pytest.mark.parametrize("body", [
    "[1,2]", "1", "null", '"evt"', "{}", '{"id": "evt_1"}', '{"type": "charge.succeeded"}',
    '{"id": 7, "type": "charge.succeeded", "data": {"object": {}}}',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5000 + "1" + "}" * 5000,
    event_json("evt_\u0000"), event_json("evt_\ud800"), event_json("evt_" + "x" * 300),
    event_json(type_="charge.\u0000"),
    event_json().replace('"ch_1"', '"ch_\u0000"'),
    event_json().replace('"ch_1"', '"\udfff"'),
    '{"id": "evt_1", "object": "event", "type": "charge.succeeded", "data": [1]}',
    b"\xff\xfe{}",
])
def test_a_signed_body_that_is_not_a_storable_event_is_a_typed_400(body):
    error = refused(*signed(body))
    assert error.code == "invalid_event" and error.field == "body"


def test_without_a_webhook_secret_the_answer_is_the_bad_signature_one():
    body, header = signed(event_json())
    missing, bad = refused(body, header, None), refused(body, header, Secret("whsec_other"))
    assert (missing.code, missing.message) == (bad.code, bad.message) == (
        "invalid_signature", bad.message)
