"""Balance monitors (ledger/monitors/): ``balance.crossed`` is raised in the transaction of
the post, reversal or rollup that makes a condition true or false again, once per crossing,
never for a change that does not cross; under concurrent posts too."""
from __future__ import annotations

import random
import secrets
import threading
import time

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from tests.integration.helpers import new_ledger, post

SCHEMA = {
    "chartOfAccounts": {
        "assets": {"bank": {"consistencyConfig": {"ownBalanceUpdates": "eventual"}}},
        "liabilities": {"users": {"template": True, "available": {}, "savings": {}}},
    },
    "ledgerEntries": {"types": [
        {"type": "deposit",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "{{amount}}"}]},
        {"type": "withdraw",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "-{{amount}}"}]},
        {"type": "save",
         "lines": [
             {"key": "from", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "-{{amount}}"},
             {"key": "to", "account": {"path": "liabilities/users:{{user}}/savings"},
              "amount": "{{amount}}"}]},
    ]},
}


@pytest.fixture
def ledger(db, unique):
    return new_ledger(db, unique, {**SCHEMA, "key": unique("monitors")})


def _ledger_id(db, ik):
    with db.transaction() as conn:
        return conn.execute(sa.text("SELECT id FROM ledgers WHERE ik = :ik"),
                            {"ik": ik}).scalar_one()


def crossings(db, ik, monitor_id=None):
    """The ledger's balance.crossed payloads by event id: ids are drawn under the locks
    that order the judgements of one balance, so this is the order the crossings happened
    in. (The feed's (xid, id) order follows when transactions first wrote, which for
    concurrent posts to one balance need not be the order they took its lock.)"""
    with db.transaction() as conn:
        rows = conn.execute(sa.text(
            "SELECT payload FROM events WHERE ledger_id = :l AND type = 'balance.crossed' "
            "ORDER BY id"), {"l": _ledger_id(db, ik)}).scalars().all()
    return [p for p in rows if monitor_id is None or p["monitorId"] == monitor_id]


def alice(account="available"):
    return f"liabilities/users:alice/{account}"


def test_one_event_per_crossing_none_for_changes_that_do_not_cross(db, ledger):
    m = service.create_balance_monitor(db, ledger, alice(), "own",
                                       {"lt": "100", "currency": "USD"}, "alice runs low")
    # A fresh account's balance is 0, which is below 100: posting 50 changes nothing.
    post(db, ledger, "deposit", user="alice", amount="50")
    assert crossings(db, ledger) == []
    post(db, ledger, "deposit", user="alice", amount="50")      # 100: no longer < 100
    post(db, ledger, "deposit", user="alice", amount="25")      # 125: still not
    post(db, ledger, "withdraw", user="alice", amount="20")     # 105: still not
    post(db, ledger, "withdraw", user="alice", amount="10")     # 95: true again
    post(db, ledger, "withdraw", user="alice", amount="5")      # 90: still true
    post(db, ledger, "deposit", user="bob", amount="500")       # another account
    post(db, ledger, "deposit", user="alice", amount="10")      # 100: false again
    got = crossings(db, ledger)
    assert [(p["before"], p["after"], p["isTrue"]) for p in got] == [
        ("50", "100", False), ("105", "95", True), ("90", "100", False)]
    assert {p["monitorId"] for p in got} == {m.id}
    assert got[0]["account"] == alice() and got[0]["currency"] == "USD"
    assert got[0]["condition"] == {"lt": "100"} and got[0]["balance"] == "own"


def test_a_reversal_crosses_back(db, ledger):
    service.create_balance_monitor(db, ledger, alice(), "own", {"gte": "1000"})
    posted = post(db, ledger, "deposit", user="alice", amount="1500")
    service.reverse_ledger_entry(db, id=posted.entry.id)
    got = crossings(db, ledger)
    assert [(p["before"], p["after"], p["isTrue"]) for p in got] == [
        ("0", "1500", True), ("1500", "0", False)]


def test_nothing_is_raised_when_the_post_is_refused_or_rolled_back(db, ledger):
    service.create_balance_monitor(db, ledger, alice(), "own", {"gt": "0"})
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            service.post_entries(conn, service.load_ledger(conn, ledger), [
                service.EntryRequest(ik="rolled-back", type="deposit",
                                     parameters={"user": "alice", "amount": "5"})])
            raise RuntimeError("rolled back")
    assert crossings(db, ledger) == []


def test_pattern_monitor_watches_every_matching_account(db, ledger):
    m = service.create_balance_monitor(db, ledger, "liabilities/users:*/available", "own",
                                       {"gt": "1000"})
    post(db, ledger, "deposit", user="alice", amount="2000")
    post(db, ledger, "deposit", user="bob", amount="999")
    post(db, ledger, "deposit", user="carol", amount="1001")
    post(db, ledger, "save", user="alice", amount="1500")   # alice's available: 500
    got = crossings(db, ledger, m.id)
    assert [(p["account"], p["isTrue"]) for p in got] == [
        ("liabilities/users:alice/available", True), ("liabilities/users:carol/available", True),
        ("liabilities/users:alice/available", False)]
    assert got[0]["monitorAccount"] == "liabilities/users:*/available"


