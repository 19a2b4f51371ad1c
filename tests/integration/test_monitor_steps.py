"""Balance monitors judge a change step by step (ledger/monitors/watch.py): every entry of an
engine batch or a group commit batch, every hold created, committed, voided or expired, on
posted, pending and available balances alike."""
from __future__ import annotations

import threading
import time

import pytest

from ledger import service
from ledger.errors import BadRequestError
from ledger.service import EntryRequest, GroupCommitter
from tests.integration.helpers import new_ledger, post, seed000_schema
from tests.integration.test_holds import hold, later
from tests.integration.test_monitors import crossings

USER = "liabilities/users:{}/available"
ALICE, PAYER, SHOP = USER.format("alice"), USER.format("payer"), USER.format("shop")


def deposit(ik, user, amount):
    return EntryRequest(ik=ik, type="deposit", parameters={"user_id": user, "amount": str(amount)})


def transfer(ik, sender, recipient, amount):
    return EntryRequest(ik=ik, type="transfer", parameters={
        "from_id": sender, "to_id": recipient, "amount": str(amount)})


def steps(events):
    return [(p["before"], p["after"], p["isTrue"]) for p in events]


@pytest.fixture
def ledger(db, unique):
    return new_ledger(db, unique, seed000_schema(unique("monitored")))


def test_one_engine_batch_is_judged_entry_by_entry(db, ledger):
    own = service.create_balance_monitor(db, ledger, ALICE, "own", {"gte": "100"})
    total = service.create_balance_monitor(db, ledger, "liabilities/users:alice", "total",
                                           {"gte": "100"})
    with db.transaction() as conn:
        posted = service.post_entries(conn, service.load_ledger(conn, ledger), [
            deposit("d1", "alice", 150),            # 150: true
            transfer("t1", "alice", "bob", 100),    # 50: false
            deposit("d2", "alice", 100),            # 150: true
            deposit("d3", "alice", 10)])            # 160: still true
    expected = [("0", "150", True), ("150", "50", False), ("50", "150", True)]
    ids = [r.entry.id for r in posted[:3]]
    for m in (own, total):
        got = crossings(db, ledger, m.id)
        assert steps(got) == expected
        assert [p["entry"]["id"] for p in got] == ids
    # By event id: entry by entry, each entry's own balances before its sums.
    assert [(p["monitorId"], p["entry"]["id"]) for p in crossings(db, ledger)] == [
        (m.id, i) for i in ids for m in (own, total)]
    with db.transaction() as conn:  # a batch that moves the balances and crosses nothing
        service.post_entries(conn, service.load_ledger(conn, ledger), [
            deposit("d4", "alice", 5), transfer("t2", "alice", "bob", 5),
            deposit("d5", "bob", 1000)])
    assert len(crossings(db, ledger)) == 6


def test_a_group_commit_batch_raises_what_posting_one_by_one_would(db, ledger):
    m = service.create_balance_monitor(db, ledger, ALICE, "own", {"gte": "100"})
    order: list[EntryRequest] = []
    paused = threading.Event()

    def before_commit(conn, ledger_ik, requests):
        if not paused.is_set():  # the first batch waits, so the next posts queue behind it
            paused.set()
            time.sleep(0.5)

    committer = GroupCommitter(db, on_batch=lambda _, requests: order.extend(requests),
                               before_commit=before_commit)
    requests = [deposit("d1", "alice", 150), transfer("t1", "alice", "bob", 100),
                deposit("d2", "alice", 100)]
    results: dict[str, object] = {}

    def send(request):
        results[request.ik] = committer.post(ledger, request)

    threads = [threading.Thread(target=send, args=(deposit("lead", "bob", 1),))]
    threads[0].start()
    paused.wait(5)
    for request in requests:  # one after another: they arrive in this order
        threads.append(threading.Thread(target=send, args=(request,)))
        threads[-1].start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert [r.ik for r in order] == ["lead", "d1", "t1", "d2"]
    assert committer.stats.batches == 2 and committer.stats.largest == 3
    got = crossings(db, ledger, m.id)
    assert steps(got) == [("0", "150", True), ("150", "50", False), ("50", "150", True)]
    assert [p["entry"]["id"] for p in got] == [results[r.ik].entry.id for r in requests]


