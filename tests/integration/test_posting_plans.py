"""The statements a post runs under its balance locks probe the indexes once per key: none
scans a ledger's accounts or balances, whether PostgreSQL plans them for the values at
hand or once for any (a prepared statement's generic plan). As plain joins on a JSON
document (which the planner takes for 100 rows) they scanned every row of a ledger of a
few thousand accounts on every post."""
from __future__ import annotations

import json

import pytest

from ledger import service
from ledger.db import _driver_sql
from ledger.posting.conditions import _FIND_ACCOUNTS, _FIND_LOCK_DRAW, _LOCK_SQL
from ledger.posting.engine import _CLAIM_AND_LOCK, _READ_BALANCES, _UPDATE_BALANCES
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, seed000_schema

USERS = 400


def _scans(plan: dict) -> list[str]:
    """Relations read by a sequential scan anywhere in ``plan``."""
    found = [plan["Relation Name"]] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


@pytest.fixture(scope="module")
def wallet(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    service.add_ledger_entries(db, ledger_ik, [EntryRequest(
        ik=f"d{i}", type="deposit", parameters={"user_id": f"u{i}", "amount": "5"})
        for i in range(USERS)])
    ledger = service.get_ledger(db, ledger_ik)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE accounts")
        conn.exec_driver_sql("ANALYZE balances")
        paths = ["liabilities/users:u7/available", "liabilities/users:u9/available"]
        ids = [conn.exec_driver_sql("SELECT id FROM accounts WHERE ledger_id = %(l)s AND path = %(p)s",
                                    {"l": ledger.id, "p": p}).scalar() for p in paths]
    return ledger, paths, ids


def _statements(ledger, paths, ids):
    keys = json.dumps([{"a": i, "c": "USD"} for i in ids])
    yield "find and lock", _FIND_LOCK_DRAW, {
        "l": ledger.id, "n": 2, "p": json.dumps(paths),
        "keys": json.dumps([{"p": p, "c": "USD"} for p in paths])}
    yield "claim and lock", _CLAIM_AND_LOCK, {
        "l": ledger.id, "n": 2, "p": json.dumps(paths), "created": "2026-01-01T00:00:00+00:00",
        "keys": json.dumps([{"p": p, "c": "USD"} for p in paths]),
        "rows": json.dumps([{"k": "plan", "v": 1, "f": "f", "t": "deposit", "d": None, "p": None,
                             "a": {}, "g": {}, "r": {}}])}
    yield "find accounts", _FIND_ACCOUNTS, {"l": ledger.id, "p": json.dumps(paths)}
    yield "lock balances", _LOCK_SQL, {"keys": keys}
    yield "read balances", _READ_BALANCES, {"keys": keys}
    yield "move balances", _UPDATE_BALANCES, {"rows": json.dumps([
        {"account_id": i, "currency": "USD", "delta": 0, "until": "2026-01-01T00:00:00+00:00"}
        for i in ids])}


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_posting_statements_probe_indexes(db, wallet, mode):
    ledger, paths, ids = wallet
    with db.engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
            cursor = conn.connection.driver_connection.cursor()
            scanned = {}
            for name, statement, params in _statements(ledger, paths, ids):
                cursor.execute("EXPLAIN (FORMAT JSON) " + _driver_sql(conn, statement), params)
                scanned[name] = _scans(cursor.fetchone()[0][0]["Plan"])
            conn.rollback()  # EXPLAIN without ANALYZE ran nothing; the setting goes
    assert scanned == {name: [] for name in scanned}, scanned
