"""Concurrency claims, proven by threads racing against the real PostgreSQL."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from ledger import db as ledger_db
from ledger import service
from ledger.posting.engine import post_entries
from ledger.errors import BadRequestError
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, own, post, seed000_schema, seed002_schema


def race(n, fn):
    """Run ``fn(i)`` in n threads released at the same moment; return results or errors."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:  # collected and asserted on by the caller
            return exc
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_fifty_transfers_race_for_one_hundred(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="100")
    outcomes = race(50, lambda i: post(db, ledger, "transfer", ik=f"t{i}", from_id="payer",
                                       to_id=f"payee{i}", amount="10"))
    ok = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(ok) == 10
    assert all(isinstance(e, BadRequestError) and e.code == "condition_failed" for e in refused)
    assert own(db, ledger, "liabilities/users:payer/available") == 0
    assert service.account_balances(db, ledger, "liabilities/users").total == {"USD": 100}
    assert service.audit(db, ledger) == []


def test_identical_first_requests_post_once(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    outcomes = race(20, lambda i: post(db, ledger, "deposit", ik="only-once", user_id="a", amount="7"))
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert sum(not o.is_ik_replay for o in outcomes) == 1
    assert len({o.entry.id for o in outcomes}) == 1
    assert own(db, ledger, "liabilities/users:a/available") == 7


def test_crossing_batches_do_not_deadlock_or_lose_money(db, unique, monkeypatch):
    """Batches touching the same users in opposite orders: sorted locks, all commit, and
    none of them ever deadlocked (``Database.run`` would retry a deadlock unseen, so the
    faults it judges are counted)."""
    faults = []

    def judged(exc, judge=ledger_db.is_retryable):
        faults.append(ledger_db.sqlstate(exc))
        return judge(exc)
    monkeypatch.setattr(ledger_db, "is_retryable", judged)
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    users = [f"u{i}" for i in range(10)]
    service.add_ledger_entries(db, ledger, [EntryRequest(
        ik=f"seed-{u}", type="deposit", parameters={"user_id": u, "amount": "1000"}) for u in users])

    def batch(i):
        order = users if i % 2 else list(reversed(users))
        return service.add_ledger_entries(db, ledger, [EntryRequest(
            ik=f"b{i}-{j}", type="transfer",
            parameters={"from_id": a, "to_id": order[(j + 1) % len(order)], "amount": "1"})
            for j, a in enumerate(order)])
    outcomes = race(8, batch)
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert faults == []
    assert service.account_balances(db, ledger, "liabilities/users").child == {"USD": 10000}
    assert service.audit(db, ledger) == []


def eventual_bank_schema(key, consistency):
    doc = seed002_schema(key)
    doc["chartOfAccounts"]["accounts"][0]["children"][0]["consistencyConfig"] = {
        "ownBalanceUpdates": consistency}
    return doc


def test_eventual_bank_account_takes_no_row_lock(db, unique):
    """An open posting transaction on the hot bank account does not block another deposit
    into it when the account is eventually consistent, and does when it is strong."""
    for consistency, blocks in (("eventual", False), ("strong", True)):
        ledger_ik = new_ledger(db, unique, eventual_bank_schema(unique("hot"), consistency))
        ledger = service.get_ledger(db, ledger_ik)
        post(db, ledger_ik, "user_funds_account", user_id="warm", funding_amount="1")
        with db.engine.connect() as holder:
            tx = holder.begin()
            post_entries(holder, ledger, [EntryRequest(
                ik="held", type="user_funds_account", parameters={"user_id": "x", "funding_amount": "5"})])
            with db.engine.connect() as other:
                try:
                    with other.begin():
                        other.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
                        post_entries(other, ledger, [EntryRequest(
                            ik="free", type="user_funds_account",
                            parameters={"user_id": "y", "funding_amount": "7"})])
                    blocked = False
                except sa.exc.OperationalError as exc:
                    assert "lock timeout" in str(exc)
                    blocked = True
            tx.commit()
        assert blocked is blocks, consistency


def test_parallel_deposits_into_eventual_account_then_rollup(db, unique):
    ledger = new_ledger(db, unique, eventual_bank_schema(unique("hot"), "eventual"))
    outcomes = race(16, lambda i: [post(db, ledger, "user_funds_account", user_id=f"u{i}",
                                        funding_amount=str(i + 1)) for _ in range(5)])
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    service.rollup(db)
    expected = 5 * sum(range(1, 17))
    assert own(db, ledger, "assets/banks/user-cash") == expected
    with db.transaction() as conn:
        lines_sum = conn.execute(sa.text(
            "SELECT sum(l.amount) FROM lines l JOIN accounts a ON a.id = l.account_id "
            "JOIN ledgers g ON g.id = a.ledger_id WHERE g.ik = :l AND a.path = 'assets/banks/user-cash'"),
            {"l": ledger}).scalar()
    assert int(lines_sum) == expected
    assert service.audit(db, ledger) == []


def test_rollup_racing_postings_loses_nothing(db, unique):
    ledger = new_ledger(db, unique, eventual_bank_schema(unique("hot"), "eventual"))
    stop = threading.Event()

    def roll():
        while not stop.is_set():
            service.rollup(db, limit=7)
    roller = threading.Thread(target=roll)
    roller.start()
    try:
        outcomes = race(8, lambda i: [post(db, ledger, "user_funds_account", user_id=f"u{i}-{j}",
                                           funding_amount="3") for j in range(10)])
    finally:
        stop.set()
        roller.join()
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    service.rollup(db)
    assert own(db, ledger, "assets/banks/user-cash") == 8 * 10 * 3
    assert service.audit(db, ledger) == []