def test_holds_move_pending_and_available_balances(db, ledger):
    post(db, ledger, "deposit", user_id="payer", amount="500")
    available = service.create_balance_monitor(db, ledger, PAYER, "ownAvailable", {"lt": "100"})
    posted = service.create_balance_monitor(db, ledger, PAYER, "own", {"lt": "100"})
    pending = service.create_balance_monitor(db, ledger, PAYER, "ownPending", {"lt": "100"})
    incoming = service.create_balance_monitor(db, ledger, SHOP, "ownPending", {"gte": "50"})
    users = service.create_balance_monitor(db, ledger, "liabilities/users", "childAvailable",
                                           {"lt": "100"})
    first = hold(db, ledger, 450)
    assert steps(crossings(db, ledger, available.id)) == [("500", "50", True)]
    assert steps(crossings(db, ledger, pending.id)) == [("500", "50", True)]
    assert steps(crossings(db, ledger, incoming.id)) == [("0", "450", True)]
    assert steps(crossings(db, ledger, users.id)) == [("500", "50", True)]
    assert crossings(db, ledger, posted.id) == []
    service.void_ledger_entry(db, id=first.entry.id)
    assert steps(crossings(db, ledger, available.id))[1:] == [("50", "500", False)]
    assert steps(crossings(db, ledger, incoming.id))[1:] == [("450", "0", False)]
    assert steps(crossings(db, ledger, users.id))[1:] == [("50", "500", False)]
    assert {p["entry"]["id"] for p in crossings(db, ledger)} == {first.entry.id}

    second = hold(db, ledger, 450)
    before = len(crossings(db, ledger))
    service.commit_ledger_entry(db, id=second.entry.id)
    # The payer's posted balance moves; what was reserved is now posted, so the payer's
    # available and pending balances stay, and so does the shop's pending one. The shop's
    # available balance counts no pending increase: the commit raises it, and the users'
    # available sum with it.
    got = crossings(db, ledger)[before:]
    assert [(p["monitorId"], p["before"], p["after"], p["entry"]["id"]) for p in got] == [
        (posted.id, "500", "50", second.entry.id), (users.id, "50", "500", second.entry.id)]
    assert len(crossings(db, ledger, available.id)) == 3
    assert len(crossings(db, ledger, incoming.id)) == 3


def test_a_partial_commit_gives_back_the_rest_and_expiry_releases(db, ledger):
    post(db, ledger, "deposit", user_id="payer", amount="500")
    available = service.create_balance_monitor(db, ledger, PAYER, "ownAvailable", {"lt": "300"})
    shop = service.create_balance_monitor(db, ledger, SHOP, "totalAvailable", {"gte": "100"})
    partial = hold(db, ledger, 400)
    service.commit_ledger_entry(db, id=partial.entry.id, amount="150")
    # 500 -> 100 reserved -> 350 once 150 posts and 250 is given back; the shop's available
    # counts no pending increase, so only the commit moves it (0 -> 150).
    assert steps(crossings(db, ledger, available.id)) == [
        ("500", "100", True), ("100", "350", False)]
    assert steps(crossings(db, ledger, shop.id)) == [("0", "150", True)]
    short = hold(db, ledger, 300, expires_at=later(1.0))
    assert steps(crossings(db, ledger, available.id))[2:] == [("350", "50", True)]
    time.sleep(1.1)
    assert service.expire_holds(db) >= 1
    got = crossings(db, ledger, available.id)[3:]
    assert steps(got) == [("50", "350", False)]
    assert got[0]["entry"]["id"] == short.entry.id


@pytest.mark.parametrize("kind", ["pending", "available", "ownpending", "OwnAvailable",
                                  "ownAvailableBalance", 5, None])
def test_unknown_kinds_are_refused_naming_balance(db, ledger, kind):
    with pytest.raises(BadRequestError) as exc:
        service.create_balance_monitor(db, ledger, ALICE, kind, {"lt": "1"})
    assert exc.value.field == "balance"
    assert service.list_balance_monitors(db, ledger) == []


def test_a_template_node_has_no_own_pending_or_available_balance(db, ledger):
    for kind in ("ownPending", "ownAvailable"):
        with pytest.raises(BadRequestError) as exc:
            service.create_balance_monitor(db, ledger, "liabilities/users", kind, {"lt": "1"})
        assert exc.value.field == "balance"
    m = service.create_balance_monitor(db, ledger, "liabilities/users", "totalPending",
                                       {"lt": "1"})
    assert m.balance == "totalPending"
    assert service.update_balance_monitor(db, m.id, balance="childAvailable").balance == \
        "childAvailable"


def test_the_rollup_judges_an_eventual_account_entry_by_entry(db, unique):
    from tests.integration.test_monitors import SCHEMA

    ik = new_ledger(db, unique, {**SCHEMA, "key": unique("monitored-rollup")})
    bank = service.create_balance_monitor(db, ik, "assets/bank", "own", {"gte": "100"})
    assets = service.create_balance_monitor(db, ik, "assets", "child", {"gte": "100"})

    def batch(*entries):
        with db.transaction() as conn:
            service.post_entries(conn, service.load_ledger(conn, ik), [
                EntryRequest(ik=f"{t}-{n}-{a}-{time.monotonic_ns()}", type=t,
                             parameters={"user": "ann", "amount": str(a)})
                for n, (t, a) in enumerate(entries)])

    batch(("deposit", 150), ("withdraw", 100), ("deposit", 100))   # 150, 50, 150
    batch(("deposit", 5), ("withdraw", 5))                           # 155, 150: no crossing
    assert crossings(db, ik) == []  # the bank's balance moves when the rollup folds it
    while service.rollup(db):
        pass
    expected = [("0", "150", True), ("150", "50", False), ("50", "150", True)]
    assert steps(crossings(db, ik, bank.id)) == expected
    assert steps(crossings(db, ik, assets.id)) == expected
    assert all(p["entry"] is None for p in crossings(db, ik))
