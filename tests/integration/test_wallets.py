"""The seeds' wallets end to end through the ledger package, on the real PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, own, post, seed000_schema, seed002_schema


def count_rows(db, table: str) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def test_seed000_wallet_nested_schema(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    r = post(db, ledger, "deposit", ik="dep-1", user_id="alice", amount="250")
    assert not r.is_ik_replay
    assert r.entry.description == "Fund alice for 250"
    assert [(l.key, l.account_path, l.amount) for l in r.lines] == [
        ("funds_arrive_in_bank", "assets/banks/user-cash", 250),
        ("increase_user_balance", "liabilities/users:alice/available", 250)]
    post(db, ledger, "transfer", from_id="alice", to_id="bob", amount="100")
    assert own(db, ledger, "liabilities/users:alice/available") == 150
    assert own(db, ledger, "liabilities/users:bob/available") == 100
    with pytest.raises(BadRequestError) as info:
        post(db, ledger, "transfer", from_id="bob", to_id="alice", amount="101")
    assert info.value.code == "condition_failed"
    assert "liabilities/users:bob/available" in info.value.message
    assert own(db, ledger, "liabilities/users:bob/available") == 100
    users = service.account_balances(db, ledger, "liabilities/users")
    assert users.child == {"USD": 250} and users.total == {"USD": 250}
    bank = service.account_balances(db, ledger, "assets")
    assert bank.total == {"USD": 250}


def test_seed002_quickstart_array_schema(db, unique):
    ledger = new_ledger(db, unique, seed002_schema(unique("quickstart-schema")))
    r = service.add_ledger_entry(db, ledger, EntryRequest.from_input({
        "type": "user_funds_account", "posted": "1234-01-01T01:01:01",
        "parameters": {"user_id": "testing-user", "funding_amount": "200"}}, ik="add-ledger-entry"))
    assert r.entry.posted == datetime(1234, 1, 1, 1, 1, 1, tzinfo=timezone.utc)
    assert r.entry.description == "Funding testing-user for 200."
    post(db, ledger, "p2p_transfer", from_user_id="testing-user", to_user_id="u2", transfer_amount="50")
    with pytest.raises(BadRequestError) as info:
        post(db, ledger, "p2p_transfer", from_user_id="testing-user", to_user_id="u2", transfer_amount="151")
    assert info.value.code == "condition_failed"
    assert own(db, ledger, "liabilities/users:testing-user/available") == 150
    user = service.account_balances(db, ledger, "liabilities/users:testing-user")
    assert user.own == {"USD": 0} and user.child == {"USD": 150}


def fee_and_fx_schema(key: str) -> dict:
    return {
        "key": key,
        "chartOfAccounts": {
            "defaultCurrency": {"code": "USD"},
            "accounts": [
                {"key": "assets", "type": "asset", "children": [
                    {"key": "bank"}, {"key": "fx-bank", "currencyMode": "multi"}]},
                {"key": "liabilities", "type": "liability", "children": [
                    {"key": "users", "template": True, "currencyMode": "multi",
                     "children": [{"key": "available"}]}]},
                {"key": "income", "type": "income", "children": [{"key": "funding-fees"}]},
            ]},
        "ledgerEntries": {"types": [
            {"type": "user_funds_account_with_fee",
             "description": "Fund {{user_id}} for {{funding_amount}} with {{fee_amount}} fee",
             "lines": [
                 {"key": "funds_arrive_in_bank", "account": {"path": "assets/bank"},
                  "amount": "{{funding_amount}}"},
                 {"key": "increase_user_balance", "currency": {"code": "USD"},
                  "account": {"path": "liabilities/users:{{user_id}}/available"},
                  "amount": "{{funding_amount}} - {{fee_amount}}"},
                 {"key": "take_fee", "account": {"path": "income/funding-fees"},
                  "amount": "{{fee_amount}}"}]},
            {"type": "fx_deposit", "description": "{{user_id}} deposits {{amount}} {{currency}}",
             "lines": [
                 {"key": "bank", "account": {"path": "assets/fx-bank"}, "amount": "{{amount}}",
                  "currency": {"code": "{{currency}}"}},
                 {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                  "amount": "{{amount}}", "currency": {"code": "{{currency}}"}}]},
            {"type": "runtime_entry", "description": "Runtime-defined ledger entry"},
        ]},
    }


def test_fee_entry(db, unique):
    ledger = new_ledger(db, unique, fee_and_fx_schema(unique("fee")))
    r = post(db, ledger, "user_funds_account_with_fee", user_id="u1", funding_amount="1000", fee_amount="30")
    assert [l.amount for l in r.lines] == [1000, 970, 30]
    assert own(db, ledger, "liabilities/users:u1/available") == 970
    assert own(db, ledger, "income/funding-fees") == 30


def test_multi_currency_lines(db, unique):
    ledger = new_ledger(db, unique, fee_and_fx_schema(unique("fx")))
    post(db, ledger, "fx_deposit", user_id="u1", amount="500", currency="EUR")
    post(db, ledger, "fx_deposit", user_id="u1", amount="7", currency="JPY")
    post(db, ledger, "user_funds_account_with_fee", user_id="u1", funding_amount="100", fee_amount="1")
    b = service.account_balances(db, ledger, "liabilities/users:u1/available")
    assert b.own == {"EUR": 500, "JPY": 7, "USD": 99}
    assert service.account_balances(db, ledger, "assets/fx-bank").own == {"EUR": 500, "JPY": 7}


def test_runtime_entry(db, unique):
    ledger = new_ledger(db, unique, fee_and_fx_schema(unique("rt")))
    r = service.add_ledger_entry(db, ledger, EntryRequest.from_input({
        "type": "runtime_entry",
        "lines": [
            {"account": {"path": "assets/bank"}, "key": "funds_arrive_in_bank", "amount": "100"},
            {"account": {"path": "liabilities/users:test-user/available"}, "key": "increase_user_balance",
             "amount": "100", "currency": {"code": "USD"}}]}, ik="add-arbitrary-ledger-entry"))
    assert r.entry.description == "Runtime-defined ledger entry"
    assert own(db, ledger, "liabilities/users:test-user/available") == 100
    with pytest.raises(BadRequestError) as info:
        service.add_ledger_entry(db, ledger, EntryRequest.from_input({
            "type": "runtime_entry",
            "lines": [{"account": {"path": "assets/bank"}, "key": "a", "amount": "100"},
                      {"account": {"path": "income/funding-fees"}, "key": "b", "amount": "99"}]},
            ik="rt-unbalanced"))
    assert info.value.code == "unbalanced_entry"


def test_replay_returns_original_and_conflict_is_refused(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    first = post(db, ledger, "deposit", ik="same", user_id="a", amount="10")
    again = post(db, ledger, "deposit", ik="same", user_id="a", amount="10")
    assert again.is_ik_replay and again.entry.id == first.entry.id
    assert [l.id for l in again.lines] == [l.id for l in first.lines]
    with pytest.raises(BadRequestError) as info:
        post(db, ledger, "deposit", ik="same", user_id="a", amount="11")
    assert info.value.code == "ik_conflict"
    assert own(db, ledger, "liabilities/users:a/available") == 10
    # iks are scoped per ledger
    other = new_ledger(db, unique, seed000_schema(unique("wallet")))
    assert not post(db, other, "deposit", ik="same", user_id="a", amount="10").is_ik_replay


def test_batch_is_atomic(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    reqs = [EntryRequest(ik=f"b{i}", type="deposit", parameters={"user_id": f"u{i}", "amount": "5"})
            for i in range(5)]
    reqs.append(EntryRequest(ik="bad", type="transfer", parameters={"from_id": "u0", "to_id": "u1", "amount": "6"}))
    with pytest.raises(BadRequestError) as info:
        service.add_ledger_entries(db, ledger, reqs)
    assert info.value.code == "condition_failed" and info.value.index == 5
    assert info.value.message.startswith("entries[5]")
    assert own(db, ledger, "assets/banks/user-cash") == 0
    results = service.add_ledger_entries(db, ledger, reqs[:5] + [EntryRequest(
        ik="ok", type="transfer", parameters={"from_id": "u0", "to_id": "u1", "amount": "5"})])
    assert len(results) == 6 and not any(r.is_ik_replay for r in results)
    assert own(db, ledger, "liabilities/users:u1/available") == 10
    assert own(db, ledger, "liabilities/users:u0/available") == 0
    replayed = service.add_ledger_entries(db, ledger, reqs[:2])
    assert all(r.is_ik_replay for r in replayed)


@pytest.mark.parametrize("amount,code", [
    (12.5, "invalid_amount"), ("12.5", "invalid_amount"), ("1/2", "invalid_amount"),
    ("ten", "invalid_amount"), (str(2**120), "invalid_amount"), (True, "invalid_parameter"),
    ("", "invalid_amount"),
])
def test_bad_amounts_write_nothing(db, unique, amount, code):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    before = count_rows(db, "lines")
    with pytest.raises(BadRequestError) as info:
        service.add_ledger_entry(db, ledger, EntryRequest.from_input(
            {"type": "deposit", "parameters": {"user_id": "a", "amount": amount}}, ik="x"))
    assert info.value.code == code
    assert "amount" in info.value.message
    assert count_rows(db, "lines") == before
    assert not post(db, ledger, "deposit", ik="x", user_id="a", amount="1").is_ik_replay


def test_largest_amounts_round_trip(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    big = 2**120 - 1
    post(db, ledger, "deposit", user_id="a", amount=str(big))
    assert own(db, ledger, "liabilities/users:a/available") == big
    post(db, ledger, "transfer", from_id="a", to_id="b", amount=str(big))
    assert own(db, ledger, "liabilities/users:b/available") == big


@pytest.mark.parametrize("change,code,field", [
    ({"type": "nope"}, "entry_type_not_found", "entry.type"),
    ({"parameters": {"user_id": "a"}}, "missing_parameter", "entry.parameters.amount"),
    ({"parameters": {"user_id": "a/b", "amount": "1"}}, "invalid_parameter", "entry.parameters.user_id"),
    ({"posted": "yesterday"}, "invalid_input", "entry.posted"),
    ({"tags": "x"}, "invalid_input", "entry.tags"),
])
def test_bad_requests_name_the_field(db, unique, change, code, field):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    data = {"type": "deposit", "parameters": {"user_id": "a", "amount": "1"}, **change}
    with pytest.raises(BadRequestError) as info:
        service.add_ledger_entry(db, ledger, EntryRequest.from_input(data, ik="k"))
    assert info.value.code == code and info.value.field == field
    assert field in info.value.message


def test_unknown_ledger_and_schema(db, unique):
    with pytest.raises(NotFoundError) as info:
        post(db, "no-such-ledger", "deposit", user_id="a", amount="1")
    assert info.value.code == "ledger_not_found"
    with pytest.raises(NotFoundError) as info:
        service.create_ledger(db, unique("l"), "x", "no-such-schema")
    assert info.value.code == "schema_not_found"


def test_create_ledger_is_idempotent(db, unique):
    key = service.store_schema(db, seed000_schema(unique("wallet"))).key
    ik = unique("ledger")
    a = service.create_ledger(db, ik, "Wallet", key)
    b = service.create_ledger(db, ik, "Wallet", key)
    assert not a.is_ik_replay and b.is_ik_replay and a.ledger.id == b.ledger.id
    with pytest.raises(BadRequestError) as info:
        service.create_ledger(db, ik, "Other name", key)
    assert info.value.code == "ik_conflict"
    with pytest.raises(BadRequestError) as info:
        service.create_ledger(db, unique("l"), "x", key, balance_utc_offset="+05:30")
    assert info.value.field == "ledger.balanceUTCOffset"


def test_schema_versions_and_evolution(db, unique):
    key = unique("evolve")
    doc = seed002_schema(key)
    v1 = service.store_schema(db, doc)
    assert v1.version == 1
    assert service.store_schema(db, doc).version == 1  # same document: no new version
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "L", key)
    post(db, ledger, "user_funds_account", user_id="u", funding_amount="5")
    # adding an account and an entry type: the ledger follows the new version
    doc["chartOfAccounts"]["accounts"][2]["children"] = [{"key": "fees"}]
    doc["ledgerEntries"]["types"].append({"type": "fee", "lines": [
        {"key": "u", "account": {"path": "liabilities/users:{{user_id}}/available"}, "amount": "-{{fee}}"},
        {"key": "f", "account": {"path": "income/fees"}, "amount": "{{fee}}"}]})
    assert service.store_schema(db, doc).version == 2
    post(db, ledger, "fee", user_id="u", fee="2")
    assert own(db, ledger, "income/fees") == 2
    # removing what has lines is refused, naming it
    removed = seed002_schema(key)
    from ledger.errors import SchemaError
    with pytest.raises(SchemaError) as info:
        service.store_schema(db, removed)
    assert "income/fees" in info.value.message and ledger in info.value.message
    assert "'fee'" in info.value.message
    assert [v.version for v in service.list_schema_versions(db, key)] == [1, 2]


def test_eventual_account_rollup(db, unique):
    doc = seed002_schema(unique("ev"))
    doc["chartOfAccounts"]["accounts"][0]["children"][0]["consistencyConfig"] = {"ownBalanceUpdates": "eventual"}
    ledger = new_ledger(db, unique, doc)
    for i in range(5):
        post(db, ledger, "user_funds_account", user_id=f"u{i}", funding_amount="10")
    assert own(db, ledger, "assets/banks/user-cash") == 0  # not folded yet
    assert own(db, ledger, "liabilities/users:u1/available") == 10  # strong
    assert service.rollup(db) >= 5
    assert own(db, ledger, "assets/banks/user-cash") == 50


def test_get_entry_by_id_and_ik(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    r = post(db, ledger, "deposit", ik="find-me", user_id="a", amount="3", )
    by_id = service.get_ledger_entry(db, id=r.entry.id)
    by_ik = service.get_ledger_entry(db, ledger_ik=ledger, ik="find-me")
    assert by_id == by_ik
    assert [l.amount for l in by_id.lines] == [3, 3]
    with pytest.raises(NotFoundError):
        service.get_ledger_entry(db, ledger_ik=ledger, ik="missing")


def test_a_batch_answers_with_the_ids_its_rows_got(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    results = service.add_ledger_entries(db, ledger, [
        EntryRequest(ik=f"d{i}", type="deposit", parameters={"user_id": f"u{i % 3}",
                                                             "amount": str(10 + i)})
        for i in range(7)] + [
        EntryRequest(ik="t", type="transfer", parameters={"from_id": "u0", "to_id": "u1",
                                                          "amount": "5"})])
    answered = {(r.entry.id, r.entry.ik, l.id, l.key, l.account_path, l.amount)
                for r in results for l in r.lines}
    with db.transaction() as conn:
        stored = {(str(e), ik, str(i), k, p, int(m)) for e, ik, i, k, p, m in conn.execute(sa.text(
            "SELECT e.id, e.ik, l.id, l.key, a.path, l.amount FROM lines l "
            "JOIN entries e ON e.id = l.entry_id JOIN accounts a ON a.id = l.account_id "
            "JOIN ledgers g ON g.id = e.ledger_id WHERE g.ik = :l"), {"l": ledger})}
    assert answered == stored and len(stored) == 16


def test_account_paths_stay_within_what_the_index_takes(db, unique):
    from ledger.schema.model import MAX_PATH_BYTES

    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    room = MAX_PATH_BYTES - len("liabilities/users:/available")
    for fits in ("u" * room, "€" * (room // 3)):  # bytes count, not characters
        post(db, ledger, "deposit", user_id=fits, amount="5")
        assert own(db, ledger, f"liabilities/users:{fits}/available") == 5
    for too_long in ("u" * (room + 1), "€" * (room // 3 + 1)):
        with pytest.raises(BadRequestError) as caught:
            post(db, ledger, "deposit", user_id=too_long, amount="5")
        assert caught.value.field == "entry.parameters.user_id"
        assert f"longer than {MAX_PATH_BYTES} bytes" in caught.value.message
        with pytest.raises(BadRequestError) as caught:
            service.account_balances(db, ledger, f"liabilities/users:{too_long}/available")
        assert caught.value.field == "path"
