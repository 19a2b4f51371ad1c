"""The audit finds each kind of damage to the books, and nothing in books the engine wrote."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.audit import audit
from ledger.service import EntryRequest

from .helpers import new_ledger


def schema(key: str) -> dict:
    return {
        "key": key,
        "chartOfAccounts": {
            "assets": {"bank": {"consistencyConfig": {"ownBalanceUpdates": "eventual"}}},
            "liabilities": {"users": {"template": True, "available": {}}},
        },
        "ledgerEntries": {"types": [
            {"type": "deposit", "lines": [
                {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
                {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
                 "amount": "{{amount}}"}]},
        ]},
    }


@pytest.fixture
def books(db, unique):
    ledger_ik = new_ledger(db, unique, schema(unique("audit")))
    requests = [EntryRequest(ik=f"d{i}", type="deposit",
                             parameters={"user": f"u{i % 3}", "amount": str(100 + i)})
                for i in range(9)]
    # Backdated too, so some running totals are renumbered rather than computed in Python.
    requests.append(EntryRequest.from_input({
        "ik": "old", "type": "deposit", "parameters": {"user": "u0", "amount": "7"},
        "posted": "2020-01-01T00:00:00Z"}))
    service.add_ledger_entries(db, ledger_ik, requests)
    return ledger_ik


def test_books_the_engine_wrote_hold(db, books):
    assert service.audit(db, books) == []
    service.rollup(db)
    assert service.audit(db, books) == []


DAMAGE = {
    "line_without_entry": "UPDATE lines SET entry_id = -1 WHERE id = (SELECT min(id) {lines})",
    "line_without_account": "UPDATE lines SET account_id = -1 WHERE id = (SELECT min(id) {lines})",
    "entry_without_lines": "DELETE FROM lines WHERE entry_id = (SELECT min(entry_id) {lines})",
    "entry_unbalanced": "UPDATE lines SET amount = amount + 1 WHERE id = (SELECT min(id) {lines})",
    "balance_not_sum_of_lines": "UPDATE balances SET own = own + 1 WHERE ledger_id = :l "
                                "AND own <> 0",
    "running_total_wrong": "UPDATE lines SET balance_after = balance_after + 1 WHERE id = "
                           "(SELECT max(id) {lines} AND balance_after IS NOT NULL)",
}


def assert_damage_found(db, ledger_ik: str, check: str, damage: str) -> None:
    """``damage`` (SQL, ``:l`` the ledger id) made inside a transaction that never commits
    is what the audit reports as ``check``; the books are whole again after."""
    ledger = service.get_ledger(db, ledger_ik)
    with db.engine.connect() as conn:
        with conn.begin() as tx:
            assert conn.execute(sa.text(damage), {"l": ledger.id}).rowcount
            problems = audit(conn, ledger)
            tx.rollback()  # the damage never commits
    assert check in {p.check for p in problems}, problems
    assert all(str(p).startswith(p.check + ": ") for p in problems)
    assert service.audit(db, ledger_ik) == []


@pytest.mark.parametrize("check", sorted(DAMAGE))
def test_each_kind_of_damage_is_found(db, books, check):
    assert_damage_found(db, books, check,
                        DAMAGE[check].format(lines="FROM lines WHERE ledger_id = :l"))


HOLD_DAMAGE = {
    "hold_without_entry": "UPDATE holds SET entry_id = -entry_id WHERE entry_id = "
                          "(SELECT min(entry_id) FROM holds WHERE ledger_id = :l)",
    "hold_line_without_hold": "UPDATE hold_lines SET entry_id = -1 WHERE id = "
                              "(SELECT min(id) FROM hold_lines WHERE ledger_id = :l)",
    "hold_line_without_account": "UPDATE hold_lines SET account_id = -1 WHERE id = "
                                 "(SELECT min(id) FROM hold_lines WHERE ledger_id = :l)",
}


@pytest.mark.parametrize("check", sorted(HOLD_DAMAGE))
def test_each_kind_of_damage_to_holds_is_found(db, books, check):
    service.add_ledger_holds(db, books, [EntryRequest(
        ik="h1", type="deposit", parameters={"user": "u1", "amount": "5"})],
        "2099-01-01T00:00:00Z")
    assert service.audit(db, books) == []
    assert_damage_found(db, books, check, HOLD_DAMAGE[check])
