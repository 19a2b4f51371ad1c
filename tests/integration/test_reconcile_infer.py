"""reconcileTx without an entry type (seed 001: ``reconcile_tx(external_ref=charge_id,
user_id=user_id)``): the entry type is the one whose linked line can take the tx and whose
parameters the call fits; none or several is a BadRequestError naming them."""
from __future__ import annotations

import pytest

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from tests.integration.helpers import own


def bank_schema(key: str, link: str, *extra_types: dict) -> dict:
    user = "liabilities/users:{{user_id}}/available"
    return {
        "key": key,
        "chartOfAccounts": {"accounts": [
            {"key": "bank", "type": "asset", "children": [
                {"key": "operating", "linkedAccount": {"linkId": link, "externalId": "acct-op"}},
                {"key": "holding", "linkedAccount": {"linkId": link, "externalId": "acct-hold"}},
                {"key": "cash"}]},
            {"key": "liabilities", "type": "liability", "children": [
                {"key": "users", "template": True, "children": [{"key": "available"}]}]},
            {"key": "expense", "type": "expense", "children": [{"key": "fees"}]},
        ]},
        "ledgerEntries": {"types": [
            {"type": "fund", "description": "Fund {{user_id}}", "lines": [
                {"key": "bank", "account": {"path": "bank/operating"}, "amount": "{{amount}}",
                 "tx": {"externalId": "{{tx_id}}"}},
                {"key": "user", "account": {"path": user}, "amount": "{{amount}}"}]},
            {"type": "bank_fee", "lines": [
                {"key": "bank", "account": {"path": "bank/operating"}, "amount": "-{{fee}}",
                 "tx": {"externalId": "{{fee_tx}}"}},
                {"key": "fee", "account": {"path": "expense/fees"}, "amount": "{{fee}}"}]},
            # A custom link's line names its tx by a parameter; the call's tx fills it.
            {"type": "fund_via_link", "lines": [
                {"key": "bank", "account": {"path": "bank/holding"},
                 "tx": {"externalId": "{{bank_transaction_id}}"}},
                {"key": "user", "account": {"path": user}}]},
            # Posts to no linked account: never a candidate.
            {"type": "cash_deposit", "lines": [
                {"key": "cash", "account": {"path": "bank/cash"}, "amount": "{{amount}}"},
                {"key": "user", "account": {"path": user}, "amount": "{{amount}}"}]},
            *extra_types,
        ]},
    }


def _tx(link, account, ext, amount):
    return {"account": {"linkId": link, "externalId": account}, "externalId": ext,
            "amount": str(amount), "posted": "2025-03-01T10:00:00Z", "description": ext}


def _bank(db, unique, *extra_types):
    link = unique("link")
    service.create_custom_link(db, link, "Test bank")
    service.sync_custom_accounts(db, {"id": link}, [{"externalId": "acct-op"},
                                                    {"externalId": "acct-hold"}])
    stored = service.store_schema(db, bank_schema(unique("infer"), link, *extra_types))
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "Bank", stored.key)
    return link, ledger


@pytest.fixture
def bank(db, unique):
    return _bank(db, unique)


def test_the_parameters_given_pick_the_type(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [_tx(link, "acct-op", "in-1", 700),
                                               _tx(link, "acct-op", "fee-1", -30)])

    funded = service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana"}}, "in-1")
    assert funded.entry.type == "fund" and funded.entry.ik == "in-1"
    assert own(db, ledger, "liabilities/users:ana/available") == 700
    # No parameters: only bank_fee needs none besides the one its tx gives.
    fee = service.reconcile_tx(db, ledger, {}, "fee-1")
    assert fee.entry.type == "bank_fee"
    assert own(db, ledger, "expense/fees") == 30

    again = service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana"}}, "in-1")
    assert again.is_ik_replay and again.entry.id == funded.entry.id


def test_a_line_naming_its_tx_by_a_parameter_takes_the_call_s_tx(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [_tx(link, "acct-hold", "hold-1", 250)])
    result = service.reconcile_tx(db, ledger, {"parameters": {"user_id": "bo"}}, "hold-1")
    assert result.entry.type == "fund_via_link"
    assert own(db, ledger, "liabilities/users:bo/available") == 250


def test_no_fitting_type_names_why_each_candidate_does_not_fit(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [_tx(link, "acct-op", "in-2", 100)])
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana", "note": "x"}}, "in-2")
    err = info.value
    assert err.code == "entry_type_not_found" and err.field == "entry.type"
    assert "bank_fee does not take note, user_id" in err.message
    assert "fund does not take note" in err.message
    assert "cash_deposit" not in err.message
    assert own(db, ledger, "liabilities/users:ana/available") == 0


def test_several_fitting_types_are_named(db, unique):
    gift = {"type": "gift", "lines": [
        {"key": "bank", "account": {"path": "bank/operating"}, "amount": "{{amount}}",
         "tx": {"externalId": "{{gift_tx}}"}},
        {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
         "amount": "{{amount}}"}]}
    link, ledger = _bank(db, unique, gift)
    service.sync_custom_txs(db, {"id": link}, [_tx(link, "acct-op", "in-3", 100)])
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana"}}, "in-3")
    assert info.value.code == "entry_type_ambiguous"
    assert "fits entry types fund, gift; name one" in info.value.message
    # Naming the type still works.
    named = service.reconcile_tx(db, ledger, {"type": "gift", "parameters": {
        "user_id": "ana", "gift_tx": "in-3"}})
    assert named.entry.type == "gift"


def test_unknown_tx_missing_tx_and_runtime_lines(db, bank):
    _, ledger = bank
    with pytest.raises(NotFoundError) as info:
        service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana"}}, "nope")
    assert info.value.code == "tx_not_found" and info.value.field == "tx.externalId"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"parameters": {"user_id": "ana"}})
    assert info.value.field == "entry.type"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"lines": [
            {"key": "a", "account": {"path": "bank/cash"}, "amount": "1"},
            {"key": "b", "account": {"path": "liabilities/users:ana/available"},
             "amount": "1"}]}, "nope")
    assert info.value.field == "entry.type" and "runtime lines" in info.value.message
