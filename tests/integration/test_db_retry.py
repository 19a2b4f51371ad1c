"""Deadlocks and serialization failures are retried inside the engine, not returned."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import InternalError
from tests.integration.helpers import new_ledger, post, seed000_schema


def test_a_real_deadlock_is_retried_until_both_commit(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="a", amount="1")
    post(db, ledger, "deposit", user_id="b", amount="1")
    with db.transaction() as conn:
        ids = dict(conn.execute(sa.text(
            "SELECT a.path, a.id FROM accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE l.ik = :l"), {"l": ledger}).all())
    first = ids["liabilities/users:a/available"]
    second = ids["liabilities/users:b/available"]
    barrier = threading.Barrier(2)
    attempts = {0: 0, 1: 0}
    errors = []

    def locker(who, order):
        def fn(conn):
            attempts[who] += 1
            conn.execute(sa.text("UPDATE balances SET own = own + 1 WHERE account_id = :a"), {"a": order[0]})
            if attempts[who] == 1:
                barrier.wait()  # both hold their first row: the second lock closes a cycle
            conn.execute(sa.text("UPDATE balances SET own = own - 1 WHERE account_id = :a"), {"a": order[1]})
        try:
            db.run(fn)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=locker, args=(0, (first, second))),
               threading.Thread(target=locker, args=(1, (second, first)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert attempts[0] + attempts[1] == 3  # PostgreSQL broke the cycle once; that side retried
    assert service.account_balances(db, ledger, "liabilities/users:a/available").own == {"USD": 1}


def test_retries_are_bounded_and_end_in_a_retryable_internal_error(db):
    calls = []

    def always_fails(conn):
        calls.append(1)
        conn.execute(sa.text("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$"))
    with pytest.raises(InternalError) as info:
        db.run(always_fails, attempts=3)
    assert len(calls) == 3
    assert info.value.retryable and info.value.code == "database_unavailable"


def test_other_database_errors_are_not_retried(db):
    calls = []

    def broken(conn):
        calls.append(1)
        conn.execute(sa.text("SELECT no_such_column FROM ledgers"))
    with pytest.raises(sa.exc.ProgrammingError):
        db.run(broken)
    assert len(calls) == 1
