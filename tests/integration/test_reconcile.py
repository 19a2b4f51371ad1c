"""Custom links: accounts and txs synced from an external system, reconciled into entries
exactly once (seed 002 section F, seed 003)."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from ledger import service
from ledger.reconcile.txs import find_txs
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest

from tests.integration.helpers import own


def bank_schema(key: str, link: str) -> dict:
    return {
        "key": key,
        "chartOfAccounts": {"accounts": [
            {"key": "assets-root", "name": "Assets", "type": "asset", "children": [
                {"key": "operating", "name": "Operating Bank",
                 "linkedAccount": {"linkId": link, "externalId": "bank-account-1"}},
                {"key": "holding", "name": "Holding Bank",
                 "linkedAccount": {"linkId": link, "externalId": "bank-account-2"}},
                {"key": "customer-banks", "template": True,
                 "linkedAccount": {"linkId": "{{BANK_LINK_ID}}", "externalId": "{{BANK_ACCOUNT_ID}}"}},
            ]},
            {"key": "liabilities", "type": "liability", "children": [
                {"key": "users", "template": True, "children": [{"key": "available"}]}]},
        ]},
        "ledgerEntries": {"types": [
            {"type": "user_funds_account_via_link",
             "description": "Funding {{user_id}}",
             "lines": [
                 {"key": "funds_arrive_in_bank", "account": {"path": "assets-root/operating"},
                  "tx": {"externalId": "{{bank_transaction_id}}"}},
                 {"key": "increase_user_balance",
                  "account": {"path": "liabilities/users:{{user_id}}/available"}}]},
            {"type": "with_amount",
             "lines": [
                 {"key": "bank", "account": {"path": "assets-root/operating"},
                  "amount": "{{amount}}", "tx": {"externalId": "{{tx_id}}"}},
                 {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                  "amount": "{{amount}}"}]},
            {"type": "book_transfer",
             "lines": [
                 {"key": "funds_arrive_in_operating_bank", "account": {"path": "assets-root/operating"},
                  "tx": {"externalId": "{{in_tx}}"}},
                 {"key": "funds_leave_holding_bank", "account": {"path": "assets-root/holding"},
                  "tx": {"externalId": "{{out_tx}}"}}]},
            {"type": "customer_deposit",
             "lines": [
                 {"key": "bank", "account": {"path": "assets-root/customer-banks:{{customer}}"},
                  "tx": {"externalId": "{{tx_id}}"}},
                 {"key": "user", "account": {"path": "liabilities/users:{{customer}}/available"}}]},
            {"type": "plain_deposit",
             "lines": [
                 {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                  "amount": "{{amount}}"},
                 {"key": "user2", "account": {"path": "liabilities/users:{{user_id}}/available"},
                  "amount": "-{{amount}}"}]},
        ]},
    }


@pytest.fixture
def bank(db, unique):
    """A custom link with two accounts and a ledger whose accounts mirror them."""
    link = unique("link")
    service.create_custom_link(db, link, "Test bank")
    service.sync_custom_accounts(db, {"id": link}, [
        {"externalId": "bank-account-1", "name": "Operating"},
        {"externalId": "bank-account-2", "name": "Holding"}])
    stored = service.store_schema(db, bank_schema(unique("bank"), link))
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "Bank ledger", stored.key)
    return link, ledger


def tx(link, account, ext, amount, posted="2025-03-01T10:00:00Z", description=None):
    return {"account": {"linkId": link, "externalId": account}, "externalId": ext,
            "amount": str(amount), "posted": posted, "description": description or ext}


def funding(ledger_ik, tx_id, user="alice"):
    return {"type": "user_funds_account_via_link", "ledger": {"ik": ledger_ik},
            "parameters": {"bank_transaction_id": tx_id, "user_id": user}}


def test_seed002_sync_custom_txs_variables_verbatim(db):
    variables = {
        "link": {"id": "some-link-id"},
        "txs": [
            {"account": {"linkId": "some-link-id", "id": "bank-account-1"},
             "externalId": "tx-1", "description": "Processed ACH batch", "amount": "-100",
             "posted": "1968-01-01"},
            {"account": {"linkId": "some-link-id", "externalId": "bank-account-2"},
             "externalId": "tx-2", "description": "Received RTP payment", "amount": "100",
             "posted": "1968-01-01T16:45:00Z"},
        ],
    }
    service.create_custom_link(db, "some-link-id", "Seed 002 bank")
    service.sync_custom_accounts(db, {"id": "some-link-id"}, [
        {"externalId": "bank-account-1", "name": "Bank account 1"},
        {"externalId": "bank-account-2", "name": "Bank account 2"}])
    txs = service.sync_custom_txs(db, variables["link"], variables["txs"])
    assert [(x.external_id, x.amount, x.date, x.description, x.account_external_id) for x in txs] == [
        ("tx-1", -100, "1968-01-01", "Processed ACH batch", "bank-account-1"),
        ("tx-2", 100, "1968-01-01", "Received RTP payment", "bank-account-2")]
    assert txs[1].posted == datetime(1968, 1, 1, 16, 45, tzinfo=timezone.utc)
    # The same call again is a no-op: same txs, same ids.
    again = service.sync_custom_txs(db, variables["link"], variables["txs"])
    assert [x.id for x in again] == [x.id for x in txs]


def test_sync_is_idempotent_description_updates_and_immutable_fields_refused(db, bank):
    link, _ = bank
    first = service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "t1", 500)])
    renamed = service.sync_custom_txs(db, {"id": link}, [
        tx(link, "bank-account-1", "t1", 500, description="ACH from Bob")])
    assert renamed[0].id == first[0].id and renamed[0].description == "ACH from Bob"

    with pytest.raises(BadRequestError) as info:
        service.sync_custom_txs(db, {"id": link}, [
            tx(link, "bank-account-1", "t2", 1),
            tx(link, "bank-account-1", "t1", 501)])
    assert info.value.code == "immutable_field" and info.value.field == "txs[1].amount"
    assert "amount" in info.value.message and "immutable" in info.value.message
    # Refused whole: t2 of the same call was not written.
    assert find_txs(db, link, "t2") == []

    with pytest.raises(BadRequestError) as info:
        service.sync_custom_txs(db, {"id": link}, [
            tx(link, "bank-account-1", "t1", 500, posted="2025-03-02T10:00:00Z")])
    assert info.value.code == "immutable_field" and info.value.field == "txs[0].posted"


def test_sync_limits_and_unknown_accounts(db, bank, unique):
    link, _ = bank
    with pytest.raises(BadRequestError) as info:
        service.sync_custom_txs(db, {"id": link}, [
            tx(link, "bank-account-1", f"x{i}", 1) for i in range(101)])
    assert info.value.field == "txs"
    # 100 in one call is fine.
    assert len(service.sync_custom_txs(db, {"id": link}, [
        tx(link, "bank-account-1", f"x{i}", 1) for i in range(100)])) == 100
    with pytest.raises(NotFoundError) as info:
        service.sync_custom_txs(db, {"id": link}, [tx(link, "nope", "t", 1)])
    assert info.value.code == "external_account_not_found" and info.value.field == "txs[0].account"
    with pytest.raises(NotFoundError):
        service.sync_custom_txs(db, {"id": unique("missing")}, [tx(link, "bank-account-1", "t", 1)])
    with pytest.raises(BadRequestError) as info:
        service.sync_custom_txs(db, {"id": link}, [
            {**tx(link, "bank-account-1", "f", 1), "amount": 1.5}])
    assert info.value.code == "invalid_amount"


def test_reconcile_takes_amount_and_posted_from_tx_and_twice_is_a_replay(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "tx_12345", 2500)])
    first = service.reconcile_tx(db, ledger, funding(ledger, "tx_12345"))
    assert not first.is_ik_replay
    assert first.entry.ik == "tx_12345"
    assert first.entry.posted == datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
    assert {l.key: l.amount for l in first.lines} == {
        "funds_arrive_in_bank": 2500, "increase_user_balance": 2500}
    assert [l.tx_external_id for l in first.lines if l.key == "funds_arrive_in_bank"] == ["tx_12345"]
    second = service.reconcile_tx(db, ledger, funding(ledger, "tx_12345"))
    assert second.is_ik_replay and second.entry.id == first.entry.id
    assert own(db, ledger, "assets-root/operating") == 2500
    assert own(db, ledger, "liabilities/users:alice/available") == 2500
    # The tx knows its entry and line.
    (synced,) = find_txs(db, link, "tx_12345")
    assert synced.entry_ids == [first.entry.id] and synced.ledger_ik == ledger
    assert synced.line_ids == [l.id for l in first.lines if l.key == "funds_arrive_in_bank"]
    # Another request for a reconciled tx is refused, never a second posting.
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, funding(ledger, "tx_12345", user="bob"))
    assert info.value.code == "ik_conflict"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {**funding(ledger, "tx_12345", user="bob"), "ik": "other"})
    assert info.value.code == "tx_already_reconciled"
    assert own(db, ledger, "assets-root/operating") == 2500


def test_given_amount_must_match_tx(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "am1", 700)])
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"type": "with_amount", "parameters": {
            "tx_id": "am1", "user_id": "u", "amount": "701"}})
    assert info.value.code == "tx_amount_mismatch"
    assert info.value.field == "entry.lines.bank.amount"
    result = service.reconcile_tx(db, ledger, {"type": "with_amount", "parameters": {
        "tx_id": "am1", "user_id": "u", "amount": "700"}})
    assert [l.amount for l in result.lines] == [700, 700]
    # Left out, the amount parameter is the tx's.
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "am2", 42)])
    result = service.reconcile_tx(db, ledger, {"type": "with_amount", "parameters": {
        "tx_id": "am2", "user_id": "u"}})
    assert [l.amount for l in result.lines] == [42, 42]


def test_posted_given_must_match_and_add_ledger_entry_refuses_linked(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "p1", 10)])
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {**funding(ledger, "p1"), "posted": "2024-01-01T00:00:00Z"})
    assert info.value.field == "entry.posted"
    with pytest.raises(BadRequestError) as info:
        service.add_ledger_entry(db, ledger, EntryRequest(
            ik="direct", type="with_amount", parameters={"tx_id": "p1", "user_id": "u", "amount": "10"}))
    assert info.value.code == "linked_account"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"type": "plain_deposit", "parameters": {
            "user_id": "u", "amount": "1"}})
    assert "no linked account" in info.value.message


def test_unreconciled_txs_shrink_as_txs_reconcile(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [
        tx(link, "bank-account-1", f"u{i}", 100 + i) for i in range(5)] + [
        tx(link, "bank-account-2", "other-account", 1)])
    page = service.unreconciled_txs(db, ledger, "assets-root/operating", first=3)
    assert [x.external_id for x in page.txs] == ["u0", "u1", "u2"] and page.has_next_page
    rest = service.unreconciled_txs(db, ledger, "assets-root/operating", first=3, after=page.end_cursor)
    assert [x.external_id for x in rest.txs] == ["u3", "u4"] and not rest.has_next_page
    service.reconcile_tx(db, ledger, funding(ledger, "u1"))
    service.reconcile_tx(db, ledger, funding(ledger, "u3"))
    left = service.unreconciled_txs(db, ledger, "assets-root/operating", first=50)
    assert [x.external_id for x in left.txs] == ["u0", "u2", "u4"]
    assert [x.external_id for x in service.unreconciled_txs(
        db, ledger, "assets-root/holding").txs] == ["other-account"]
    with pytest.raises(BadRequestError) as info:
        service.unreconciled_txs(db, ledger, "liabilities/users:alice/available")
    assert info.value.code == "not_linked"
    with pytest.raises(BadRequestError):
        service.unreconciled_txs(db, ledger, "assets-root/operating", after="garbage")


def test_deleted_tx_cannot_be_reconciled_and_resync_brings_it_back(db, bank):
    link, ledger = bank
    (synced,) = service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "d1", 300)])
    (deleted,) = service.delete_custom_txs(db, {"id": link}, [
        {"account": {"linkId": link, "externalId": "bank-account-1"}, "externalId": "d1"}])
    assert deleted.id == synced.id and deleted.deleted is not None
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, funding(ledger, "d1"))
    assert info.value.code == "tx_deleted"
    assert "d1" not in [x.external_id for x in service.unreconciled_txs(
        db, ledger, "assets-root/operating", first=200).txs]
    # Synced again, it is a new tx, with a new amount if need be.
    (back,) = service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "d1", 301)])
    assert back.id != synced.id and back.amount == 301
    result = service.reconcile_tx(db, ledger, funding(ledger, "d1"))
    assert result.lines[0].amount == 301
    # A reconciled tx cannot be deleted: its amount is in the books.
    with pytest.raises(BadRequestError) as info:
        service.delete_custom_txs(db, {"id": link}, [{"id": back.id}])
    assert info.value.code == "tx_reconciled"
    with pytest.raises(NotFoundError):
        service.reconcile_tx(db, ledger, funding(ledger, "never-synced"))


def test_book_transfer_reconciles_two_txs_of_one_link(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [
        tx(link, "bank-account-1", "bt-in", 900, posted="2025-03-05T09:00:00Z"),
        tx(link, "bank-account-2", "bt-out", -900, posted="2025-03-05T09:00:00Z"),
        tx(link, "bank-account-2", "late-out", -900, posted="2025-03-05T09:00:01Z"),
        tx(link, "bank-account-1", "odd-in", 899, posted="2025-03-05T09:00:01Z")])
    result = service.reconcile_tx(db, ledger, {"type": "book_transfer", "parameters": {
        "in_tx": "bt-in", "out_tx": "bt-out"}})
    assert {l.key: l.amount for l in result.lines} == {
        "funds_arrive_in_operating_bank": 900, "funds_leave_holding_bank": -900}
    assert result.entry.ik == "bt-in,bt-out"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"type": "book_transfer", "parameters": {
            "in_tx": "odd-in", "out_tx": "late-out"}})
    assert info.value.code == "unbalanced_entry"
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"type": "book_transfer", "parameters": {
            "in_tx": "odd-in", "out_tx": "bt-out"}})
    assert "same posted" in info.value.message


def test_template_linked_account_takes_link_from_parameters(db, bank, unique):
    link, ledger = bank
    service.sync_custom_accounts(db, {"id": link}, [{"externalId": "cust-7", "name": "Customer 7"}])
    service.sync_custom_txs(db, {"id": link}, [tx(link, "cust-7", "c1", 55), tx(link, "cust-7", "c2", 66)])
    with pytest.raises(BadRequestError) as info:
        service.reconcile_tx(db, ledger, {"type": "customer_deposit", "parameters": {
            "customer": "c7", "tx_id": "c1"}})
    assert info.value.code == "missing_parameter" and "BANK_LINK_ID" in info.value.field
    params = {"customer": "c7", "tx_id": "c1", "BANK_LINK_ID": link, "BANK_ACCOUNT_ID": "cust-7"}
    result = service.reconcile_tx(db, ledger, {"type": "customer_deposit", "parameters": params})
    assert result.lines[0].amount == 55
    assert own(db, ledger, "assets-root/customer-banks:c7") == 55
    left = service.unreconciled_txs(db, ledger, "assets-root/customer-banks:c7")
    assert [x.external_id for x in left.txs] == ["c2"]


def test_concurrent_reconciliations_of_one_tx_post_one_entry(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "race", 1234)])
    results, errors = [], []
    barrier = threading.Barrier(6)

    def go():
        barrier.wait()
        try:
            results.append(service.reconcile_tx(db, ledger, funding(ledger, "race")))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len({r.entry.id for r in results}) == 1
    assert sum(not r.is_ik_replay for r in results) == 1
    assert own(db, ledger, "assets-root/operating") == 1234


def test_create_custom_link_is_idempotent(db, unique):
    ik = unique("link")
    first = service.create_custom_link(db, ik, "Bank")
    again = service.create_custom_link(db, ik, "Bank")
    assert again.is_ik_replay and again.link.id == first.link.id == ik
    with pytest.raises(BadRequestError) as info:
        service.create_custom_link(db, ik, "Other name")
    assert info.value.code == "ik_conflict"
    named = service.create_custom_link(db, unique("ik"), "Bank", link_id=unique("id"))
    assert not named.is_ik_replay and named.link.kind == "custom"


def test_reversed_reconciliation_frees_the_tx_for_a_corrected_entry(db, bank):
    link, ledger = bank
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "rev1", 640)])
    wrong = service.reconcile_tx(db, ledger, funding(ledger, "rev1", user="mallory"))
    service.reverse_ledger_entry(db, id=wrong.entry.id)
    (synced,) = find_txs(db, link, "rev1")
    assert not synced.reconciled
    assert "rev1" in [x.external_id for x in service.unreconciled_txs(
        db, ledger, "assets-root/operating", first=200).txs]
    fixed = service.reconcile_tx(db, ledger, funding(ledger, "rev1", user="alice2"))
    assert not fixed.is_ik_replay and fixed.entry.id != wrong.entry.id
    assert fixed.entry.ik == "rev1"
    (synced,) = find_txs(db, link, "rev1")
    assert synced.reconciled and synced.entry_ids == [fixed.entry.id]
    assert service.reconcile_tx(db, ledger, funding(ledger, "rev1", user="alice2")).is_ik_replay
    assert own(db, ledger, "liabilities/users:mallory/available") == 0
    assert own(db, ledger, "liabilities/users:alice2/available") == 640
    assert "rev1" not in [x.external_id for x in service.unreconciled_txs(
        db, ledger, "assets-root/operating", first=200).txs]
