"""History under concurrency: pages stay exact while others post, reversals and reposts race,
running totals stay exact while backdated postings and rollups interleave."""
from __future__ import annotations

import random
import threading
from datetime import timedelta

from ledger import service
from ledger.errors import BadRequestError
from ledger.service import EntryRequest
from tests.integration.test_history import (ALICE, USD, assert_running_totals_exact, day,
                                            make_ledger, post)
from tests.integration.test_races import race


def walk(fetch, forwards: bool, size: int):
    """Every node of a list, page by page, in list order, following the cursors."""
    nodes, cursor = [], None
    while True:
        if forwards:
            page = fetch(first=size, after=cursor)
            nodes.extend(page.nodes)
            if not page.page_info.has_next_page:
                return nodes
            cursor = page.page_info.end_cursor
        else:
            page = fetch(last=size, before=cursor)
            nodes[:0] = page.nodes
            if not page.page_info.has_previous_page:
                return nodes
            cursor = page.page_info.start_cursor


def test_pages_forwards_and_backwards_yield_every_line_once_while_others_post(db, unique):
    ledger = make_ledger(db, unique)
    # Few distinct posted times, so that many lines tie on posted and only ids order them.
    seeded = service.add_ledger_entries(db, ledger, [EntryRequest(
        ik=f"seed-{i}", type="deposit", posted=day(1 + i % 5),
        parameters={"user": "alice", "amount": str(i + 1)}) for i in range(180)])
    before_lines = {l.id for r in seeded for l in r.lines if l.account_path == ALICE}
    before_entries = {r.entry.id for r in seeded}

    stop = threading.Event()
    posted_meanwhile = []

    def keep_posting():
        rnd = random.Random(7)
        while not stop.is_set():
            when = day(rnd.randint(1, 6), rnd.randint(0, 23))
            posted_meanwhile.append(post(db, ledger, "deposit", posted=when, user="alice", amount=1))
    writer = threading.Thread(target=keep_posting)
    writer.start()
    try:
        walks = {
            ("lines", forwards): walk(lambda **kw: service.list_lines(db, ledger, ALICE, **kw), forwards, 17)
            for forwards in (True, False)}
        walks.update({
            ("entries", forwards): walk(lambda **kw: service.list_ledger_entries(db, ledger, **kw), forwards, 13)
            for forwards in (True, False)})
    finally:
        stop.set()
        writer.join()
    assert posted_meanwhile, "the writer never posted during the walks"
    for (kind, forwards), nodes in walks.items():
        ids = [n.id for n in nodes]
        assert len(ids) == len(set(ids)), (kind, forwards, "a node came twice")
        assert (before_lines if kind == "lines" else before_entries) <= set(ids), (kind, forwards)
        keys = [(n.posted, int(n.id)) for n in nodes]
        assert keys == sorted(keys, reverse=True), (kind, forwards, "out of order")
    assert_running_totals_exact(db, ledger)


def test_racing_reversals_reverse_once(db, unique):
    ledger = make_ledger(db, unique)
    deposit = post(db, ledger, "deposit", posted=day(1), user="alice", amount=50)
    outcomes = race(12, lambda i: service.reverse_ledger_entry(db, id=deposit.entry.id))
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert sum(not o.is_ik_replay for o in outcomes) == 1
    assert len({o.reversing_entry.id for o in outcomes}) == 1
    assert service.account_balances(db, ledger, ALICE).own == {USD: 0}
    # and racing reposts under the freed ik make one new version
    reposts = race(12, lambda i: post(db, ledger, "deposit", ik=deposit.entry.ik, posted=day(1),
                                      user="alice", amount=50))
    assert not any(isinstance(o, Exception) for o in reposts), reposts
    assert sum(not o.is_ik_replay for o in reposts) == 1
    assert [v.ik_version for v in service.ik_versions(db, ledger, deposit.entry.ik)] == [1, 2]
    assert service.account_balances(db, ledger, ALICE).own == {USD: 50}


def test_a_reversal_racing_a_spend_of_the_same_money(db, unique):
    """Reversing a deposit and spending it race: the condition is checked under the lock,
    so exactly one wins and alice never goes below zero."""
    ledger = make_ledger(db, unique)
    for round_ in range(6):
        user = f"alice{round_}"
        path = f"liabilities/users:{user}/available"
        deposit = post(db, ledger, "deposit", posted=day(1), user=user, amount=100)

        def act(i):
            if i == 0:
                return service.reverse_ledger_entry(db, id=deposit.entry.id)
            return post(db, ledger, "transfer", posted=day(2), **{"from": user, "to": "bob", "amount": 80})
        outcomes = race(2, act)
        ok = [o for o in outcomes if not isinstance(o, Exception)]
        refused = [o for o in outcomes if isinstance(o, Exception)]
        assert len(ok) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], BadRequestError) and refused[0].code == "condition_failed"
        assert path in refused[0].message
        assert service.account_balances(db, ledger, path).own[USD] in (0, 20)
    assert_running_totals_exact(db, ledger)


def test_running_totals_stay_exact_under_backdated_races_and_rollups(db, unique):
    ledger = make_ledger(db, unique, bank="eventual")
    stop = threading.Event()

    def roll():
        while not stop.is_set():
            service.rollup(db, limit=5)
    roller = threading.Thread(target=roll)
    roller.start()
    try:
        def worker(i):
            rnd = random.Random(i)
            for j in range(12):
                when = day(rnd.randint(1, 9)) + timedelta(minutes=rnd.randint(0, 600))
                if j % 4 == 3:
                    post(db, ledger, "transfer", posted=when, **{"from": f"u{i}", "to": "shared", "amount": 1})
                else:
                    post(db, ledger, "deposit", posted=when, user=rnd.choice([f"u{i}", "shared"]), amount=rnd.randint(1, 9))
        outcomes = race(8, worker)
    finally:
        stop.set()
        roller.join()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(e, BadRequestError) and e.code == "condition_failed" for e in errors), errors
    service.rollup(db)
    assert_running_totals_exact(db, ledger)
    assert service.audit(db, ledger) == []
    bank = service.account_balances(db, ledger, "assets/bank")
    assert service.account_balances(db, ledger, "assets/bank", at="2025").own == bank.own
    users = service.account_balances(db, ledger, "liabilities/users", at="2025-03")
    assert users.child == bank.own