def test_total_and_child_balances_of_a_parent_and_a_template_node(db, ledger):
    # alice's total (available + savings) under 10: a move between her accounts is no crossing.
    total = service.create_balance_monitor(db, ledger, "liabilities/users:alice", "total",
                                           {"lt": "10"})
    users = service.create_balance_monitor(db, ledger, "liabilities/users", "child",
                                           {"gte": "300"})
    each = service.create_balance_monitor(db, ledger, "liabilities/users:*", "total",
                                          {"eq": "100"})
    post(db, ledger, "deposit", user="alice", amount="100")
    post(db, ledger, "save", user="alice", amount="60")
    post(db, ledger, "deposit", user="bob", amount="250")
    post(db, ledger, "withdraw", user="alice", amount="95")
    assert [(p["before"], p["after"], p["isTrue"]) for p in crossings(db, ledger, total.id)] == [
        ("0", "100", False), ("100", "5", True)]
    assert [(p["account"], p["after"], p["isTrue"]) for p in crossings(db, ledger, users.id)] == [
        ("liabilities/users", "350", True), ("liabilities/users", "255", False)]
    assert [(p["account"], p["isTrue"]) for p in crossings(db, ledger, each.id)] == [
        ("liabilities/users:alice", True), ("liabilities/users:alice", False)]


def test_an_eventual_account_crosses_when_the_rollup_folds_its_deltas(db, ledger):
    m = service.create_balance_monitor(db, ledger, "assets/bank", "own", {"gte": "100"})
    parent = service.create_balance_monitor(db, ledger, "assets", "child", {"gte": "100"})
    post(db, ledger, "deposit", user="alice", amount="70")
    post(db, ledger, "deposit", user="alice", amount="70")
    assert crossings(db, ledger) == []  # the bank's balance has not moved yet
    while service.rollup(db):
        pass
    # One fold, judged delta by delta: 0 -> 70 does not cross, 70 -> 140 does.
    assert [(p["before"], p["after"], p["isTrue"], p["entry"]) for p in
            crossings(db, ledger, m.id)] == [("70", "140", True, None)]
    assert [(p["account"], p["after"]) for p in crossings(db, ledger, parent.id)] == [
        ("assets", "140")]


def test_updates_change_what_is_judged_and_deleted_monitors_raise_nothing(db, ledger):
    m = service.create_balance_monitor(db, ledger, alice(), "own", {"gte": "100"})
    updated = service.update_balance_monitor(db, m.id, condition={"gte": "500"},
                                             description="big")
    assert updated.condition.amount == 500 and updated.description == "big"
    assert updated.account == alice() and updated.balance == "own"
    post(db, ledger, "deposit", user="alice", amount="200")
    assert crossings(db, ledger) == []
    post(db, ledger, "deposit", user="alice", amount="300")
    assert len(crossings(db, ledger)) == 1
    assert service.delete_balance_monitor(db, m.id).id == m.id
    post(db, ledger, "withdraw", user="alice", amount="500")
    assert len(crossings(db, ledger)) == 1
    assert service.list_balance_monitors(db, ledger) == []
    with pytest.raises(NotFoundError) as exc:
        service.delete_balance_monitor(db, m.id)
    assert exc.value.code == "monitor_not_found" and exc.value.field == "id"


@pytest.mark.parametrize("kwargs, field", [
    ({"account": ""}, "account"),
    ({"account": "liabilities/nobody"}, "account"),
    ({"account": "liabilities/users:alice/available//*"}, "account"),
    ({"account": "liabilities/users"}, "balance"),           # a template node has no own
    ({"balance": "pending"}, "balance"),
    ({"condition": {}}, "condition"),
    ({"condition": {"lt": "1", "gt": "2"}}, "condition"),
    ({"condition": {"below": "1"}}, "condition.below"),
    ({"condition": {"lt": 1.5}}, "condition.lt"),
    ({"condition": {"lt": "01"}}, "condition.lt"),
    ({"condition": {"lt": "1", "currency": "US D"}}, "condition.currency"),
    ({"description": 5}, "description"),
])
def test_bad_input_names_its_field_and_writes_nothing(db, ledger, kwargs, field):
    args = {"account": alice(), "balance": "own", "condition": {"lt": "1"}, **kwargs}
    with pytest.raises((BadRequestError, NotFoundError)) as exc:
        service.create_balance_monitor(db, ledger, **args)
    assert exc.value.field == field, exc.value.message
    assert service.list_balance_monitors(db, ledger) == []


def test_update_validates_and_unknown_ids_are_not_found(db, ledger):
    m = service.create_balance_monitor(db, ledger, alice(), "own", {"lt": "1"})
    with pytest.raises(BadRequestError) as exc:
        service.update_balance_monitor(db, m.id, balance="child", account="liabilities//users:*")
    assert exc.value.field == "account"
    with pytest.raises(BadRequestError) as exc:
        service.update_balance_monitor(db, m.id, condition={"eq": None})
    assert exc.value.field == "condition"
    assert service.get_balance_monitor(db, m.id) == m
    for bad in ("nope", "0", "99999999999"):
        with pytest.raises(NotFoundError):
            service.get_balance_monitor(db, bad)


def _serial_crossings(db, ik, path, holds) -> int:
    """Crossings of ``holds`` in the account's history in the order the posts took its
    balance row lock (line ids are drawn under it)."""
    with db.transaction() as conn:
        amounts = conn.execute(sa.text(
            "SELECT x.amount FROM lines x JOIN accounts a ON a.id = x.account_id "
            "WHERE a.path = :p AND a.ledger_id = :l ORDER BY x.id"),
            {"p": path, "l": _ledger_id(db, ik)}).scalars().all()
    balance, count = 0, 0
    for amount in amounts:
        if holds(balance) != holds(balance + int(amount)):
            count += 1
        balance += int(amount)
    return count


def _race(db, ledger, jobs, threads=6):
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            # In pairs: alice's balance stays at or below 0 and bob's at or above, so both
            # (and their sum) keep crossing 0 whatever order the threads' posts take.
            for _ in range(jobs // 2):
                user, pair, amount = rng.choice([("alice", ("withdraw", "deposit"), "30"),
                                                 ("bob", ("deposit", "withdraw"), "20")])
                for type_ in pair:
                    post(db, ledger, type_, ik=secrets.token_hex(8), user=user, amount=amount)
                    time.sleep(rng.random() * 0.002)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors


def _alternates(events, initially: bool) -> bool:
    state = initially
    for p in events:
        if p["isTrue"] == state:
            return False
        state = p["isTrue"]
    return True


def test_concurrent_posts_raise_one_event_per_crossing(db, ledger):
    own = service.create_balance_monitor(db, ledger, alice(), "own", {"gte": "0"})
    total = service.create_balance_monitor(db, ledger, "liabilities/users", "child", {"gt": "0"})
    _race(db, ledger, jobs=40)
    got = crossings(db, ledger, own.id)
    assert len(got) == _serial_crossings(db, ledger, alice(), lambda b: b >= 0) > 0
    assert _alternates(got, initially=True)
    # The users' sum moves under two balance row locks (alice's, bob's): the monitor's own
    # lock makes the posts judge it one after another, so its events alternate, each
    # starting where the one before ended, and the last says how the sum stands now.
    summed = crossings(db, ledger, total.id)
    assert summed and _alternates(summed, initially=False)
    balances = service.account_balances(db, ledger, "liabilities/users")
    assert summed[-1]["isTrue"] == (balances.child.get("USD", 0) > 0)


def test_the_engine_asks_for_monitors_only_of_a_ledger_that_has_some(db, ledger):
    seen: list[str] = []

    def record(conn, cursor, statement, *_):
        seen.append(statement)

    def monitor_queries() -> int:
        seen.clear()
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            post(db, ledger, "deposit", user="alice", amount="1")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        return sum("FROM balance_monitors" in s for s in seen)

    assert monitor_queries() == 0
    m = service.create_balance_monitor(db, ledger, alice(), "own", {"gt": "1000"})
    assert monitor_queries() == 1
    service.delete_balance_monitor(db, m.id)
    assert monitor_queries() == 0


def test_async_jobs_cross_per_entry_and_refused_jobs_move_nothing(db, unique):
    from tests.integration.conftest import PIPELINE_SCHEMA, user_path

    ik = new_ledger(db, unique, {**PIPELINE_SCHEMA, "key": unique("monitors-jobs")})
    m = service.create_balance_monitor(db, ik, "liabilities/users:*/available", "own",
                                       {"gte": "500"})

    def run(jobs):
        service.submit_entries(db, ik, [
            {"ik": secrets.token_hex(6), "type": t, "parameters": {"user": "ann", "amount": a}}
            for t, a in jobs], partitions=16)
        for partition in range(16):
            service.work_partition(db, partition)

    run([("deposit", "300"), ("deposit", "300")])
    # The withdrawal of 9999 is refused (ownBalance >= 0): it moves nothing, so the batch
    # is 600 -> 400, one crossing.
    run([("withdraw", "9999"), ("withdraw", "200")])
    # Within one batch each entry is judged: 400 -> 700 crosses, 700 -> 400 crosses back.
    run([("deposit", "300"), ("withdraw", "300")])
    got = crossings(db, ik, m.id)
    assert [(p["account"], p["before"], p["after"], p["isTrue"]) for p in got] == [
        (user_path("ann"), "300", "600", True), (user_path("ann"), "600", "400", False),
        (user_path("ann"), "400", "700", True), (user_path("ann"), "700", "400", False)]
    assert all(p["entry"]["id"] for p in got)
